//! `reseal call`: a client of a running server, for an operator at a shell.
//! gRPC by default (`--addr`), the HTTP/JSON API with `--url`. TLS with
//! `--cacert` (and `--cert`/`--key` for mTLS); a bearer token or Basic
//! credentials, taken from an argument, an environment variable or a file
//! (the last two keep secrets out of shell history).
//!
//! Exit status: 0 the call succeeded and every consumer got its envelope;
//! 1 the call succeeded but some consumer did not (`PARTIAL`); 2 a usage or
//! local error (arguments, files, not a ciphertext); 3 the server refused the
//! call (its reason is printed); 4 no answer (unreachable, TLS failure,
//! timeout, an answer that is not the API's).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::Endpoint;
use zeroize::Zeroizing;

use super::CliResult;
use crate::grpc::proto::{self, reencrypt_request::Input};
use crate::wire::json;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("input").args(["file", "ciphertext"]).required(true)))]
#[command(group(clap::ArgGroup::new("credential").args(["token", "token_env", "token_file", "basic", "basic_env", "basic_file"])))]
pub struct Args {
    /// The ciphertext: a file of raw ESDK bytes or base64 text; `-` for stdin.
    pub file: Option<PathBuf>,
    /// The ciphertext as an argument (base64).
    #[arg(long, value_name = "TEXT")]
    pub ciphertext: Option<String>,
    /// The gRPC server: `HOST:PORT` (`https://HOST:PORT` for TLS with the
    /// system's roots; `--cacert` implies TLS too).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: String,
    /// Use the HTTP/JSON API at this base URL instead of gRPC:
    /// `https://HOST:PORT` (`http://` for development).
    #[arg(long, conflicts_with = "addr")]
    pub url: Option<String>,
    /// CA certificates (PEM) that verify the server.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// A client certificate (PEM) for mTLS.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// A bearer token (`authorization: Bearer`). Prefer --token-env or --token-file.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The bearer token from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// The bearer token from this file (one line).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// HTTP Basic credentials, `USER:PASSWORD`. Prefer --basic-env or --basic-file.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub basic: Option<String>,
    /// Basic credentials (`USER:PASSWORD`) from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub basic_env: Option<String>,
    /// Basic credentials (`USER:PASSWORD`, one line) from this file.
    #[arg(long, value_name = "FILE")]
    pub basic_file: Option<PathBuf>,
    /// The route to re-seal for.
    #[arg(long)]
    pub route: Option<String>,
    /// A consumer to re-seal for (repeatable).
    #[arg(long = "consumer", value_name = "ID")]
    pub consumers: Vec<String>,
    /// The source key hint (the Amazon Connect key id).
    #[arg(long)]
    pub hint: Option<String>,
    /// The request id for the audit log (default: one the server makes).
    #[arg(long)]
    pub request_id: Option<String>,
    /// Fail the whole call when one consumer fails.
    #[arg(long)]
    pub all_or_nothing: bool,
    /// Print the response (or the error status) as JSON, envelopes in base64.
    #[arg(long)]
    pub json: bool,
    /// Write each envelope to DIR/<consumer>.esdk.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// How long to wait for the answer.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

const EXIT_PARTIAL: u8 = 1;
const EXIT_REFUSED: u8 = 3;
const EXIT_NO_ANSWER: u8 = 4;

/// A call the server refused: what its status said.
struct Refused {
    code: i32,
    reason: String,
    message: String,
    request_id: String,
    /// The status as JSON (`google.rpc.Status`), for `--json`.
    status: serde_json::Value,
}

enum Outcome {
    Answered(json::ReencryptResponse),
    Refused(Refused),
}

/// No answer: the server could not be reached or did not speak the API.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NoAnswer(String);

pub fn run(args: Args) -> CliResult {
    let ciphertext = read_ciphertext(&args)?;
    let credential = credential(&args)?;
    let tls = tls_config(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let call = async {
        match &args.url {
            Some(url) => {
                http_call(
                    &args,
                    url,
                    ciphertext,
                    credential.as_ref().map(|c| c.as_str()),
                    tls,
                )
                .await
            }
            None => {
                grpc_call(
                    &args,
                    ciphertext,
                    credential.as_ref().map(|c| c.as_str()),
                    tls,
                )
                .await
            }
        }
    };
    let outcome = runtime.block_on(async {
        tokio::time::timeout(args.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(NoAnswer(format!(
                    "no answer within {}",
                    humantime::format_duration(args.timeout)
                )))
            })
    });
    match outcome {
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_NO_ANSWER))
        }
        Ok(Outcome::Refused(r)) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r.status)?);
            }
            let rid = if r.request_id.is_empty() {
                String::new()
            } else {
                format!(" (request id {})", r.request_id)
            };
            eprintln!(
                "error: the server refused the call: {} (code {}): {}{rid}",
                if r.reason.is_empty() { "-" } else { &r.reason },
                r.code,
                r.message
            );
            Ok(ExitCode::from(EXIT_REFUSED))
        }
        Ok(Outcome::Answered(resp)) => {
            if let Some(dir) = &args.out {
                write_envelopes(dir, &resp)?;
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&resp)?);
            } else {
                print!("{}", table(&resp));
            }
            let all_ok = resp.results.iter().all(|r| r.error.is_none());
            Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_PARTIAL)
            })
        }
    }
}

/// The ciphertext as ESDK bytes (raw input passes, base64 is decoded).
fn read_ciphertext(args: &Args) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let raw = match (&args.file, &args.ciphertext) {
        (_, Some(text)) => text.as_bytes().to_vec(),
        (Some(path), None) => {
            super::read_input(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        (None, None) => return Err("give the ciphertext: FILE, `-` or --ciphertext".into()),
    };
    let bytes = crate::input::message_bytes(&raw)
        .map_err(|e| format!("the ciphertext: {e}"))?
        .into_owned();
    if bytes.is_empty() {
        return Err("the ciphertext is empty".into());
    }
    Ok(bytes)
}

/// The `authorization` value, if credentials were given.
fn credential(args: &Args) -> Result<Option<Zeroizing<String>>, Box<dyn std::error::Error>> {
    let from_env = |var: &str| -> Result<Zeroizing<String>, Box<dyn std::error::Error>> {
        std::env::var(var)
            .map(Zeroizing::new)
            .map_err(|_| format!("the environment variable {var} is not set").into())
    };
    let from_file = |path: &Path| -> Result<Zeroizing<String>, Box<dyn std::error::Error>> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        );
        Ok(Zeroizing::new(
            text.trim_end_matches(['\n', '\r']).to_owned(),
        ))
    };
    let token = match (&args.token, &args.token_env, &args.token_file) {
        (Some(t), _, _) => Some(Zeroizing::new(t.clone())),
        (_, Some(var), _) => Some(from_env(var)?),
        (_, _, Some(path)) => Some(from_file(path)?),
        _ => None,
    };
    if let Some(token) = token {
        if token.is_empty() {
            return Err("the bearer token is empty".into());
        }
        return Ok(Some(Zeroizing::new(format!("Bearer {}", token.as_str()))));
    }
    let basic = match (&args.basic, &args.basic_env, &args.basic_file) {
        (Some(b), _, _) => Some(Zeroizing::new(b.clone())),
        (_, Some(var), _) => Some(from_env(var)?),
        (_, _, Some(path)) => Some(from_file(path)?),
        _ => None,
    };
    match basic {
        None => Ok(None),
        Some(pair) if !pair.contains(':') => Err("Basic credentials are USER:PASSWORD".into()),
        Some(pair) => Ok(Some(Zeroizing::new(format!(
            "Basic {}",
            STANDARD.encode(pair.as_bytes())
        )))),
    }
}

/// TLS settings when the call goes over TLS: the roots (`--cacert`, else the
/// system's), and the client certificate.
fn tls_config(args: &Args) -> Result<Option<rustls::ClientConfig>, Box<dyn std::error::Error>> {
    let secure_scheme = match &args.url {
        Some(url) => url.starts_with("https://"),
        None => args.addr.starts_with("https://"),
    };
    if !secure_scheme && args.cacert.is_none() && args.cert.is_none() {
        return Ok(None);
    }
    if let Some(url) = &args.url {
        if !url.starts_with("https://") {
            return Err("--cacert, --cert and --key need an https:// --url".into());
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?;
    let builder = match &args.cacert {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{}: no certificate in it", path.display()).into());
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots)
        }
        None => {
            use hyper_rustls::ConfigBuilderExt as _;
            builder
                .with_native_roots()
                .map_err(|e| format!("the system's CA certificates: {e}"))?
        }
    };
    let config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("{}: {e}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|_| format!("{}: not a PEM private key", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("the client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(config))
}

/// `HOST:PORT` of a gRPC address (`http://` and `https://` prefixes dropped).
fn host_port(addr: &str) -> &str {
    addr.trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
}

fn host_of(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
}

async fn grpc_call(
    args: &Args,
    ciphertext: Vec<u8>,
    credential: Option<&str>,
    tls: Option<rustls::ClientConfig>,
) -> Result<Outcome, NoAnswer> {
    let target = host_port(&args.addr).to_owned();
    let endpoint = Endpoint::from_shared(format!("http://{target}"))
        .map_err(|e| NoAnswer(format!("--addr {}: {e}", args.addr)))?
        .connect_timeout(args.timeout);
    let channel = match tls {
        None => endpoint.connect().await,
        Some(mut config) => {
            config.alpn_protocols = vec![b"h2".to_vec()];
            let name = args
                .server_name
                .clone()
                .unwrap_or_else(|| host_of(&target).to_owned());
            let server_name = ServerName::try_from(name)
                .map_err(|e| NoAnswer(format!("the server name: {e}")))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            endpoint
                .connect_with_connector(tower::service_fn(move |_| {
                    let (connector, server_name, target) =
                        (connector.clone(), server_name.clone(), target.clone());
                    async move {
                        let tcp = tokio::net::TcpStream::connect(target.as_str()).await?;
                        let tls = connector.connect(server_name, tcp).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(tls))
                    }
                }))
                .await
        }
    }
    .map_err(|e| NoAnswer(format!("cannot reach {}: {}", args.addr, error_chain(&e))))?;
    let mut request = tonic::Request::new(proto::ReencryptRequest {
        input: Some(Input::Ciphertext(ciphertext)),
        consumers: args.consumers.clone(),
        route: args.route.clone().unwrap_or_default(),
        source_key_hint: args.hint.clone().unwrap_or_default(),
        expected_encryption_context: Default::default(),
        all_or_nothing: args.all_or_nothing,
        request_id: args.request_id.clone().unwrap_or_default(),
    });
    if let Some(value) = credential {
        let mut v = tonic::metadata::MetadataValue::try_from(value)
            .map_err(|_| NoAnswer("the credentials are not valid header text".into()))?;
        v.set_sensitive(true);
        request.metadata_mut().insert("authorization", v);
    }
    let mut client = proto::reencrypt_service_client::ReencryptServiceClient::new(channel);
    match client.reencrypt(request).await {
        Ok(resp) => Ok(Outcome::Answered(from_proto(resp.into_inner()))),
        Err(status) => refused_grpc(&status),
    }
}

/// A gRPC status: refused when it carries the API's ErrorInfo, else no answer.
fn refused_grpc(status: &tonic::Status) -> Result<Outcome, NoAnswer> {
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let Some(info) = details.error_info() else {
        return Err(NoAnswer(format!(
            "gRPC status {:?}: {}",
            status.code(),
            status.message()
        )));
    };
    let request_id = info.metadata.get("request_id").cloned().unwrap_or_default();
    let mut metadata = serde_json::Map::new();
    for (k, v) in &info.metadata {
        metadata.insert(k.clone(), v.clone().into());
    }
    let mut status_details = vec![serde_json::json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": info.reason,
        "domain": info.domain,
        "metadata": metadata,
    })];
    if let Some(retry) = details.retry_info().and_then(|r| r.retry_delay) {
        status_details.push(serde_json::json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{}.{:03}s", retry.as_secs(), retry.subsec_millis()),
        }));
    }
    let code = status.code() as i32;
    Ok(Outcome::Refused(Refused {
        code,
        reason: info.reason.clone(),
        message: status.message().to_owned(),
        request_id,
        status: serde_json::json!({
            "code": code,
            "message": status.message(),
            "details": status_details,
        }),
    }))
}

fn from_proto(resp: proto::ReencryptResponse) -> json::ReencryptResponse {
    json::ReencryptResponse {
        source_key_id: resp.source_key_id,
        message_id: resp.message_id,
        request_id: resp.request_id,
        results: resp
            .results
            .into_iter()
            .map(|r| json::ConsumerResult {
                format: match r.format() {
                    proto::EnvelopeFormat::Unspecified => String::new(),
                    f => f.as_str_name().to_owned(),
                },
                consumer: r.consumer,
                ciphertext: Some(r.ciphertext).filter(|c| !c.is_empty()),
                key_ids: r.key_ids,
                algorithm_suite: r.algorithm_suite,
                error: r.error.map(|e| json::ConsumerError {
                    reason: e.reason,
                    message: e.message,
                    retryable: e.retryable,
                }),
            })
            .collect(),
    }
}

async fn http_call(
    args: &Args,
    url: &str,
    ciphertext: Vec<u8>,
    credential: Option<&str>,
    tls: Option<rustls::ClientConfig>,
) -> Result<Outcome, NoAnswer> {
    let base = url.trim_end_matches('/');
    let target = if base.ends_with(crate::http::REENCRYPT_PATH) {
        base.to_owned()
    } else {
        format!("{base}{}", crate::http::REENCRYPT_PATH)
    };
    let uri: http::Uri = target
        .parse()
        .map_err(|e| NoAnswer(format!("--url {url}: {e}")))?;
    let body = json::ReencryptRequest {
        ciphertext: Some(ciphertext),
        consumers: args.consumers.clone(),
        route: args.route.clone().unwrap_or_default(),
        source_key_hint: args.hint.clone().unwrap_or_default(),
        all_or_nothing: args.all_or_nothing,
        request_id: args.request_id.clone().unwrap_or_default(),
        ..Default::default()
    };
    let body = serde_json::to_vec(&body).map_err(|e| NoAnswer(e.to_string()))?;
    let mut request = http::Request::post(uri).header(CONTENT_TYPE, "application/json");
    if let Some(value) = credential {
        let mut v = http::HeaderValue::from_str(value)
            .map_err(|_| NoAnswer("the credentials are not valid header text".into()))?;
        v.set_sensitive(true);
        request = request.header(AUTHORIZATION, v);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| NoAnswer(e.to_string()))?;
    let builder = match tls {
        Some(config) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config),
        // Plaintext: the connector only passes http:// through.
        None => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| NoAnswer(e.to_string()))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        ),
    };
    let builder = builder.https_or_http();
    let builder = match &args.server_name {
        Some(name) => {
            let name = ServerName::try_from(name.clone())
                .map_err(|e| NoAnswer(format!("the server name: {e}")))?;
            builder.with_server_name_resolver(move |_: &_| {
                Ok::<_, std::convert::Infallible>(name.clone())
            })
        }
        None => builder,
    };
    let connector = builder.enable_http1().build();
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, Full<Bytes>>(connector);
    let response = client
        .request(request)
        .await
        .map_err(|e| NoAnswer(format!("cannot reach {url}: {}", error_chain(&e))))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| NoAnswer(format!("reading the answer: {e}")))?
        .to_bytes();
    if status.is_success() {
        return json::from_body::<json::ReencryptResponse>(&bytes, "ReencryptResponse")
            .map(Outcome::Answered)
            .map_err(|e| NoAnswer(format!("HTTP {status}: {}", e.message)));
    }
    let parsed: json::Status = json::from_body(&bytes, "google.rpc.Status").map_err(|_| {
        NoAnswer(format!(
            "HTTP {status}, and the body is not a google.rpc.Status"
        ))
    })?;
    let request_id = parsed
        .details
        .iter()
        .find_map(|d| d.pointer("/metadata/request_id")?.as_str())
        .unwrap_or_default()
        .to_owned();
    Ok(Outcome::Refused(Refused {
        code: parsed.code,
        reason: parsed.reason().unwrap_or_default().to_owned(),
        message: parsed.message.clone(),
        request_id,
        status: serde_json::to_value(&parsed).unwrap_or_default(),
    }))
}

/// An error with its causes (connection errors hide the useful part there).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

fn write_envelopes(dir: &Path, resp: &json::ReencryptResponse) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for r in &resp.results {
        if let Some(c) = &r.ciphertext {
            let safe: String = r
                .consumer
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            std::fs::write(dir.join(format!("{safe}.esdk")), c)?;
        }
    }
    Ok(())
}

/// The answer as a table: one row per consumer.
fn table(resp: &json::ReencryptResponse) -> String {
    let mut out = String::new();
    out.push_str(&format!("request  {}\n", resp.request_id));
    out.push_str(&format!("source   {}\n", resp.source_key_id));
    out.push_str(&format!("message  {}\n\n", resp.message_id));
    let rows: Vec<[String; 6]> = resp
        .results
        .iter()
        .map(|r| match &r.error {
            None => [
                r.consumer.clone(),
                "ok".into(),
                r.algorithm_suite.clone(),
                r.ciphertext.as_ref().map_or(0, Vec::len).to_string(),
                r.key_ids.join(","),
                String::new(),
            ],
            Some(e) => [
                r.consumer.clone(),
                "error".into(),
                String::new(),
                String::new(),
                String::new(),
                format!("{}: {}", e.reason, e.message),
            ],
        })
        .collect();
    let header = ["CONSUMER", "RESULT", "SUITE", "BYTES", "KEYS", "ERROR"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(
            host_port("https://reseal.internal:50051/"),
            "reseal.internal:50051"
        );
        assert_eq!(host_of("reseal.internal:50051"), "reseal.internal");
        assert_eq!(host_of("[::1]:50051"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }

    #[test]
    fn the_table_has_a_row_per_consumer() {
        let resp = json::ReencryptResponse {
            request_id: "r-1".into(),
            source_key_id: "connect-a".into(),
            message_id: "ab".into(),
            results: vec![
                json::ConsumerResult {
                    consumer: "payments".into(),
                    ciphertext: Some(vec![1, 2, 3]),
                    key_ids: vec!["p-2026".into()],
                    algorithm_suite: "0x0478".into(),
                    format: "ENVELOPE_FORMAT_ESDK".into(),
                    error: None,
                },
                json::ConsumerResult {
                    consumer: "ledger".into(),
                    error: Some(json::ConsumerError {
                        reason: "KEY_EXPIRED".into(),
                        message: "no active key".into(),
                        retryable: false,
                    }),
                    ..Default::default()
                },
            ],
        };
        let t = table(&resp);
        assert!(t.contains("request  r-1"), "{t}");
        let payments = t.lines().find(|l| l.starts_with("payments")).unwrap();
        assert!(
            payments.contains("ok") && payments.contains("0x0478") && payments.contains("p-2026")
        );
        let ledger = t.lines().find(|l| l.starts_with("ledger")).unwrap();
        assert!(ledger.contains("error") && ledger.contains("KEY_EXPIRED: no active key"));
    }
}
