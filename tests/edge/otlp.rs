//! Optional OTLP trace export: spans reach a collector (a fake one here, speaking
//! the real OTLP/gRPC protocol), carry the request id, and no plaintext.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient;
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptRequest};

use crate::harness::*;

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let svc = collector.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(svc))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });

    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &(standard_config("").replace("log_format: text", "log_format: json")
            + &format!(
                "telemetry:\n  otlp_endpoint: http://{otlp}\n  service_name: reseal-test\n"
            )),
    );
    let grpc = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RESEAL_SERVER__LISTEN", format!("127.0.0.1:{grpc}"))
        .env(
            "RESEAL_SERVER__HEALTH_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "RESEAL_SERVER__ADMIN_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = ReencryptServiceClient::connect(format!("http://127.0.0.1:{grpc}")).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = client.expect("server up");
    let marker = b"OTLP-MARKER-4012888888881881";
    client
        .reencrypt(ReencryptRequest {
            input: Some(Input::Ciphertext(connect_message(
                "connect-a",
                CONNECT_A,
                marker,
            ))),
            route: "card-capture".into(),
            request_id: "otlp-trace-me".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Shutdown flushes the batch exporter.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();

    let exports = collector.0.lock().unwrap().clone();
    let mut found = false;
    let mut everything = String::new();
    for export in &exports {
        for rs in &export.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .map(|a| text(&a.value));
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    everything.push_str(&format!("{span:?}"));
                    let rid = span
                        .attributes
                        .iter()
                        .find(|a| a.key == "request_id")
                        .map(|a| text(&a.value));
                    if span.name == "reencrypt" && rid.as_deref() == Some("otlp-trace-me") {
                        assert_eq!(service.as_deref(), Some("reseal-test"));
                        found = true;
                    }
                }
            }
        }
    }
    assert!(
        found,
        "no `reencrypt` span with the request id among {} exports",
        exports.len()
    );
    assert!(
        !everything.contains("OTLP-MARKER"),
        "plaintext in exported spans"
    );
    assert!(!everything.contains(&hex::encode(marker)));
}
