//! `reseal call`, the real binary, against a running server over both
//! transports: its table and JSON, every exit status (0 all consumers, 1
//! partial, 2 usage, 3 refused, 4 no answer), TLS, mTLS, tokens and Basic
//! credentials from arguments, environment variables and files.

use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::harness::*;
use crate::lambda::lambda_config;
use crate::mtls::{pki, tls_config, uri};

const CARD: &[u8] = b"4111111111111111";

pub fn reseal_call(args: &[&str], envs: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reseal"));
    cmd.arg("call")
        .args(args)
        .env_remove("RESEAL_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// Opens every envelope of a `--json` answer with the consumer's key.
fn open_all(answer: &Value) {
    use base64::Engine as _;
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{answer}");
    for r in results {
        let (key, name) = match r["consumer"].as_str().unwrap() {
            "payments" => ("payments", "payments-2026"),
            "fraud" => ("fraud", "fraud-2026"),
            "ledger" => ("ledger-old", "ledger-old"),
            other => panic!("{other}"),
        };
        let envelope = base64::engine::general_purpose::STANDARD
            .decode(r["ciphertext"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            open_as(key, name, &envelope).unwrap().plaintext.as_bytes(),
            CARD
        );
    }
}

fn write_inputs(fx: &Fixture) -> (String, String, String) {
    use base64::Engine as _;
    let input = connect_message("connect-a", CONNECT_A, CARD);
    let mut bad = input.clone();
    let n = bad.len();
    bad[n - 120] ^= 1;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    fx.write("input.b64", &format!("{}\n", b64(&input)));
    std::fs::write(fx.path("input.esdk"), &input).unwrap();
    fx.write("tampered.b64", &b64(&bad));
    (
        fx.path("input.b64").display().to_string(),
        fx.path("input.esdk").display().to_string(),
        fx.path("tampered.b64").display().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reseal_call_over_grpc_and_http_json() {
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &lambda_config("").replace("server:\n", "server:\n  http_listen: 127.0.0.1:0\n"),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let (input_b64, input_raw, tampered) = write_inputs(&fx);
    let grpc = running.grpc_addr.to_string();
    let http = format!("http://{}", running.http_addr.expect("the HTTP/JSON door"));
    let transports: [(&str, &str); 2] = [("--addr", &grpc), ("--url", &http)];

    for (flag, target) in transports {
        // Every consumer got its envelope: a table, exit 0.
        let out = reseal_call(
            &[flag, target, &input_b64, "--route", "card-capture"],
            &[],
            None,
        );
        assert_eq!(code(&out), 0, "{flag}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        for consumer in ["payments", "fraud", "ledger"] {
            let row = stdout
                .lines()
                .find(|l| l.starts_with(consumer))
                .unwrap_or_else(|| panic!("{stdout}"));
            assert!(row.contains(" ok ") && row.contains("0x0478"), "{row}");
        }
        assert!(stdout.contains("source   connect-a"), "{stdout}");

        // --json, raw bytes on stdin, a request id; the envelopes open.
        let dir = fx.path(&format!("out{}", flag.trim_start_matches('-')));
        let raw = std::fs::read(&input_raw).unwrap();
        let out = reseal_call(
            &[
                flag,
                target,
                "-",
                "--route",
                "card-capture",
                "--json",
                "--request-id",
                "op-1",
                "--out",
                dir.to_str().unwrap(),
            ],
            &[],
            Some(&raw),
        );
        assert_eq!(code(&out), 0, "{flag}: {}", text(&out));
        let answer = json_out(&out);
        assert_eq!(answer["requestId"], "op-1");
        open_all(&answer);
        let written = std::fs::read(dir.join("payments.esdk")).unwrap();
        assert!(open_as("payments", "payments-2026", &written).is_ok());

        // The ciphertext as an argument, consumers named one by one, a hint.
        let text_arg = std::fs::read_to_string(&input_b64).unwrap();
        let out = reseal_call(
            &[
                flag,
                target,
                "--ciphertext",
                text_arg.trim(),
                "--consumer",
                "payments",
                "--consumer",
                "fraud",
                "--hint",
                CONNECT_A,
                "--json",
            ],
            &[],
            None,
        );
        assert_eq!(code(&out), 0, "{flag}: {}", text(&out));
        assert_eq!(json_out(&out)["results"].as_array().unwrap().len(), 2);

        // A consumer without its envelope: exit 1, its reason in the table.
        let out = reseal_call(
            &[flag, target, &input_b64, "--route", "with-retired"],
            &[],
            None,
        );
        assert_eq!(code(&out), 1, "{flag}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let row = stdout.lines().find(|l| l.starts_with("retired")).unwrap();
        assert!(
            row.contains("error") && row.contains("KEY_EXPIRED"),
            "{row}"
        );
        // ... unless all or nothing: then the call is refused.
        let out = reseal_call(
            &[
                flag,
                target,
                &input_b64,
                "--route",
                "with-retired",
                "--all-or-nothing",
            ],
            &[],
            None,
        );
        assert_eq!(code(&out), 3, "{flag}: {}", text(&out));

        // The server refuses: exit 3, the reason on stderr, the status with --json.
        let out = reseal_call(
            &[flag, target, &tampered, "--consumer", "payments"],
            &[],
            None,
        );
        assert_eq!(code(&out), 3, "{flag}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("AUTHENTICATION_FAILED"),
            "{}",
            text(&out)
        );
        let out = reseal_call(
            &[flag, target, &tampered, "--consumer", "payments", "--json"],
            &[],
            None,
        );
        assert_eq!(code(&out), 3);
        let status = json_out(&out);
        assert_eq!(status["code"], 3, "{status}");
        assert_eq!(status["details"][0]["reason"], "AUTHENTICATION_FAILED");
        let out = reseal_call(
            &[flag, target, &input_b64, "--route", "no-such-route"],
            &[],
            None,
        );
        assert_eq!(code(&out), 3);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("UNKNOWN_ROUTE"),
            "{}",
            text(&out)
        );
    }

    // Nobody there: exit 4.
    let closed = format!("127.0.0.1:{}", free_port());
    for (flag, target) in [
        ("--addr", closed.clone()),
        ("--url", format!("http://{closed}")),
    ] {
        let out = reseal_call(
            &[
                flag,
                &target,
                &input_b64,
                "--route",
                "card-capture",
                "--timeout",
                "3s",
            ],
            &[],
            None,
        );
        assert_eq!(code(&out), 4, "{flag}: {}", text(&out));
    }
    // Usage and local errors: exit 2.
    let out = reseal_call(
        &[
            "--addr",
            &grpc,
            "/nonexistent/input",
            "--route",
            "card-capture",
        ],
        &[],
        None,
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    let out = reseal_call(
        &[
            "--addr",
            &grpc,
            "--ciphertext",
            "*not base64*",
            "--route",
            "x",
        ],
        &[],
        None,
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    let out = reseal_call(&["--addr", &grpc, "--route", "card-capture"], &[], None);
    assert_eq!(code(&out), 2, "no ciphertext: {}", text(&out));
    let out = reseal_call(
        &[
            "--addr",
            &grpc,
            &input_b64,
            "--token-env",
            "RESEAL_TEST_UNSET_VAR",
        ],
        &[],
        None,
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    running.stop().await.unwrap();
}

pub const API: &str = "spiffe://reseal.test/ns/payments/sa/api";

/// TLS on both listeners (client certificates required for gRPC, optional
/// for HTTP/JSON), a certificate caller and a caller with a token and Basic
/// credentials, all given by file.
pub fn tls_callers_config(fx: &Fixture, token: &str, password: &str) -> (String, crate::mtls::Pki) {
    let pki = pki();
    fx.write("token.txt", &format!("{token}\n"));
    fx.write("password.txt", password);
    let config = lambda_config(&format!(
        "callers:\n  api:\n    identities: [\"{API}\"]\n    routes: [card-capture]\n  genesys:\n    tokens: [\"file:token.txt\"]\n    basic:\n      - {{username: genesys, password: \"file:password.txt\"}}\n    routes: [card-capture]\n"
    ))
    .replace(
        "server:\n",
        &format!("server:\n  http_listen: 127.0.0.1:0\n{}", tls_config(fx, &pki)),
    );
    (config, pki)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reseal_call_with_tls_tokens_and_basic_credentials() {
    let fx = Fixture::new();
    let token = "rsl_test_token_5f0c1a2b3c4d5e6f";
    let (config, pki) = tls_callers_config(&fx, token, "s3cret-pass-0123456789");
    let cfg = fx.write("reseal.yaml", &config);
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let (input_b64, _, _) = write_inputs(&fx);
    let ca = fx.path("ca.crt").display().to_string();
    let url = format!("https://localhost:{}", running.http_addr.unwrap().port());
    let base = [
        url.as_str(),
        "--cacert",
        ca.as_str(),
        input_b64.as_str(),
        "--route",
        "card-capture",
    ];
    let call = |extra: &[&str], envs: &[(&str, &str)]| {
        let mut args = vec!["--url"];
        args.extend_from_slice(&base);
        args.extend_from_slice(extra);
        reseal_call(&args, envs, None)
    };

    // The token: from a file, from an environment variable, as an argument.
    let token_file = fx.path("token.txt").display().to_string();
    let out = call(&["--token-file", &token_file], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = call(
        &["--token-env", "RESEAL_TEST_TOKEN"],
        &[("RESEAL_TEST_TOKEN", token)],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = call(&["--token", token], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // A wrong token, or none: refused as UNAUTHENTICATED.
    for extra in [&["--token", "not-the-token"][..], &[][..]] {
        let out = call(extra, &[]);
        assert_eq!(code(&out), 3, "{extra:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("UNAUTHENTICATED"),
            "{}",
            text(&out)
        );
    }
    // Basic credentials, from an environment variable and a file.
    let out = call(
        &["--basic-env", "RESEAL_TEST_BASIC"],
        &[("RESEAL_TEST_BASIC", "genesys:s3cret-pass-0123456789")],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let wrong = fx.write("basic.txt", "genesys:wrong\n");
    let out = call(&["--basic-file", wrong.to_str().unwrap()], &[]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    // Two credentials at once is a usage error.
    let out = call(
        &[
            "--token",
            token,
            "--basic",
            "genesys:s3cret-pass-0123456789",
        ],
        &[],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));

    // gRPC over mTLS: the client certificate is the credential.
    let client = pki.ca.leaf("api", vec![uri(API)]);
    fx.write("client.crt", &client.0);
    fx.write("client.key", &client.1);
    let addr = format!("127.0.0.1:{}", running.grpc_addr.port());
    let (cert, key) = (fx.path("client.crt"), fx.path("client.key"));
    let mtls = |extra: &[&str]| {
        let mut args = vec![
            "--addr",
            addr.as_str(),
            "--cacert",
            ca.as_str(),
            "--server-name",
            "localhost",
            input_b64.as_str(),
            "--route",
            "card-capture",
            "--timeout",
            "5s",
        ];
        args.extend_from_slice(extra);
        reseal_call(&args, &[], None)
    };
    let out = mtls(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    open_all(&json_out(&out));
    // Without a client certificate the handshake fails: no answer.
    let out = mtls(&[]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    // A certificate that names another server: no answer either.
    let out = reseal_call(
        &[
            "--addr",
            &addr,
            "--cacert",
            &ca,
            "--server-name",
            "elsewhere.test",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            &input_b64,
            "--route",
            "card-capture",
        ],
        &[],
        None,
    );
    assert_eq!(code(&out), 4, "{}", text(&out));
    running.stop().await.unwrap();
}
