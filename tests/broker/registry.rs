//! Registry validation: every error names the file, the entry and the field,
//! all problems are reported at once, and `reseal validate` is the "Test" button.

use std::process::Command;

use reseal::keys::cert;
use reseal::registry::{self, LoadOptions};
use time::{Duration, OffsetDateTime};

use crate::harness::*;

/// A 1024-bit RSA public key (too small on purpose; public keys are not secret).
const RSA_1024_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC8EYanuhmuH/e7L+Oy5ERSBQ7S
AmVtSztKCG5kqpUrIw2dKJP3tdqMrO98q60232CaSw9deRwBXJD06eIMsay0HG5W
kZmFZCkfP4Ad1WuPeCl3t5Xp4wXKz6hSKaNyvXd94oq2wupmNVmPDPLzJany0mIR
GTp2PRIS7608Ho8ZuQIDAQAB
-----END PUBLIC KEY-----
";

fn problems(fx: &Fixture, yaml: &str) -> Vec<String> {
    let path = fx.write("bad.yaml", yaml);
    match registry::load(&path, &LoadOptions::default()) {
        Ok(_) => panic!("expected the config to be refused"),
        Err(e) => e.problems(),
    }
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let fx = Fixture::new();
    let p = problems(
        &fx,
        &standard_config("").replace(
            "      add: [consumer_id, source_key_id, request_id]\n",
            "      add: [consumer_id, source_key_id, request_id]\n    colour: blue\n",
        ),
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("bad.yaml"), "{p:?}");
    assert!(p[0].contains("consumers.payments"), "{p:?}");
    assert!(p[0].contains("colour"), "{p:?}");
}

#[test]
fn semantic_problems_name_file_entry_and_field_all_at_once() {
    let fx = Fixture::new();
    fx.write("small.pub.pem", RSA_1024_PUBLIC);
    let yaml = r#"
sources:
  no-key:
    type: raw-rsa
    key_name: k1
  wrong-field:
    type: raw-rsa
    key_name: k2
    private_key: file:connect-a.pem
    key: base64:AAAA
  missing-file:
    type: raw-rsa
    key_name: k3
    private_key: file:nope.pem
  bad-window:
    type: raw-rsa
    key_name: k4
    private_key: file:connect-b.pem
    not_before: 2027-01-01T00:00:00Z
    decrypt_until: 2026-01-01T00:00:00Z
consumers:
  tiny-key:
    keys:
      k: {type: rsa-public, public_key: file:small.pub.pem}
  odd-suite:
    suite: "0x9999"
    frame_length: 0
    keys:
      k: {type: rsa-public, public_key: file:payments.pub.pem}
  keyless:
    keys: {}
routes:
  r: [tiny-key, ghost]
callers:
  c:
    identities: [spiffe://x]
    routes: [nowhere]
"#;
    let p = problems(&fx, yaml);
    let expect = [
        "sources.no-key.private_key: required for type `raw-rsa`",
        "sources.wrong-field.key: not used by type `raw-rsa`",
        "sources.missing-file.private_key: cannot read",
        "sources.bad-window.decrypt_until: must be later than `not_before`",
        "consumers.tiny-key.keys.k.public_key: RSA key is 1024 bits; at least 2048 are required",
        "consumers.odd-suite.suite: unknown algorithm suite `0x9999`",
        "consumers.odd-suite.frame_length: must be between 1 and",
        "consumers.keyless.keys: at least one key is required",
        "routes.r: unknown consumer `ghost`",
        "callers.c.routes: unknown route `nowhere`",
    ];
    for e in expect {
        assert!(
            p.iter()
                .any(|line| line.contains(e) && line.contains("bad.yaml")),
            "missing `{e}` in:\n{}",
            p.join("\n")
        );
    }
    // Never the key material itself.
    assert!(!p.iter().any(|l| l.contains("BEGIN")));
}

fn validate(fx: &Fixture, yaml: &str) -> (bool, String) {
    let path = fx.write("validate.yaml", yaml);
    let out = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn validate_prints_one_row_per_key_and_fails_on_any_fail() {
    let fx = Fixture::new();
    let (ok, out) = validate(&fx, &standard_config(""));
    assert!(ok, "{out}");
    for entry in [
        "sources.connect-a",
        "sources.connect-b",
        "consumers.payments.keys.payments-2026",
        "consumers.ledger.keys.ledger-old",
        "consumers.ledger.keys.ledger-new",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("OK") && l.contains(entry)),
            "{entry}:\n{out}"
        );
    }
    assert!(out.contains("RSA-2048 oaep-sha512"), "{out}");

    // Certificates: one expired, one expiring within the warning period.
    let now = OffsetDateTime::now_utc();
    let expired = cert::self_signed_rsa(
        &keys()["fraud"].0,
        "old",
        now - Duration::days(400),
        now - Duration::days(1),
    )
    .unwrap();
    let soon = cert::self_signed_rsa(
        &keys()["payments"].0,
        "soon",
        now - Duration::days(10),
        now + Duration::days(5),
    )
    .unwrap();
    fx.write("expired.crt.pem", &expired);
    fx.write("soon.crt.pem", &soon);
    let yaml = standard_config("").replace(
        "consumers:\n",
        "consumers:\n  certs:\n    keys:\n      old: {type: x509, certificate: file:expired.crt.pem}\n      soon: {type: x509, certificate: file:soon.crt.pem}\n",
    );
    let (ok, out) = validate(&fx, &yaml);
    assert!(!ok, "an expired certificate must fail validation:\n{out}");
    assert!(
        out.lines().any(|l| l.starts_with("FAIL")
            && l.contains("consumers.certs.keys.old")
            && l.contains("certificate ended")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("WARN")
            && l.contains("consumers.certs.keys.soon")
            && l.contains("expires in")),
        "{out}"
    );

    // A broken file: each problem on its own FAIL row.
    let (ok, out) = validate(&fx, "sources:\n  x:\n    type: raw-rsa\n");
    assert!(!ok);
    assert!(
        out.contains("FAIL") && out.contains("sources.x.key_name"),
        "{out}"
    );
}

#[test]
fn environment_overrides_apply() {
    let fx = Fixture::new();
    let path = fx.write("env.yaml", &standard_config(""));
    // Run in a child process: overrides apply process-wide.
    let out = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["validate", "--config"])
        .arg(&path)
        .env("RESEAL_CONSUMERS__PAYMENTS__SUITE", "0x9999")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("consumers.payments.suite: unknown algorithm suite `0x9999`"),
        "{stdout}"
    );
}

#[test]
fn shipped_example_configs_compile() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
    let aws = std::sync::Arc::new(reseal::keys::aws::AwsKeys::new(
        Default::default(),
        std::sync::Arc::new(reseal::telemetry::Metrics::new()),
    ));
    let mut seen = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let loaded = registry::load(
            &path,
            &LoadOptions {
                env_overrides: false,
                aws: Some(aws.clone()),
                ..LoadOptions::default()
            },
        );
        // Compiling touches no AWS endpoint: clients are built on first use.
        assert!(
            loaded.is_ok(),
            "{}: {:?}",
            path.display(),
            loaded.err().map(|e| e.problems())
        );
        seen += 1;
    }
    assert!(seen >= 2);
}

/// The registries of `tests/registries/`: each broken in one or more ways.
fn broken_registries() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registries");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `reseal validate` on a file, with the `# env: NAME=VALUE` lines of the file
/// as its environment: (exit code, stdout).
fn validate_file(path: &std::path::Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reseal"));
    cmd.arg("validate").args(extra).arg("--config").arg(path);
    for line in text.lines() {
        if let Some((k, v)) = line.strip_prefix("# env: ").and_then(|l| l.split_once('=')) {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every mistake of issue 20, and other common ones, as a file: `reseal
/// validate` refuses each with exactly the problems its `# expect:` lines
/// name (file and line, or the environment variable; the entry and field;
/// the reason and the accepted form), and nothing else.
#[test]
fn each_broken_registry_is_refused_with_its_reason_and_location() {
    let files = broken_registries();
    assert!(files.len() >= 40, "{}", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.display().to_string();
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|e| {
                e.replace("{file}", &file).replace(
                    "{dir}",
                    &path.parent().unwrap_or(&path).display().to_string(),
                )
            })
            .collect();
        assert!(!expected.is_empty(), "{file}: no `# expect:` line");
        let (code, out, _) = validate_file(&path, &[]);
        assert_eq!(code, Some(1), "{file} must fail validation:\n{out}");
        let fails: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("FAIL  "))
            .collect();
        for e in &expected {
            assert!(
                fails.iter().any(|l| l.contains(e.as_str())),
                "{file}: missing\n  {e}\nin\n{out}"
            );
        }
        assert_eq!(
            fails.len(),
            expected.len(),
            "{file}: other problems too:\n{out}"
        );
        // Every problem is located: a file and line (or the whole file), or a variable.
        for l in &fails {
            assert!(
                l.contains(&format!("{file}:")) || l.contains("environment variable RESEAL_"),
                "{file}: not located: {l}"
            );
        }
        assert!(!out.contains("BEGIN"), "{file}: key material in the output");
    }
}

#[test]
fn validate_json_names_file_line_entry_and_field() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/registries/07-three-mistakes.yaml");
    let (code, out, _) = validate_file(&path, &["--format", "json"]);
    assert_eq!(code, Some(1));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["passed"], false);
    assert_eq!(doc["summary"]["failures"], 3);
    let checks = doc["checks"].as_array().unwrap();
    let suite = checks
        .iter()
        .find(|c| c["path"] == "consumers.card-vault.suite")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(suite["status"], "FAIL");
    assert_eq!(suite["line"], 11);
    assert_eq!(suite["column"], 12);
    assert_eq!(suite["file"], path.display().to_string());
    assert!(
        suite["message"].as_str().unwrap().contains("quote it"),
        "{suite}"
    );
    let env = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/registries/14-env-override-typo.yaml");
    let (_, out, _) = validate_file(&env, &["--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["checks"][0]["environment_variable"], "RESEAL_SERVER__LISTN",
        "{out}"
    );
}

#[test]
fn validate_refuses_an_unknown_format() {
    let fx = Fixture::new();
    let path = fx.write("ok.yaml", &standard_config(""));
    let out = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["validate", "--format", "yaml", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'yaml'") && err.contains("text, json"),
        "{err}"
    );
}

#[test]
fn validate_shows_every_key_window_and_warns_on_inconsistencies() {
    let fx = Fixture::new();
    let now = OffsetDateTime::now_utc();
    let soon = now + Duration::days(10);
    let cert = cert::self_signed_rsa(
        &keys()["fraud"].0,
        "fraud",
        now - Duration::days(1),
        now + Duration::days(200),
    )
    .unwrap();
    fx.write("fraud.crt.pem", &cert);
    let soon_text = soon
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let yaml = format!(
        r#"
sources:
  connect-a:
    type: raw-rsa
    key_name: {CONNECT_A}
    private_key: file:connect-a.pem
    decrypt_until: {soon_text}
  shared:
    type: raw-aes
    provider_id: p
    key_name: k
    key: base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
  retired:
    type: raw-aes
    provider_id: p
    key_name: old
    key: base64:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=
    decrypt_until: 2020-01-01T00:00:00Z
consumers:
  payments:
    keys:
      payments-2026: {{type: rsa-public, public_key: file:payments.pub.pem, not_before: 2026-01-01T00:00:00Z}}
      payments-aes: {{type: raw-aes, key: "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}
  fraud:
    keys:
      fraud-cert: {{type: x509, certificate: file:fraud.crt.pem}}
  later:
    keys:
      later-key: {{type: rsa-public, public_key: file:ledger-new.pub.pem, not_before: 2099-01-01T00:00:00Z}}
routes:
  card-capture: [payments, fraud]
  not-yet: [later]
"#
    );
    let (ok, out) = validate(&fx, &yaml);
    // `later` has no active key: its row fails (as before); the rest warns.
    assert!(!ok, "{out}");
    let row = |entry: &str| -> String {
        out.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(entry))
            .unwrap_or_else(|| panic!("no row for {entry}:\n{out}"))
            .to_owned()
    };
    // A source within its warning period: WARN with the date.
    let source = row("sources.connect-a");
    assert!(
        source.starts_with("WARN")
            && source.contains(&format!("`decrypt_until` is {soon_text}"))
            && source.contains("days from now"),
        "{source}"
    );
    // ... and past it: WARN with the date.
    let retired = row("sources.retired");
    assert!(
        retired.starts_with("WARN")
            && retired.contains("past `decrypt_until` (2020-01-01T00:00:00Z): no longer used"),
        "{retired}"
    );
    // Every key's window and certificate dates, also outside any warning.
    assert!(
        row("consumers.payments.keys.payments-2026")
            .contains("window: from 2026-01-01T00:00:00Z, no end date"),
        "{out}"
    );
    let fraud = row("consumers.fraud.keys.fraud-cert");
    assert!(
        fraud.starts_with("OK")
            && fraud.contains("certificate valid from ")
            && fraud.contains(" until "),
        "{fraud}"
    );
    // A route whose consumers have no active key: WARN.
    let route = row("routes.not-yet");
    assert!(
        route.starts_with("WARN")
            && route.contains("no consumer of this route has an active key now (later)"),
        "{route}"
    );
    // A source and a consumer with the same key material: WARN, naming both.
    assert!(
        out.lines().any(|l| l.starts_with("WARN")
            && l.contains("validate.yaml:")
            && l.contains("sources.shared: uses the same key material as `consumers.payments.keys.payments-aes`")),
        "{out}"
    );
    // A raw-rsa source sharing its key pair with a consumer's public key, too.
    let yaml = standard_config("").replace(
        "fraud-2026: {type: rsa-public, public_key: file:fraud.pub.pem}",
        "fraud-2026: {type: rsa-public, public_key: file:connect-a.pub.pem}",
    );
    let (ok, out) = validate(&fx, &yaml);
    assert!(ok, "a warning does not fail validation:\n{out}");
    assert!(
        out.lines().any(|l| l.starts_with("WARN")
            && l.contains("sources.connect-a: uses the same key material as `consumers.fraud.keys.fraud-2026`")),
        "{out}"
    );
}

#[test]
fn an_empty_registry_is_refused_unless_allowed() {
    let fx = Fixture::new();
    let (ok, out) = validate(&fx, "limits: {max_batch_items: 10}\n");
    assert!(!ok);
    assert!(out.contains("sources: no source keys"), "{out}");
    assert!(out.contains("consumers: no consumers"), "{out}");
    let (ok, out) = validate(&fx, "allow_empty: true\n");
    assert!(ok, "{out}");
    assert!(out.contains("0 ok, 0 warnings, 0 failures"), "{out}");
}

#[tokio::test]
async fn start_up_refuses_an_empty_registry_and_callers_without_mtls() {
    let fx = Fixture::new();
    for (name, yaml, want) in [
        ("empty.yaml", "limits: {max_batch_items: 10}\n".to_owned(), "sources: no source keys"),
        (
            "callers.yaml",
            standard_config("callers:\n  api:\n    identities: [spiffe://x/api]\n    routes: [card-capture]\n"),
            "callers.api.identities: callers are identified by their client certificate, but mutual TLS is off",
        ),
    ] {
        let cfg = fx.write(name, &yaml);
        let started = reseal::app::start(
            reseal::registry::ConfigSource::File(cfg),
            reseal::app::StartOptions::loopback(),
        )
        .await;
        match started {
            Err(e) => assert!(e.to_string().contains(want), "{e}"),
            Ok(_) => panic!("{name} must not start"),
        }
    }
    let cfg = fx.write(
        "allowed.yaml",
        "allow_empty: true\nserver: {reload_interval: 0s}\n",
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    running.stop().await.unwrap();
}

/// A loopback listener standing in for AWS: counts the connections it gets.
fn fake_aws() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    (url, hits)
}

const AWS_REGISTRY: &str = r#"
sources:
  genesys:
    type: aws-kms
    key_ids: ["arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
  connect:
    type: raw-rsa
    key_name: 6f1f2d3c-5a7b-4c8d-9e0f-1a2b3c4d5e6f
    private_key: ssm:/amazon-connect/encryption/6f1f2d3c-5a7b-4c8d-9e0f-1a2b3c4d5e6f/private-key
consumers:
  payments:
    keys:
      payments-kms: {type: aws-kms, key_id: "arn:aws:kms:us-east-1:444455556666:key/0987dcba-09fe-87dc-65ba-ab0987654321"}
routes:
  card-capture: [payments]
"#;

/// A command with AWS pointed at `url` and credentials that need no network.
fn with_aws(cmd: &mut Command, url: &str) {
    cmd.env("AWS_ENDPOINT_URL", url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

#[test]
fn validate_offline_makes_no_aws_call() {
    let fx = Fixture::new();
    let path = fx.write("aws.yaml", AWS_REGISTRY);
    let (url, hits) = fake_aws();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reseal"));
    cmd.args(["validate", "--offline", "--config"]).arg(&path);
    with_aws(&mut cmd, &url);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for entry in [
        "sources.genesys",
        "sources.connect",
        "consumers.payments.keys.payments-kms",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("SKIP") && l.contains(entry) && l.contains("offline")),
            "{entry}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("0 failures, 3 not checked (offline)"),
        "{stdout}"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "an AWS call was made"
    );
    // Without --offline the same file reaches for AWS (so the count above means something).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reseal"));
    cmd.args(["validate", "--config"]).arg(&path);
    with_aws(&mut cmd, &url);
    cmd.env("RESEAL_AWS__MAX_ATTEMPTS", "1");
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

#[test]
fn missing_aws_credentials_are_named_in_one_line() {
    let fx = Fixture::new();
    let path = fx.write("aws.yaml", AWS_REGISTRY);
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reseal"));
    cmd.args(["validate", "--config"]).arg(&path);
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    let (url, hits) = fake_aws();
    cmd.env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &url);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for entry in [
        "sources.genesys",
        "sources.connect",
        "consumers.payments.keys.payments-kms",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with("FAIL")
                && l.contains(entry)
                && l.contains(
                    "no AWS credentials found (checked: env, web identity, profile, IMDS)"
                )),
            "{entry}:\n{stdout}"
        );
    }
    assert!(!stdout.contains("connection failed"), "{stdout}");
    // The SDK's own dumps stay at debug level.
    assert!(
        stderr.len() < 200,
        "{} bytes on stderr:\n{stderr}",
        stderr.len()
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn reseal_keys_lists_every_key_without_material_or_aws_calls() {
    let fx = Fixture::new();
    let now = OffsetDateTime::now_utc();
    let cert = cert::self_signed_rsa(
        &keys()["fraud"].0,
        "fraud-2027",
        now - Duration::days(1),
        now + Duration::days(100),
    )
    .unwrap();
    fx.write("fraud.crt.pem", &cert);
    let yaml = standard_config("")
        .replace(
            "fraud-2026: {type: rsa-public, public_key: file:fraud.pub.pem}",
            "fraud-2026: {type: x509, certificate: file:fraud.crt.pem}",
        )
        .replace(
            "    private_key: file:connect-b.pem\n",
            "    private_key: file:connect-b.pem\n    decrypt_until: 2099-01-31T00:00:00Z\n",
        )
        .replace(
            "sources:\n",
            "sources:\n  genesys:\n    type: aws-kms\n    key_ids: [\"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\"]\n",
        );
    let path = fx.write("keys.yaml", &yaml);
    let (url, hits) = fake_aws();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reseal"));
    cmd.args(["keys", "--json", "--config"]).arg(&path);
    with_aws(&mut cmd, &url);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let find = |entry: &str| {
        list.iter()
            .find(|k| k["entry"] == entry)
            .unwrap_or_else(|| panic!("{entry} not listed:\n{stdout}"))
            .clone()
    };
    let b = find("sources.connect-b");
    assert_eq!(b["kind"], "source");
    assert_eq!(b["type"], "raw-rsa");
    assert_eq!(b["provider_id"], "AmazonConnect");
    assert_eq!(b["key_names"][0], CONNECT_B);
    assert_eq!(b["not_after"], "2099-01-31T00:00:00Z");
    assert!(b["days_left"].as_i64().unwrap() > 20_000);
    let g = find("sources.genesys");
    assert_eq!(g["type"], "aws-kms");
    assert_eq!(g["local"], false);
    assert!(
        g["key_names"][0]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:kms:"),
        "{g}"
    );
    let f = find("consumers.fraud.keys.fraud-2026");
    assert_eq!(f["kind"], "consumer");
    assert_eq!(f["certificate"]["subject"], "CN=fraud-2027");
    let days = f["days_left"].as_i64().unwrap();
    assert!((98..=100).contains(&days), "{f}");
    let old = find("consumers.ledger.keys.ledger-old");
    assert_eq!(old["not_after"], "2030-06-30T00:00:00Z");
    assert_eq!(old["key_names"][0], "ledger-old");
    assert_eq!(list.len(), 2 + 1 + 4, "{stdout}");
    assert!(
        !stdout.contains("BEGIN") && !stdout.contains("AAECAw"),
        "material listed"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "an AWS call was made"
    );

    // The table: a row per key with its dates.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reseal"));
    cmd.args(["keys", "--config"]).arg(&path);
    with_aws(&mut cmd, &url);
    let table = String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned();
    assert!(table.lines().next().unwrap().starts_with("KIND"), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("consumer")
            && l.contains("ledger-old")
            && l.contains("2030-06-30T00:00:00Z")),
        "{table}"
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    // --check-aws runs the self-test, AWS included.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reseal"));
    cmd.args(["keys", "--check-aws", "--json", "--config"])
        .arg(&path);
    with_aws(&mut cmd, &url);
    cmd.env("RESEAL_AWS__MAX_ATTEMPTS", "1");
    let out = cmd.output().unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list.iter().all(|k| k["check"]["status"].is_string()));
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

#[test]
fn keygen_arguments_are_described() {
    let out = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["keygen", "rsa", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(
        help.contains("Where to write the private key")
            && help.contains(".pub.pem")
            && help.contains("2048, 3072 or 4096"),
        "{help}"
    );
}
