//! The public ESDK decrypt vectors (ESDK-.NET 4.0.1, all 11 suites).

use std::path::PathBuf;

use reseal::vectors::{run_decrypt_manifest, DecryptRunOptions};

/// `../shared/vectors/esdk-net-4.0.1/manifest.json`, or `RESEAL_VECTORS`.
/// Missing vectors are a failure in CI (`CI` set) and a loud skip elsewhere.
fn manifest() -> Option<PathBuf> {
    let path = std::env::var_os("RESEAL_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/vectors/esdk-net-4.0.1/manifest.json")
        });
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "test vectors missing at {} (required in CI)",
        path.display()
    );
    eprintln!("SKIPPING: test vectors not found at {}", path.display());
    None
}

#[test]
fn esdk_net_vectors_all_raw_tests_pass() {
    let Some(path) = manifest() else { return };
    let report = run_decrypt_manifest(&path, &DecryptRunOptions::default()).unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    // 132 tests: 99 with raw keys must pass; the 33 aws-kms ones are skipped and counted.
    assert_eq!(report.passed, 99, "{}", report.summary());
    assert_eq!(report.skipped, 33, "{}", report.summary());
    assert!(report.skips.iter().all(|(_, why)| why.contains("aws-kms")));
}

#[test]
fn cli_prints_summary_and_fails_on_failure() {
    let Some(path) = manifest() else { return };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["vectors", "decrypt"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("99 passed, 0 failed, 33 skipped")
    );

    // A manifest whose expectation is wrong must fail the run, with one line for the test.
    let dir = tempfile::tempdir().unwrap();
    let src = path.parent().unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let tests = m["tests"].as_object_mut().unwrap();
    let (name, first) = tests
        .iter_mut()
        .find(|(_, t)| t["master-keys"][0]["type"] == "raw")
        .map(|(n, t)| (n.clone(), t))
        .unwrap();
    first["result"] = serde_json::json!({"error": {"error-description": "deliberately wrong"}});
    let abs = |v: &mut serde_json::Value| {
        let rel = v.as_str().unwrap().trim_start_matches("file://").to_owned();
        *v = serde_json::json!(format!("file://{}", src.join(rel).display()));
    };
    abs(&mut m["keys"]);
    for t in m["tests"].as_object_mut().unwrap().values_mut() {
        abs(&mut t["ciphertext"]);
        if t["result"].get("output").is_some() {
            abs(&mut t["result"]["output"]["plaintext"]);
        }
    }
    let broken = dir.path().join("manifest.json");
    std::fs::write(&broken, serde_json::to_vec(&m).unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["vectors", "decrypt"])
        .arg(&broken)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL ") && l.contains(&name)),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("98 passed, 1 failed, 33 skipped")
    );
}

#[test]
fn version_1_manifests_with_plaintext_on_the_test() {
    let Some(path) = manifest() else { return };
    let src = path.parent().unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["manifest"]["version"] = serde_json::json!(1);
    let abs = |rel: &serde_json::Value| {
        let rel = rel.as_str().unwrap().trim_start_matches("file://");
        serde_json::json!(format!("file://{}", src.join(rel).display()))
    };
    m["keys"] = abs(&m["keys"]);
    for t in m["tests"].as_object_mut().unwrap().values_mut() {
        t["ciphertext"] = abs(&t["ciphertext"]);
        let pt = abs(&t["result"]["output"]["plaintext"]);
        let obj = t.as_object_mut().unwrap();
        obj.remove("result");
        obj.remove("cmm");
        obj.insert("plaintext".into(), pt);
    }
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.json");
    std::fs::write(&v1, serde_json::to_vec(&m).unwrap()).unwrap();
    let report = run_decrypt_manifest(&v1, &DecryptRunOptions::default()).unwrap();
    assert_eq!(report.summary(), "99 passed, 0 failed, 33 skipped");
}
