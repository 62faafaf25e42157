//! `reseal vectors decrypt|encrypt`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::CliResult;
use crate::vectors::{run_decrypt_manifest, run_encrypt_manifest, DecryptRunOptions};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Decrypt every test of an `awses-decrypt` manifest and compare with the expected result.
    Decrypt {
        manifest: PathBuf,
        /// Also list skipped tests and why.
        #[arg(long)]
        verbose: bool,
    },
    /// Encrypt every test of an `awses-encrypt` manifest; write an `awses-decrypt` manifest to DIR.
    Encrypt {
        manifest: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

pub fn run(cmd: Command) -> CliResult {
    match cmd {
        Command::Decrypt { manifest, verbose } => {
            let report = run_decrypt_manifest(&manifest, &DecryptRunOptions::default())?;
            for (name, reason) in &report.failures {
                println!("FAIL {name}: {reason}");
            }
            if verbose {
                for (name, reason) in &report.skips {
                    println!("SKIP {name}: {reason}");
                }
            }
            println!("{}", report.summary());
            Ok(if report.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Encrypt { manifest, out } => {
            let report = run_encrypt_manifest(&manifest, &out)?;
            for (name, reason) in &report.failures {
                println!("FAIL {name}: {reason}");
            }
            println!(
                "{} written, {} failed, {} skipped -> {}",
                report.passed,
                report.failed,
                report.skipped,
                out.join("manifest.json").display()
            );
            Ok(if report.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
