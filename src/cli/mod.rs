//! Command-line interface: one subcommand per job, each a thin caller of the library.

mod demo;
mod inspect;
mod keygen;
mod keys;
mod serve;
mod validate;
mod vectors;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "reseal",
    version,
    about = "Re-encryption broker for AWS Encryption SDK messages"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the whole flow on throwaway keys: an Amazon Connect-shaped input
    /// re-encrypted over gRPC for three consumers, each envelope opened again.
    Demo(demo::Args),
    /// Run the broker (gRPC, health, metrics) until SIGTERM.
    Serve(serve::Args),
    /// Check a configuration: load it, exercise every key, report OK/WARN/FAIL per key.
    Validate(validate::Args),
    /// Create development keys.
    #[command(subcommand)]
    Keygen(keygen::Command),
    /// List every source and consumer key: type, provider id / key name,
    /// window, certificate dates, days left (no material; no AWS call unless
    /// --check-aws).
    Keys(keys::Args),
    /// Print a message's header as JSON (no keys needed). FILE may be `-` for stdin.
    Inspect(inspect::Args),
    /// Run ESDK test-vector manifests.
    #[command(subcommand)]
    Vectors(vectors::Command),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Keygen(cmd) => keygen::run(cmd),
        Command::Keys(args) => keys::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Vectors(cmd) => vectors::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Errors a subcommand reports before exiting with status 2.
pub type CliResult = Result<ExitCode, Box<dyn std::error::Error>>;

/// Reads a file, or stdin for `-`.
pub(crate) fn read_input(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path)
    }
}
