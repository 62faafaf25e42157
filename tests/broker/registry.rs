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
