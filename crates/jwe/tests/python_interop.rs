//! Two-way JWE interoperability with two independent implementations,
//! `jwcrypto` and `joserfc` (PyPI), through `tests/python/jwe_interop.py` at
//! the repository root.
//!
//! `RESEAL_PYTHON` names a Python with both installed (the repository's test
//! command sets it to the project venv, `tests/python/requirements.txt`).
//! Without it the tests skip locally and fail in CI.

mod interop;

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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/jwe_interop.py")
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
fn jwcrypto_joserfc_and_authlib_open_what_reseal_seals() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let openings = interop::write_vectors(dir.path());
    // authlib reads a JSON JWE's `alg` from the shared header only: it opens
    // every JWE whose recipients share one `alg` (reseal protects it in the
    // shared header) and skips those that mix algorithms.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let (mut mixed, mut single_alg_openings) = (0, 0);
    for case in manifest["cases"].as_array().unwrap() {
        let recipients = case["recipients"].as_array().unwrap();
        if recipients.iter().all(|r| r["alg"] == recipients[0]["alg"]) {
            single_alg_openings += recipients.len();
        } else {
            mixed += 1;
        }
    }
    assert!(mixed > 0 && single_alg_openings > openings / 2);
    let stdout = run(Command::new(&py).arg(script()).arg("check").arg(dir.path()));
    let (passed, failed, skipped) = counts(&stdout);
    assert_eq!((failed, skipped), (0, mixed), "{stdout}");
    // Every opening by jwcrypto and joserfc, the single-`alg` ones by
    // authlib, plus at least six refused tamperings per opening and library.
    assert!(
        passed >= (openings * 2 + single_alg_openings) * (1 + 6),
        "{passed} for {openings} openings\n{stdout}"
    );
}

#[test]
fn reseal_opens_what_jwcrypto_and_joserfc_seal() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let stdout = run(Command::new(&py).arg(script()).arg("write").arg(dir.path()));
    let (written, failed, skipped) = counts(&stdout);
    assert_eq!((failed, skipped), (0, 0), "{stdout}");
    // 4 keys x 5 sizes x (compact + JSON for each library + flattened), 6
    // rotations x 3 sizes, aad/unprotected, apu/apv.
    assert_eq!(written, 4 * 5 * 5 + 6 * 3 + 2, "{stdout}");
    let outcome = interop::check_vectors(dir.path());
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    assert!(outcome.passed > written * 2, "{outcome:?}");
}
