//! A marker plaintext run through every RPC, with logging at trace level, never
//! appears in any output; the audit trail has one event per re-encryption with
//! who, what, which keys, outcome and duration.

use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient;
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptBatchRequest, ReencryptRequest};

use crate::harness::*;

const MARKER: &[u8] = b"MARKER-5105105105105100-PLAINTEXT";

fn forms(bytes: &[u8]) -> Vec<String> {
    vec![
        String::from_utf8_lossy(bytes).into_owned(),
        hex::encode(bytes),
        hex::encode_upper(bytes),
        base64::engine::general_purpose::STANDARD.encode(bytes),
        format!("{bytes:?}"),
        // a distinctive middle slice, in case something truncates
        String::from_utf8_lossy(&bytes[7..23]).into_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_reaches_logs_or_metrics_at_trace_level() {
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &standard_config("").replace("log_format: text", "log_format: json"),
    );
    let (grpc, health, admin) = (free_port(), free_port(), free_port());
    let log_path = fx.path("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "trace")
        .env("RESEAL_SERVER__LISTEN", format!("127.0.0.1:{grpc}"))
        .env(
            "RESEAL_SERVER__HEALTH_LISTEN",
            format!("127.0.0.1:{health}"),
        )
        .env("RESEAL_SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut c = None;
    for _ in 0..100 {
        if let Ok(client) =
            ReencryptServiceClient::connect(format!("http://127.0.0.1:{grpc}")).await
        {
            c = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = c.expect("server up");

    let input = connect_message("connect-a", CONNECT_A, MARKER);
    let ok = ReencryptRequest {
        input: Some(Input::CiphertextBase64(
            base64::engine::general_purpose::STANDARD.encode(&input),
        )),
        route: "card-capture".into(),
        request_id: "audit-me".into(),
        ..Default::default()
    };
    let resp = c.reencrypt(ok.clone()).await.unwrap().into_inner();
    assert!(resp.results.iter().all(|r| r.error.is_none()));
    let mut tampered = input.clone();
    let n = tampered.len();
    tampered[n - 120] ^= 1;
    let bad = ReencryptRequest {
        input: Some(Input::Ciphertext(tampered)),
        consumers: vec!["payments".into()],
        ..Default::default()
    };
    assert!(c.reencrypt(bad.clone()).await.is_err());
    let unknown = ReencryptRequest {
        input: Some(Input::Ciphertext(connect_message(
            "stranger",
            "11111111-2222-4333-8444-555555555555",
            MARKER,
        ))),
        consumers: vec!["payments".into()],
        ..Default::default()
    };
    assert!(c.reencrypt(unknown.clone()).await.is_err());
    c.reencrypt_batch(ReencryptBatchRequest {
        items: vec![ok.clone(), bad, unknown],
    })
    .await
    .unwrap();
    let metrics = crate::harness_http(admin, "/metrics").await;

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
    let output = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        output.lines().count() > 50,
        "trace logging was on:\n{output}"
    );

    for form in forms(MARKER) {
        assert!(
            !output.contains(&form),
            "plaintext form `{form}` found in the logs"
        );
        assert!(
            !metrics.contains(&form),
            "plaintext form `{form}` found in the metrics"
        );
    }
    // Nor a full ciphertext: the input, in the forms it travelled in.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&input);
    assert!(
        !output.contains(&b64[100..160]),
        "input ciphertext (base64) found in the logs"
    );
    assert!(
        !output.contains(&hex::encode(&input[100..140])),
        "input ciphertext (hex) found in the logs"
    );
    // No private key material: take distinctive lines of the PEM bodies.
    for name in ["connect-a", "payments", "fraud", "ledger-old"] {
        let pem = &keys()[name].0;
        for line in pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .skip(3)
            .take(3)
        {
            assert!(
                !output.contains(line),
                "key material of {name} found in the logs"
            );
        }
    }

    // The audit trail: one event per re-encryption, on its own target.
    let audit: Vec<serde_json::Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "reseal::audit")
        .collect();
    let reencrypts: Vec<&serde_json::Value> =
        audit.iter().filter(|v| v["event"] == "reencrypt").collect();
    assert_eq!(
        reencrypts.len(),
        6,
        "one event per re-encryption (3 calls + 3 batch items)"
    );
    let first = reencrypts
        .iter()
        .find(|v| v["request_id"] == "audit-me")
        .unwrap();
    assert_eq!(first["outcome"], "ok");
    assert_eq!(first["source_key"], "connect-a");
    assert_eq!(first["caller"], "-");
    assert_eq!(first["message_id"].as_str().unwrap().len(), 32);
    assert!(
        first["consumers"]
            .as_str()
            .unwrap()
            .contains("payments[payments-2026]"),
        "{first}"
    );
    assert!(first["duration_ms"].as_f64().is_some());
    let failures: Vec<&&serde_json::Value> = reencrypts
        .iter()
        .filter(|v| v["outcome"] == "error")
        .collect();
    assert!(failures
        .iter()
        .any(|v| v["reason"] == "AUTHENTICATION_FAILED"));
    assert!(failures
        .iter()
        .any(|v| v["reason"] == "SOURCE_KEY_NOT_CONFIGURED"));
    // Security events for tampering and unknown keys.
    let security: Vec<&serde_json::Value> =
        audit.iter().filter(|v| v["event"] == "security").collect();
    assert!(
        security.iter().any(|v| v["kind"] == "tampered_input"),
        "{security:?}"
    );
    assert!(
        security.iter().any(|v| v["kind"] == "unknown_key_id"),
        "{security:?}"
    );
    // Every log line is JSON, and request-scoped lines carry the request id.
    assert!(output
        .lines()
        .all(|l| l.trim().is_empty() || serde_json::from_str::<serde_json::Value>(l).is_ok()));
    assert!(output.contains("\"request_id\":\"audit-me\""));
}

/// One HTTP/1.1 request over a fresh connection; the whole answer.
async fn http_post(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_reaches_logs_or_metrics_through_the_http_door() {
    const TOKEN: &str = "TOKEN-marker-7c1e0b9a5d3f2e8c";
    const PASSWORD: &str = "PASSWORD-marker-4d2a9f0e1b7c";
    let fx = Fixture::new();
    fx.write("token.txt", TOKEN);
    fx.write("pass.txt", PASSWORD);
    let (grpc, health, admin, http) = (free_port(), free_port(), free_port(), free_port());
    let cfg = fx.write(
        "reseal.yaml",
        &standard_config(
            "callers:\n  genesys:\n    tokens: [file:token.txt]\n    basic: [{username: genesys, password: file:pass.txt}]\n    routes: [card-capture]\n",
        )
        .replace("log_format: text", "log_format: json")
        .replace(
            "server:\n",
            &format!("server:\n  http_listen: 127.0.0.1:{http}\n  allow_plaintext_credentials: true\n"),
        ),
    );
    let log_path = fx.path("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "trace")
        .env("RESEAL_SERVER__LISTEN", format!("127.0.0.1:{grpc}"))
        .env(
            "RESEAL_SERVER__HEALTH_LISTEN",
            format!("127.0.0.1:{health}"),
        )
        .env("RESEAL_SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", http))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let input = connect_message("connect-a", CONNECT_A, MARKER);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&input);
    let body = serde_json::json!({"ciphertextBase64": b64, "route": "card-capture", "requestId": "http-audit"}).to_string();
    let bearer = format!("Bearer {TOKEN}");
    let ok = http_post(http, "/v1/reencrypt", &[("Authorization", &bearer)], &body).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("genesys:{PASSWORD}"))
    );
    let ok = http_post(http, "/v1/reencrypt", &[("Authorization", &basic)], &body).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let batch = serde_json::json!({"items": [{"ciphertextBase64": b64, "route": "card-capture"}]})
        .to_string();
    let ok = http_post(
        http,
        "/v1/reencrypt:batch",
        &[("Authorization", &bearer)],
        &batch,
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    // Refusals: a wrong token, a tampered input, a malformed body around the ciphertext.
    let wrong = format!("Bearer {TOKEN}x");
    let refused = http_post(http, "/v1/reencrypt", &[("Authorization", &wrong)], &body).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let mut tampered = input.clone();
    let n = tampered.len();
    tampered[n - 120] ^= 1;
    let bad = serde_json::json!({"ciphertext": base64::engine::general_purpose::STANDARD.encode(&tampered), "route": "card-capture"}).to_string();
    let refused = http_post(http, "/v1/reencrypt", &[("Authorization", &bearer)], &bad).await;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    let malformed = format!("{{\"consumers\": \"{b64}\"}}");
    let refused = http_post(
        http,
        "/v1/reencrypt",
        &[("Authorization", &bearer)],
        &malformed,
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(
        !refused.contains(&b64[..80]),
        "the answer repeats the ciphertext: {refused}"
    );
    let metrics = crate::harness_http(admin, "/metrics").await;

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
    let output = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        output.contains("\"level\":\"TRACE\""),
        "trace logging was on:\n{output}"
    );
    let mut secrets = forms(MARKER);
    secrets.extend([
        TOKEN.to_owned(),
        PASSWORD.to_owned(),
        b64[100..160].to_owned(),
    ]);
    secrets.push(base64::engine::general_purpose::STANDARD.encode(format!("genesys:{PASSWORD}")));
    for secret in secrets {
        assert!(!output.contains(&secret), "`{secret}` found in the logs");
        assert!(
            !metrics.contains(&secret),
            "`{secret}` found in the metrics"
        );
    }
    // The audit trail names the caller as authenticated, and the door.
    assert!(output.contains("\"caller\":\"genesys\""), "{output}");
    assert!(metrics.contains("door=\"http\""), "{metrics}");
}

/// Private key material: distinctive lines of the PEM bodies.
fn key_lines() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in ["connect-a", "payments", "fraud", "ledger-old"] {
        let pem = &keys()[name].0;
        for line in pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .skip(3)
            .take(3)
        {
            out.push((name.to_owned(), line.to_owned()));
        }
    }
    out
}

fn assert_nothing_secret(what: &str, output: &str, input: &[u8], tokens: &[&str]) {
    for form in forms(MARKER) {
        assert!(
            !output.contains(&form),
            "plaintext form `{form}` found in {what}"
        );
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(input);
    assert!(
        !output.contains(&b64[100..160]),
        "input ciphertext (base64) found in {what}"
    );
    for (name, line) in key_lines() {
        assert!(
            !output.contains(&line),
            "key material of {name} found in {what}"
        );
    }
    for token in tokens {
        assert!(!output.contains(token), "a credential found in {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_reaches_the_output_of_reseal_lambda() {
    use crate::lambda::{b64, contact_flow_event, lambda_config, CONTACT_ID};
    use crate::runtime_api::{spawn_lambda, stop, RuntimeApi};
    use serde_json::json;

    let fx = Fixture::new();
    let cfg = fx.write("lambda.yaml", &lambda_config(""));
    let api = RuntimeApi::start().await;
    let log = fx.path("lambda.log");
    let mut child = spawn_lambda(
        &api,
        &["--config", cfg.to_str().unwrap()],
        &[("RUST_LOG", "trace")],
        &log,
    );
    let input = connect_message("connect-a", CONNECT_A, MARKER);
    let mut tampered = input.clone();
    let n = tampered.len();
    tampered[n - 120] ^= 1;
    let mut answers = String::new();
    for event in [
        contact_flow_event(
            json!({"my-secret-string": b64(&input), "key-id": CONNECT_A, "route": "card-capture"}),
        ),
        contact_flow_event(json!({"my-secret-string": b64(&tampered), "route": "card-capture"})),
        json!({"encryptedData": b64(&input), "route": "with-retired", "conversationId": "conv-1"}),
        json!({"encryptedData": b64(&tampered), "route": "card-capture"}),
        json!({"ciphertextBase64": b64(&input), "route": "card-capture"}),
        json!({"ciphertext": b64(&tampered), "consumers": ["payments"], "colour": 1}),
    ] {
        answers.push_str(&api.call(&event).await.text());
        answers.push('\n');
    }
    stop(&mut child);
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(
        output.lines().count() > 20,
        "trace logging was on:\n{output}"
    );
    assert!(output.contains(CONTACT_ID), "{output}");
    assert_nothing_secret("the Lambda runtime's output", &output, &input, &[]);
    assert_nothing_secret("the Lambda answers", &answers, &input, &[]);
    assert!(answers.contains("AUTHENTICATION_FAILED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_reaches_the_output_of_reseal_call() {
    use crate::call::{reseal_call, tls_callers_config};

    let fx = Fixture::new();
    let token = "rsl_MARKER_token_0d9c8b7a6f5e4d3c";
    let password = "MARKER-basic-password-77";
    let (config, _pki) = tls_callers_config(&fx, token, password);
    let cfg = fx.write(
        "reseal.yaml",
        &config.replace("log_format: text", "log_format: json"),
    );
    let (grpc, health, admin, http) = (free_port(), free_port(), free_port(), free_port());
    let log_path = fx.path("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "trace")
        .env("RESEAL_SERVER__LISTEN", format!("127.0.0.1:{grpc}"))
        .env(
            "RESEAL_SERVER__HEALTH_LISTEN",
            format!("127.0.0.1:{health}"),
        )
        .env("RESEAL_SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("RESEAL_SERVER__HTTP_LISTEN", format!("127.0.0.1:{http}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", http)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let input = connect_message("connect-a", CONNECT_A, MARKER);
    let mut tampered = input.clone();
    let n = tampered.len();
    tampered[n - 120] ^= 1;
    fx.write(
        "input.b64",
        &base64::engine::general_purpose::STANDARD.encode(&input),
    );
    std::fs::write(fx.path("tampered.esdk"), &tampered).unwrap();
    let ca = fx.path("ca.crt").display().to_string();
    let url = format!("https://localhost:{http}");
    let input_file = fx.path("input.b64").display().to_string();
    let tampered_file = fx.path("tampered.esdk").display().to_string();
    let basic = format!("genesys:{password}");
    let basic_header = base64::engine::general_purpose::STANDARD.encode(&basic);
    let mut outputs = String::new();
    let mut codes = Vec::new();
    for (file, extra) in [
        (&input_file, vec!["--token", token]),
        (&input_file, vec!["--token", token, "--json"]),
        (&input_file, vec!["--basic", basic.as_str(), "--json"]),
        (&input_file, vec!["--token", "MARKER-wrong-token"]),
        (&tampered_file, vec!["--token", token, "--json"]),
        (&tampered_file, vec!["--basic", basic.as_str()]),
    ] {
        let mut args = vec![
            "--url",
            url.as_str(),
            "--cacert",
            ca.as_str(),
            file.as_str(),
            "--route",
            "card-capture",
        ];
        args.extend(extra);
        let out = reseal_call(&args, &[], None);
        codes.push(out.status.code());
        outputs.push_str(&String::from_utf8_lossy(&out.stdout));
        outputs.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(
        codes,
        [Some(0), Some(0), Some(0), Some(3), Some(3), Some(3)],
        "{outputs}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    for _ in 0..100 {
        if server.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    let server_output = std::fs::read_to_string(&log_path).unwrap();
    assert!(server_output.lines().count() > 20, "trace logging was on");
    let secrets = [token, password, basic_header.as_str(), "MARKER-wrong-token"];
    assert_nothing_secret("the output of reseal call", &outputs, &input, &secrets);
    assert_nothing_secret("the server's output", &server_output, &input, &secrets);
    assert!(outputs.contains("UNAUTHENTICATED") && outputs.contains("AUTHENTICATION_FAILED"));
}
