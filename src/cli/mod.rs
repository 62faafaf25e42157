//! Command-line interface: one subcommand per job, each a thin caller of the library.

mod call;
mod demo;
mod inspect;
mod keygen;
mod keys;
mod lambda;
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
    /// Run as an AWS Lambda custom runtime (`bootstrap`): Amazon Connect
    /// contact flows, Genesys Cloud data actions, direct invocations.
    Lambda(lambda::Args),
    /// Call a running server (gRPC, or HTTP/JSON with --url) and print each
    /// consumer's result. Exit 0 only when every consumer got its envelope.
    Call(Box<call::Args>),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse_from(arguments(std::env::args_os().collect()));
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Keygen(cmd) => keygen::run(cmd),
        Command::Keys(args) => keys::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Vectors(cmd) => vectors::run(cmd),
        Command::Lambda(args) => lambda::run(args),
        Command::Call(args) => call::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The command line; started as `bootstrap` with no arguments (how Lambda
/// starts a custom runtime on `provided.al2023`), it is `reseal lambda`.
fn arguments(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let started_as_bootstrap = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|name| name == "bootstrap");
    if started_as_bootstrap && args.len() == 1 {
        args.push("lambda".into());
    }
    args
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_as_bootstrap_it_is_the_lambda_runtime() {
        let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            arguments(args(&["/var/task/bootstrap"])),
            args(&["/var/task/bootstrap", "lambda"])
        );
        assert_eq!(
            arguments(args(&["/var/task/bootstrap", "validate"])),
            args(&["/var/task/bootstrap", "validate"])
        );
        assert_eq!(arguments(args(&["reseal"])), args(&["reseal"]));
        assert!(matches!(
            Cli::parse_from(arguments(args(&["bootstrap"]))).command,
            Command::Lambda(_)
        ));
    }
}
