//! Callers of the HTTP/JSON door that cannot present a client certificate
//! (a Genesys Cloud data action): bearer tokens and Basic credentials bound to
//! registry callers, by reference, compared as digests, rotated with an
//! overlap, reloaded with the registry, and refused over plaintext HTTP unless
//! allowed for development. Driven by Python `requests` over TLS.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::harness::*;
use crate::mtls::{pki, tls_config};

const OLD_TOKEN: &str = "genesys-token-2026-a1b2c3d4e5f6";
const NEW_TOKEN: &str = "genesys-token-2027-f6e5d4c3b2a1";
const NEWER_TOKEN: &str = "genesys-token-2028-0a9b8c7d6e5f";
const REPORTS_PASSWORD: &str = "reports-password-9z8y7x6w";

fn callers_config(fx: &Fixture, server_extra: &str) -> String {
    // Certificate identities only where mutual TLS is on (reseal refuses them otherwise).
    let api = if server_extra.contains("client_ca_file") {
        "  api:\n    identities: [\"spiffe://reseal.test/ns/payments/sa/api\"]\n    routes: [card-capture]\n"
    } else {
        ""
    };
    fx.write("token-old.txt", &format!("{OLD_TOKEN}\n"));
    fx.write("token-new.txt", NEW_TOKEN);
    fx.write("reports.pass", REPORTS_PASSWORD);
    standard_config(
        r#"
callers:
  genesys:
    tokens: [file:token-old.txt, file:token-new.txt]
    routes: [card-capture]
  reports:
    basic:
      - {username: reports, password: file:reports.pass}
    consumers: [fraud]
"#,
    )
    .replace(
        "consumers: [fraud]\n",
        &format!("consumers: [fraud]\n{api}"),
    )
    .replace(
        "server:\n",
        &format!("server:\n  http_listen: 127.0.0.1:0\n{server_extra}"),
    )
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

struct Cases {
    url: String,
    verify: Value,
    body_route: String,
    body_fraud: String,
    all: Vec<Value>,
}

impl Cases {
    fn add(
        &mut self,
        name: &str,
        auth: Option<&str>,
        body: &str,
        status: u16,
        reason: Option<&str>,
    ) {
        let mut headers = json!({"Content-Type": "application/json"});
        if let Some(a) = auth {
            headers["Authorization"] = json!(a);
        }
        self.all.push(json!({
            "name": name, "url": self.url, "headers": headers, "body": body,
            "status": status, "reason": reason, "retry_after": false, "verify": self.verify,
            "secrets": [OLD_TOKEN, NEW_TOKEN, NEWER_TOKEN, REPORTS_PASSWORD],
        }));
    }
}

fn bodies() -> (String, String) {
    let input = base64::engine::general_purpose::STANDARD.encode(connect_message(
        "connect-a",
        CONNECT_A,
        b"4111111111111111",
    ));
    (
        json!({"ciphertextBase64": input, "route": "card-capture"}).to_string(),
        json!({"ciphertextBase64": input, "consumers": ["fraud"]}).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_basic_credentials_over_tls() {
    let fx = Fixture::new();
    let pki = pki();
    let cfg = fx.write("reseal.yaml", &callers_config(&fx, &tls_config(&fx, &pki)));
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let url = format!("https://localhost:{}", running.http_addr.unwrap().port());
    let (body_route, body_fraud) = bodies();
    let mut c = Cases {
        url,
        verify: json!(fx.path("ca.crt")),
        body_route,
        body_fraud,
        all: Vec::new(),
    };
    let (route, fraud) = (c.body_route.clone(), c.body_fraud.clone());
    c.add("no credentials", None, &route, 401, Some("UNAUTHENTICATED"));
    c.add(
        "a wrong token",
        Some("Bearer not-a-registered-token-000"),
        &route,
        401,
        Some("UNAUTHENTICATED"),
    );
    c.add(
        "the old token (during the overlap)",
        Some(&format!("Bearer {OLD_TOKEN}")),
        &route,
        200,
        None,
    );
    c.add(
        "the new token (during the overlap)",
        Some(&format!("Bearer {NEW_TOKEN}")),
        &route,
        200,
        None,
    );
    c.add(
        "a token on a consumer it may not target",
        Some(&format!("Bearer {NEW_TOKEN}")),
        &fraud,
        403,
        Some("PERMISSION_DENIED"),
    );
    c.add(
        "Basic credentials",
        Some(&basic("reports", REPORTS_PASSWORD)),
        &fraud,
        200,
        None,
    );
    c.add(
        "Basic credentials on a route the caller may not use",
        Some(&basic("reports", REPORTS_PASSWORD)),
        &route,
        403,
        Some("PERMISSION_DENIED"),
    );
    c.add(
        "a wrong password",
        Some(&basic("reports", "reports-password-wrong")),
        &fraud,
        401,
        Some("UNAUTHENTICATED"),
    );
    c.add(
        "another caller's password",
        Some(&basic("genesys", REPORTS_PASSWORD)),
        &fraud,
        401,
        Some("UNAUTHENTICATED"),
    );
    c.add(
        "malformed Basic credentials",
        Some("Basic ***"),
        &fraud,
        401,
        Some("UNAUTHENTICATED"),
    );
    run_python_cases(Value::Array(std::mem::take(&mut c.all)), fx.dir.path());

    // Rotation: the old token's file now holds a newer one. The change of a
    // file the registry read is a change of the registry; after the reload the
    // old token is refused and the newer one works.
    fx.replace("token-old.txt", NEWER_TOKEN);
    match running.registry.reload(false).await {
        reseal::registry::ReloadOutcome::Applied { .. } => {}
        other => panic!("the rotated token file reloads the registry: {other:?}"),
    }
    c.add(
        "the retired token after the reload",
        Some(&format!("Bearer {OLD_TOKEN}")),
        &route,
        401,
        Some("UNAUTHENTICATED"),
    );
    c.add(
        "the newer token after the reload",
        Some(&format!("Bearer {NEWER_TOKEN}")),
        &route,
        200,
        None,
    );
    c.add(
        "the new token still",
        Some(&format!("Bearer {NEW_TOKEN}")),
        &route,
        200,
        None,
    );
    run_python_cases(Value::Array(std::mem::take(&mut c.all)), fx.dir.path());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_refused_over_plaintext_unless_allowed_for_development() {
    let fx = Fixture::new();
    let (route, _) = bodies();
    // Callers with tokens and no TLS: the registry is refused before anything
    // listens (every call would fail), naming the entry and field.
    let cfg = fx.write("plain.yaml", &callers_config(&fx, ""));
    let refused = match reseal::app::start(
        reseal::registry::ConfigSource::File(cfg),
        reseal::app::StartOptions::loopback(),
    )
    .await
    {
        Ok(_) => panic!("tokens without TLS must refuse the registry"),
        Err(e) => e.to_string(),
    };
    assert!(
        refused.contains("callers.genesys.tokens") && refused.contains("plaintext"),
        "{refused}"
    );
    // Allowed for development: the token works over plaintext HTTP.
    let cfg = fx.write(
        "plain.yaml",
        &callers_config(&fx, "  allow_plaintext_credentials: true\n"),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = Cases {
        url: format!("http://{}", running.http_addr.unwrap()),
        verify: json!(true),
        body_route: route.clone(),
        body_fraud: String::new(),
        all: Vec::new(),
    };
    c.add(
        "a valid token over plaintext HTTP (allowed for development)",
        Some(&format!("Bearer {NEW_TOKEN}")),
        &route,
        200,
        None,
    );
    run_python_cases(Value::Array(std::mem::take(&mut c.all)), fx.dir.path());
    running.stop().await.unwrap();
    // No callers configured, a token sent over plaintext anyway: refused at
    // the door, so the token is not taken to mean anything either way.
    let cfg = fx.write(
        "open.yaml",
        &standard_config("").replace("server:\n", "server:\n  http_listen: 127.0.0.1:0\n"),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    c.url = format!("http://{}", running.http_addr.unwrap());
    c.add(
        "a token over plaintext HTTP (refused)",
        Some(&format!("Bearer {NEW_TOKEN}")),
        &route,
        401,
        Some("UNAUTHENTICATED"),
    );
    c.add("no token over plaintext HTTP", None, &route, 200, None);
    run_python_cases(Value::Array(c.all), fx.dir.path());
    running.stop().await.unwrap();
}

#[test]
fn secrets_are_given_by_reference_and_checked_at_load() {
    let fx = Fixture::new();
    let run = |yaml: &str, env: &[(&str, &str)]| {
        let path = fx.write("v.yaml", yaml);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_reseal"));
        cmd.args(["validate", "--config"]).arg(&path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let config = |tokens: &str| {
        standard_config(&format!(
            "callers:\n  genesys:\n    tokens: [{tokens}]\n    routes: [card-capture]\n"
        ))
        .replace(
            "server:\n",
            "server:\n  allow_plaintext_credentials: true\n",
        )
    };
    let (ok, out) = run(
        &config("env:RESEAL_TEST_GENESYS_TOKEN"),
        &[("RESEAL_TEST_GENESYS_TOKEN", OLD_TOKEN)],
    );
    assert!(ok, "{out}");
    assert!(!out.contains(OLD_TOKEN), "{out}");
    let (ok, out) = run(&config("env:RESEAL_TEST_GENESYS_TOKEN"), &[]);
    assert!(
        !ok && out.contains("callers.genesys.tokens[0]")
            && out.contains("RESEAL_TEST_GENESYS_TOKEN"),
        "{out}"
    );
    // Inline secrets are refused, and not repeated in the error.
    let (ok, out) = run(&config(OLD_TOKEN), &[]);
    assert!(!ok && out.contains("by reference"), "{out}");
    assert!(!out.contains(OLD_TOKEN), "{out}");
    // A short secret is refused.
    let (ok, out) = run(
        &config("env:RESEAL_TEST_SHORT"),
        &[("RESEAL_TEST_SHORT", "abc")],
    );
    assert!(!ok && out.contains("shorter than 16"), "{out}");
}
