//! The Lambda Runtime API side: the invocation loop (through `lambda_runtime`,
//! which reports a handler's error or panic on `/invocation/{id}/error` and
//! goes on with the next event), and the init error report, which
//! `lambda_runtime` only makes for SnapStart.

use std::sync::Arc;
use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{Request, Uri};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use super::LambdaDoor;

/// The Runtime API address variable Lambda sets for a custom runtime.
pub const RUNTIME_API_VAR: &str = "AWS_LAMBDA_RUNTIME_API";

/// Why the runtime stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{RUNTIME_API_VAR} is not set: `reseal lambda` runs inside AWS Lambda (or a Runtime API emulator)")]
    NotInLambda,
    #[error("{RUNTIME_API_VAR}=`{0}` is not a host:port")]
    BadAddress(String),
    #[error("the Lambda Runtime API: {0}")]
    Api(String),
}

/// The Runtime API's address (`host:port`), checked.
pub fn runtime_api() -> Result<String, RuntimeError> {
    let api = std::env::var(RUNTIME_API_VAR).map_err(|_| RuntimeError::NotInLambda)?;
    if is_host_port(&api) {
        Ok(api)
    } else {
        Err(RuntimeError::BadAddress(api))
    }
}

fn is_host_port(text: &str) -> bool {
    matches!(text.parse::<Uri>(), Ok(u) if u.authority().is_some() && u.scheme().is_none() && u.path_and_query().is_none())
}

/// The function's settings `lambda_runtime` insists on (it panics without
/// them). Lambda always sets them; an emulator may not, so missing ones get
/// neutral values.
pub fn fill_function_settings() {
    for (var, default) in [
        ("AWS_LAMBDA_FUNCTION_NAME", "reseal"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
    ] {
        let usable = match std::env::var(var) {
            Ok(v) if var == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => v.parse::<i32>().is_ok(),
            Ok(_) => true,
            Err(_) => false,
        };
        if !usable {
            std::env::set_var(var, default);
        }
    }
}

/// Serves invocations until the Runtime API goes away. One event at a time,
/// as Lambda hands them to an execution environment.
pub async fn serve(door: Arc<LambdaDoor>) -> Result<(), RuntimeError> {
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let door = door.clone();
        async move {
            let (payload, context) = event.into_parts();
            door.invoke(payload, &context.request_id).await
        }
    });
    lambda_runtime::run(handler)
        .await
        .map_err(|e| RuntimeError::Api(e.to_string()))
}

/// Reports a failed initialization on `POST /2018-06-01/runtime/init/error`
/// (Lambda then logs it, fails the invocation and does not reuse the
/// environment); the caller exits non-zero after it.
pub async fn report_init_error(
    api: &str,
    error_type: &str,
    message: &str,
) -> Result<(), RuntimeError> {
    let uri: Uri = format!("http://{api}/2018-06-01/runtime/init/error")
        .parse()
        .map_err(|_| RuntimeError::BadAddress(api.to_owned()))?;
    let body = serde_json::json!({
        "errorMessage": message,
        "errorType": error_type,
        "stackTrace": [],
    });
    let request = Request::post(uri)
        .header(CONTENT_TYPE, "application/json")
        .header("Lambda-Runtime-Function-Error-Type", error_type)
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| RuntimeError::Api(e.to_string()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .map_err(|_| RuntimeError::Api("init/error: no answer within 5 s".into()))?
        .map_err(|e| RuntimeError::Api(format!("init/error: {e}")))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(RuntimeError::Api(format!(
            "init/error answered {}",
            response.status()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_api_addresses_are_host_and_port() {
        for (value, ok) in [
            ("127.0.0.1:9001", true),
            ("localhost:9001", true),
            ("", false),
            ("not a uri", false),
            ("http://x:1/path", false),
            ("http://x:1", false),
        ] {
            assert_eq!(is_host_port(value), ok, "{value}");
        }
    }
}
