//! `reseal lambda`, the real binary, against the Lambda Runtime API of
//! `runtime_api.rs`: an Amazon Connect `ContactFlowEvent`, a Genesys Cloud
//! Lambda data action payload and direct invocations, every envelope opened
//! by the reference Python ESDK; init errors on `/init/error`; a bad
//! invocation that costs only itself; the Connect answer-size refusal; the
//! registry from Parameter Store.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::harness::*;
use crate::runtime_api::*;

pub const CONTACT_ID: &str = "4a573372-1f28-4e26-b97b-0123456789ab";
const CARD: &[u8] = b"4111111111111111";

/// The test registry: `standard_config`, plus a consumer whose only key has
/// expired (a per-consumer failure), a route to it, JSON logs, and `extra`.
pub fn lambda_config(extra: &str) -> String {
    standard_config(extra)
        .replace("log_format: text", "log_format: json")
        .replacen(
            "consumers:\n",
            "consumers:\n  retired:\n    keys:\n      retired-2020:\n        type: rsa-public\n        public_key: file:stranger.pub.pem\n        not_after: 2020-01-01T00:00:00Z\n",
            1,
        )
        .replacen(
            "routes:\n",
            "routes:\n  with-retired: [payments, retired]\n",
            1,
        )
}

/// An Amazon Connect `ContactFlowEvent` as the "Invoke AWS Lambda function"
/// block sends it: the sample of the AWS Lambda Developer Guide ("Using Lambda
/// with Amazon Connect"), with the parameters the flow block sets.
pub fn contact_flow_event(parameters: Value) -> Value {
    json!({
        "Details": {
            "ContactData": {
                "Attributes": {},
                "Channel": "VOICE",
                "ContactId": CONTACT_ID,
                "CustomerEndpoint": {"Address": "+1234567890", "Type": "TELEPHONE_NUMBER"},
                "InitialContactId": CONTACT_ID,
                "InitiationMethod": "INBOUND",
                "InstanceARN": "arn:aws:connect:us-east-1:111122223333:instance/c8c0e68d-2200-4265-82c0-0123456789ab",
                "PreviousContactId": CONTACT_ID,
                "Queue": {
                    "ARN": "arn:aws:connect:us-east-1:111122223333:instance/c8c0e68d-2200-4265-82c0-0123456789ab/queue/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                    "Name": "CardPayments"
                },
                "SystemEndpoint": {"Address": "+1234567890", "Type": "TELEPHONE_NUMBER"}
            },
            "Parameters": parameters
        },
        "Name": "ContactFlowEvent"
    })
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn tampered(mut message: Vec<u8>) -> Vec<u8> {
    let n = message.len();
    message[n - 120] ^= 1;
    message
}

/// The private key file and key name that open each consumer's envelope now.
fn consumer_key(fx: &Fixture, consumer: &str) -> Value {
    let (name, file) = match consumer {
        "payments" => ("payments-2026", "payments"),
        "fraud" => ("fraud-2026", "fraud"),
        "ledger" => ("ledger-old", "ledger-old"),
        other => panic!("no key for {other}"),
    };
    json!([{"name": name, "pem": fx.path(&format!("{file}.pem"))}])
}

/// A case for `esdk_open.py`.
fn case(fx: &Fixture, label: &str, consumer: &str, envelope: &str, plaintext: &[u8]) -> Value {
    json!({
        "label": label,
        "envelope": envelope,
        "plaintext": b64(plaintext),
        "keys": consumer_key(fx, consumer),
    })
}

/// The reference Python ESDK opens every case, or the test fails.
fn open_with_reference_esdk(fx: &Fixture, cases: &[Value]) {
    let Some(py) = python() else { return };
    let file = fx.write("cases.json", &Value::from(cases.to_vec()).to_string());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/esdk_open.py");
    let out = Command::new(py).arg(script).arg(file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("all {} envelopes opened", cases.len())),
        "{stdout}"
    );
}

fn assert_flat_strings(answer: &Value) {
    let object = answer.as_object().expect("an object");
    for (k, v) in object {
        assert!(v.is_string(), "`{k}` is not a string: {answer}");
    }
}

fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_serves_connect_genesys_and_direct_invocations() {
    let fx = Fixture::new();
    fx.write("reseal.yaml", &lambda_config(""));
    let api = RuntimeApi::start().await;
    let log = fx.path("lambda.log");
    // No --config: the function's bundled $LAMBDA_TASK_ROOT/reseal.yaml.
    let task_root = fx.dir.path().to_str().unwrap().to_owned();
    let mut child = spawn_lambda(&api, &[], &[("LAMBDA_TASK_ROOT", &task_root)], &log);
    let input = connect_message("connect-a", CONNECT_A, CARD);
    let mut cases = Vec::new();

    // Amazon Connect: every consumer of the route, one attribute each.
    let event = contact_flow_event(json!({
        "my-secret-string": b64(&input),
        "key-id": CONNECT_A,
        "route": "card-capture",
    }));
    let answer = api.call(&event).await.answer();
    assert_flat_strings(&answer);
    assert_eq!(answer["status"], "OK", "{answer}");
    assert_eq!(
        answer["requestId"], CONTACT_ID,
        "ContactId is the request id"
    );
    assert_eq!(answer["sourceKeyId"], "connect-a");
    assert_eq!(answer["messageId"].as_str().unwrap().len(), 32);
    for consumer in ["payments", "fraud", "ledger"] {
        let envelope = answer[consumer].as_str().unwrap();
        cases.push(case(
            &fx,
            &format!("connect {consumer}"),
            consumer,
            envelope,
            CARD,
        ));
        assert!(answer.get(format!("{consumer}_error")).is_none());
    }
    assert!(answer.get("errorReason").is_none());
    // The envelope's context carries the request id: the ContactId.
    let payments = STANDARD
        .decode(answer["payments"].as_str().unwrap())
        .unwrap();
    let opened = open_as("payments", "payments-2026", &payments).unwrap();
    assert_eq!(
        opened.header.encryption_context.get("reseal-request-id"),
        Some(CONTACT_ID)
    );

    // A consumer without a usable key: PARTIAL, its reason in `<consumer>_error`.
    let answer = api
        .call(&contact_flow_event(json!({
            "my-secret-string": b64(&input),
            "route": "with-retired",
        })))
        .await
        .answer();
    assert_flat_strings(&answer);
    assert_eq!(answer["status"], "PARTIAL", "{answer}");
    assert_eq!(answer["retired_error"], "KEY_EXPIRED");
    assert!(answer.get("retired").is_none());
    cases.push(case(
        &fx,
        "connect partial payments",
        "payments",
        answer["payments"].as_str().unwrap(),
        CARD,
    ));

    // A failed call is an ERROR answer (never a function error: Connect retries those).
    let answer = api
        .call(&contact_flow_event(json!({
            "my-secret-string": b64(&tampered(input.clone())),
            "route": "card-capture",
        })))
        .await
        .answer();
    assert_flat_strings(&answer);
    assert_eq!(answer["status"], "ERROR");
    assert_eq!(answer["errorReason"], "AUTHENTICATION_FAILED");
    assert_eq!(answer["retryable"], "false");
    assert_eq!(answer["requestId"], CONTACT_ID);
    assert!(!answer["errorMessage"].as_str().unwrap().is_empty());
    let answer = api
        .call(&contact_flow_event(json!({"route": "card-capture"})))
        .await
        .answer();
    assert_eq!(answer["errorReason"], "NO_DATA_SUPPLIED", "{answer}");
    assert!(answer["errorMessage"]
        .as_str()
        .unwrap()
        .contains("my-secret-string"));

    // The answer-size limit: Connect takes less than 32 KB. 20,000 bytes of
    // plaintext still fit (27 KB of base64); 30,000 do not.
    let fits = vec![b'7'; 20_000];
    let answer = api
        .call(&contact_flow_event(json!({
            "my-secret-string": b64(&connect_message("connect-a", CONNECT_A, &fits)),
            "consumers": "payments",
        })))
        .await
        .answer();
    assert_eq!(answer["status"], "OK", "{}", answer["errorMessage"]);
    assert!(answer.to_string().len() <= 32_000);
    let too_big = vec![b'7'; 30_000];
    let outcome = api
        .call(&contact_flow_event(json!({
            "my-secret-string": b64(&connect_message("connect-a", CONNECT_A, &too_big)),
            "consumers": "payments",
        })))
        .await;
    let answer = outcome.answer();
    assert_flat_strings(&answer);
    assert_eq!(answer["status"], "ERROR");
    assert_eq!(answer["errorReason"], "MAXIMUM_DATA_SIZE_EXCEEDED");
    assert_eq!(answer["requestId"], CONTACT_ID);
    assert!(answer.get("payments").is_none());
    assert!(answer.to_string().len() < 1000);

    // A payload that is not JSON costs only its own invocation.
    let id = api.invoke_raw(b"{this is not json".to_vec());
    let outcome = api.outcome(&id, Duration::from_secs(30)).await;
    let (error_type, _) = outcome.error();
    assert!(!error_type.is_empty());
    assert!(matches!(
        &outcome,
        Outcome::Error {
            error_type_header: Some(_),
            ..
        }
    ));
    let answer = api.call(&event).await.answer();
    assert_eq!(
        answer["status"], "OK",
        "the next invocation is served: {answer}"
    );

    // Genesys Cloud: a Lambda data action's request template output.
    let genesys = json!({
        "encryptedData": b64(&input),
        "route": "card-capture",
        "conversationId": "conv-42",
        "participantName": "ignored",
    });
    let answer = api.call(&genesys).await.answer();
    assert_flat_strings(&answer);
    assert_eq!(answer["status"], "OK", "{answer}");
    assert_eq!(answer["requestId"], "conv-42");
    for consumer in ["payments", "fraud", "ledger"] {
        cases.push(case(
            &fx,
            &format!("genesys {consumer}"),
            consumer,
            answer[consumer].as_str().unwrap(),
            CARD,
        ));
    }
    // A failed call is a function error (the data action's Failure path), its
    // type the reason.
    let outcome = api
        .call(&json!({"encryptedData": b64(&tampered(input.clone())), "route": "card-capture", "conversationId": "conv-43"}))
        .await;
    let (error_type, message) = outcome.error();
    assert_eq!(error_type, "AUTHENTICATION_FAILED");
    assert!(message.starts_with("AUTHENTICATION_FAILED: "), "{message}");
    assert!(message.contains("conv-43"), "{message}");
    // A partial result is an answer.
    let answer = api
        .call(&json!({"encryptedData": b64(&input), "consumers": ["payments", "retired"]}))
        .await
        .answer();
    assert_eq!(answer["status"], "PARTIAL", "{answer}");
    assert_eq!(answer["retired_error"], "KEY_EXPIRED");

    // Direct invocation: the HTTP/JSON API's body and answers.
    let answer = api
        .call(&json!({"ciphertextBase64": b64(&input), "route": "card-capture", "requestId": "direct-1"}))
        .await
        .answer();
    assert_eq!(answer["requestId"], "direct-1", "{answer}");
    assert_eq!(answer["sourceKeyId"], "connect-a");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        let consumer = r["consumer"].as_str().unwrap();
        assert_eq!(r["algorithmSuite"], "0x0478");
        cases.push(case(
            &fx,
            &format!("direct {consumer}"),
            consumer,
            r["ciphertext"].as_str().unwrap(),
            CARD,
        ));
    }
    let status = api
        .call(&json!({"ciphertextBase64": b64(&tampered(input.clone())), "consumers": ["payments"], "requestId": "direct-2"}))
        .await
        .answer();
    assert_eq!(status["code"], 3, "{status}");
    assert_eq!(status["details"][0]["reason"], "AUTHENTICATION_FAILED");
    assert_eq!(status["details"][0]["metadata"]["request_id"], "direct-2");
    let status = api
        .call(&json!({"ciphertextBase64": b64(&input), "colour": "blue"}))
        .await
        .answer();
    assert_eq!(
        status["details"][0]["reason"], "MALFORMED_REQUEST",
        "{status}"
    );
    let batch = api
        .call(&json!({"items": [
            {"ciphertext": b64(&input), "consumers": ["fraud"]},
            {"ciphertext": b64(b"\x02nonsense"), "consumers": ["fraud"]},
        ]}))
        .await
        .answer();
    assert!(
        batch["results"][0]["response"]["results"][0]["ciphertext"].is_string(),
        "{batch}"
    );
    assert_eq!(
        batch["results"][1]["error"]["reason"],
        "MALFORMED_CIPHERTEXT"
    );

    // Still one process for everything.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the runtime is still running"
    );
    stop(&mut child);

    // The audit trail names the ContactId and the Genesys conversation.
    let lines = log_lines(&log);
    let audit: Vec<&Value> = lines
        .iter()
        .filter(|v| v["target"] == "reseal::audit" && v["event"] == "reencrypt")
        .collect();
    assert!(
        audit
            .iter()
            .any(|v| v["request_id"] == CONTACT_ID && v["outcome"] == "ok"),
        "{audit:?}"
    );
    assert!(audit.iter().any(|v| v["request_id"] == "conv-42"));
    // Every Connect call (OK, partial, tampered, the two large ones, the one
    // after the bad payload) is audited under the ContactId...
    let by_contact = audit
        .iter()
        .filter(|v| v["request_id"] == CONTACT_ID)
        .count();
    assert!(by_contact >= 6, "{by_contact}: {audit:?}");
    // ... and an event without an id of its own under the Lambda request id.
    assert!(
        audit.iter().any(|v| v["request_id"]
            .as_str()
            .unwrap_or("")
            .starts_with("8476a536")),
        "{audit:?}"
    );

    open_with_reference_esdk(&fx, &cases);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_acts_as_its_registry_caller() {
    let fx = Fixture::new();
    let cfg = fx.write(
        "lambda.yaml",
        &lambda_config(&format!(
            "callers:\n  ivr:\n    identities: [\"{FUNCTION_ARN}\"]\n    routes: [card-capture]\nlambda:\n  caller: ivr\n  connect:\n    default_route: card-capture\n  genesys:\n    failures: answer\n"
        )),
    );
    let api = RuntimeApi::start().await;
    let log = fx.path("lambda.log");
    let mut child = spawn_lambda(&api, &["--config", cfg.to_str().unwrap()], &[], &log);
    let input = connect_message("connect-a", CONNECT_A, CARD);

    // Its grants: the default route is allowed, another route is not.
    let answer = api
        .call(&contact_flow_event(
            json!({"my-secret-string": b64(&input)}),
        ))
        .await
        .answer();
    assert_eq!(answer["status"], "OK", "{answer}");
    let answer = api
        .call(&contact_flow_event(
            json!({"my-secret-string": b64(&input), "route": "with-retired"}),
        ))
        .await
        .answer();
    assert_eq!(answer["status"], "ERROR");
    assert_eq!(answer["errorReason"], "PERMISSION_DENIED", "{answer}");

    // `genesys.failures: answer`: the failure is a Success answer with its reason.
    let answer = api
        .call(&json!({"encryptedData": b64(&tampered(input.clone())), "route": "card-capture"}))
        .await
        .answer();
    assert_flat_strings(&answer);
    assert_eq!(answer["status"], "ERROR");
    assert_eq!(answer["errorReason"], "AUTHENTICATION_FAILED");
    stop(&mut child);
    let lines = log_lines(&log);
    assert!(
        lines
            .iter()
            .any(|v| v["target"] == "reseal::audit" && v["caller"] == "ivr"),
        "the audit log names the caller the function acts as"
    );
}

/// A configuration `reseal lambda` must refuse at init, reported on
/// `/init/error` before the process exits non-zero, without ever asking for
/// an event.
async fn refused_at_init(fx: &Fixture, args: &[&str], envs: &[(&str, &str)]) -> String {
    let api = RuntimeApi::start().await;
    let log = fx.path("init.log");
    let mut child = spawn_lambda(&api, args, envs, &log);
    let report = api.init_error(Duration::from_secs(30)).await;
    let status = exit_status(&mut child, Duration::from_secs(10)).await;
    stop(&mut child);
    let report = report.unwrap_or_else(|| {
        panic!(
            "no /init/error report:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let status = status.expect("the runtime exits after an init error");
    assert!(!status.success(), "{status:?}");
    assert_eq!(api.next_calls(), 0, "no event was asked for");
    assert_eq!(
        report.error_type_header.as_deref(),
        Some("Runtime.ConfigInvalid")
    );
    assert_eq!(report.body["errorType"], "Runtime.ConfigInvalid");
    assert!(report.body["stackTrace"].is_array());
    report.body["errorMessage"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_errors_are_reported_on_init_error() {
    let fx = Fixture::new();
    // A broken registry: a consumer key file that does not exist.
    let broken = fx.write(
        "broken.yaml",
        &lambda_config("").replace("file:fraud.pub.pem", "file:missing.pub.pem"),
    );
    let message = refused_at_init(&fx, &["--config", broken.to_str().unwrap()], &[]).await;
    assert!(message.contains("consumers.fraud"), "{message}");
    assert!(message.contains("missing.pub.pem"), "{message}");

    // A `lambda` section that cannot work: callers without lambda.caller.
    let no_caller = fx.write(
        "no-caller.yaml",
        &lambda_config(&format!(
            "callers:\n  ivr:\n    identities: [\"{FUNCTION_ARN}\"]\n    routes: [card-capture]\n"
        )),
    );
    let message = refused_at_init(&fx, &["--config", no_caller.to_str().unwrap()], &[]).await;
    assert!(message.contains("lambda.caller"), "{message}");

    // A misspelt field of the section.
    let typo = fx.write(
        "typo.yaml",
        &lambda_config("lambda:\n  connect:\n    ciphertext_param: x\n"),
    );
    let message = refused_at_init(&fx, &["--config", typo.to_str().unwrap()], &[]).await;
    assert!(message.contains("ciphertext_param"), "{message}");

    // No configuration where it was said to be.
    let message = refused_at_init(&fx, &["--config", "/nonexistent/reseal.yaml"], &[]).await;
    assert!(message.contains("/nonexistent/reseal.yaml"), "{message}");
}

/// moto's address (the test command starts it); skips locally without it.
fn moto() -> Option<String> {
    match std::env::var("RESEAL_MOTO_URL") {
        Ok(u) => Some(u),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "RESEAL_MOTO_URL must be set in CI"
            );
            eprintln!("SKIPPING: RESEAL_MOTO_URL not set");
            None
        }
    }
}

fn aws_env(moto: &str) -> Vec<(&'static str, String)> {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    vec![
        ("AWS_ENDPOINT_URL", moto.to_owned()),
        ("AWS_ACCESS_KEY_ID", var("AWS_ACCESS_KEY_ID", "testing")),
        (
            "AWS_SECRET_ACCESS_KEY",
            var("AWS_SECRET_ACCESS_KEY", "testing"),
        ),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_comes_from_parameter_store() {
    let Some(moto) = moto() else { return };
    let fx = Fixture::new();
    let name = format!("/reseal/lambda-test/{}", std::process::id());
    let config = lambda_config("lambda:\n  connect:\n    ciphertext_parameter: customerInput\n");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&moto)
        .load()
        .await;
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&name)
        .value(&config)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let env = aws_env(&moto);
    let task_root = fx.dir.path().to_str().unwrap().to_owned();
    let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // `file:` references are relative to the function's task root.
    envs.push(("LAMBDA_TASK_ROOT", &task_root));
    let reference = format!("ssm:{name}");

    let api = RuntimeApi::start().await;
    let log = fx.path("lambda.log");
    // Given as RESEAL_CONFIG, the way a function's environment sets it.
    let mut with_config = envs.clone();
    with_config.push(("RESEAL_CONFIG", &reference));
    let mut child = spawn_lambda(&api, &[], &with_config, &log);
    let input = connect_message("connect-a", CONNECT_A, CARD);
    let answer = api
        .call(&contact_flow_event(
            json!({"customerInput": b64(&input), "route": "card-capture"}),
        ))
        .await
        .answer();
    assert_eq!(answer["status"], "OK", "{answer}");
    stop(&mut child);

    // A parameter that does not exist is an init error naming it.
    let missing = format!("ssm:{name}-missing");
    let message = refused_at_init(&fx, &["--config", &missing], &envs).await;
    assert!(message.contains(&missing), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_named_bootstrap_is_the_runtime() {
    // How Lambda starts a custom runtime: `$LAMBDA_TASK_ROOT/bootstrap`, no
    // arguments. An emulator may set no AWS_LAMBDA_FUNCTION_* variables.
    let fx = Fixture::new();
    fx.write("reseal.yaml", &lambda_config(""));
    let bootstrap = fx.path("bootstrap");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_reseal"), &bootstrap).unwrap();
    let api = RuntimeApi::start().await;
    let log = std::fs::File::create(fx.path("bootstrap.log")).unwrap();
    let mut child = std::process::Command::new(&bootstrap)
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("LAMBDA_TASK_ROOT", fx.dir.path())
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .env_remove("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .env_remove("AWS_LAMBDA_FUNCTION_VERSION")
        .env_remove("RESEAL_CONFIG")
        .current_dir(fx.dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let input = connect_message("connect-a", CONNECT_A, CARD);
    let answer = api
        .call(&contact_flow_event(
            json!({"my-secret-string": b64(&input), "route": "card-capture"}),
        ))
        .await
        .answer();
    stop(&mut child);
    assert_eq!(answer["status"], "OK", "{answer}");
    assert_eq!(answer["requestId"], CONTACT_ID);
}
