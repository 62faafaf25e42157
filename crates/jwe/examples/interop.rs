//! reseal-jwe's side of the JOSE interop, by hand:
//!
//! ```sh
//! cargo run --example interop -- write DIR   # seal the matrix for tests/python/jwe_interop.py check DIR
//! cargo run --example interop -- check DIR   # open what tests/python/jwe_interop.py write DIR wrote
//! ```
//!
//! Both print `N passed, M failed, K skipped` last; `check` exits 1 on any failure.

#[path = "../tests/interop/mod.rs"]
mod interop;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("write"), Some(dir)) => {
            let openings = interop::write_vectors(&PathBuf::from(dir));
            println!("wrote {dir}/manifest.json: {openings} openings");
            println!("{openings} passed, 0 failed, 0 skipped");
            ExitCode::SUCCESS
        }
        (Some("check"), Some(dir)) => {
            let outcome = interop::check_vectors(&PathBuf::from(dir));
            for failure in &outcome.failures {
                println!("FAIL {failure}");
            }
            println!(
                "{} passed, {} failed, 0 skipped",
                outcome.passed, outcome.failed
            );
            if outcome.failed == 0 && outcome.passed > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!("usage: interop write DIR | interop check DIR");
            ExitCode::from(2)
        }
    }
}
