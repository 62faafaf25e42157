//! Two-way interoperability with the reference ESDK (the `aws-encryption-sdk`
//! Python package), through the public test-vector formats.
//!
//! `RESEAL_PYTHON` names a Python with `aws-encryption-sdk` installed (the test
//! command sets it to the project venv). Without it the tests skip locally and
//! fail in CI.

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<PathBuf> {
    match std::env::var_os("RESEAL_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "RESEAL_PYTHON must be set in CI"
            );
            eprintln!("SKIPPING: RESEAL_PYTHON not set");
            None
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/esdk_interop.py")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// Parses the final `N passed, M failed, K skipped` line.
fn counts(stdout: &str) -> (usize, usize, usize) {
    let last = stdout.lines().last().unwrap_or_default();
    let nums: Vec<usize> = last
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(nums.len(), 3, "unexpected summary line: {last}");
    (nums[0], nums[1], nums[2])
}

#[test]
fn reference_esdk_opens_what_reseal_writes() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = dir.path().join("out");
    run(Command::new(&py).arg(script()).arg("keys").arg(&keys));
    run(Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["vectors", "encrypt"])
        .arg(keys.join("encrypt-manifest.json"))
        .arg("--out")
        .arg(&out));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let written = manifest["tests"].as_object().unwrap().len();
    // The Amazon Connect shape is among them.
    assert!(manifest["tests"]
        .as_object()
        .unwrap()
        .keys()
        .any(|k| k.starts_with("0378-connect")));
    let stdout = run(Command::new(&py)
        .arg(script())
        .arg("check")
        .arg(out.join("manifest.json")));
    let (passed, failed, skipped) = counts(&stdout);
    assert_eq!((failed, skipped), (0, 0), "{stdout}");
    assert_eq!(passed, written);
    assert!(passed >= 90, "{stdout}");
}

#[test]
fn reseal_opens_what_reference_esdk_writes() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = dir.path().join("out");
    run(Command::new(&py).arg(script()).arg("keys").arg(&keys));
    run(Command::new(&py)
        .arg(script())
        .arg("write")
        .arg(keys.join("keys.json"))
        .arg(&out));
    let stdout = run(Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["vectors", "decrypt"])
        .arg(out.join("manifest.json")));
    let (passed, failed, skipped) = counts(&stdout);
    assert_eq!((failed, skipped), (0, 0), "{stdout}");
    assert!(passed >= 100, "{stdout}");
}
