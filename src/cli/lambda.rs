//! `reseal lambda`: the same binary as an AWS Lambda custom runtime
//! (`bootstrap` on `provided.al2023`). It loads the registry once, at init,
//! and serves every invocation of its execution environment with the one
//! broker (its caches stay warm between invocations).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use super::CliResult;
use crate::app;
use crate::keys::aws::{AwsKeys, AwsOptions};
use crate::lambda::{self, runtime, LambdaDoor};
use crate::registry::model::ServerSpec;
use crate::registry::ConfigSource;
use crate::telemetry::Metrics;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration: a file, or `ssm:/NAME` (a Parameter Store
    /// parameter, read once at init with the function's role). Default:
    /// `$LAMBDA_TASK_ROOT/reseal.yaml` when it exists, else the embedded default.
    #[arg(long, env = "RESEAL_CONFIG")]
    pub config: Option<String>,
}

/// The `errorType` of an init failure reported to Lambda.
const INIT_ERROR_TYPE: &str = "Runtime.ConfigInvalid";

/// Log targets kept at `info` whatever `RUST_LOG` says: `lambda_runtime` logs
/// every event's raw payload (the ciphertext) at `trace`.
const QUIET: &str = "lambda_runtime=info,lambda_runtime_api_client=info";

pub fn run(args: Args) -> CliResult {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => format!("{v},{QUIET}"),
        _ => format!("info,{QUIET}"),
    };
    std::env::set_var("RUST_LOG", filter);
    let api = match runtime::runtime_api() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    runtime::fill_function_settings();
    let rt = app::runtime(&ServerSpec::default())?;
    rt.block_on(async move {
        let door = match init(args).await {
            Ok(door) => door,
            Err(e) => {
                let message = e.to_string();
                tracing::error!(error = %message, "reseal lambda could not start");
                eprintln!("error: {message}");
                if let Err(report) =
                    runtime::report_init_error(&api, INIT_ERROR_TYPE, &message).await
                {
                    eprintln!("error: could not report the init error: {report}");
                }
                return Ok(ExitCode::from(1));
            }
        };
        match lambda::serve(door).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => {
                tracing::error!(error = %e, "the Lambda runtime stopped");
                eprintln!("error: {e}");
                Ok(ExitCode::from(1))
            }
        }
    })
}

/// Everything an invocation needs, built once.
async fn init(args: Args) -> Result<Arc<LambdaDoor>, Box<dyn std::error::Error>> {
    let task_root = std::env::var_os("LAMBDA_TASK_ROOT").map(PathBuf::from);
    let source = source(args.config.as_deref(), task_root.as_deref()).await?;
    let (text, origin, _) = app::read_source(&source)?;
    let file = crate::registry::parse_file(&text, &origin, true)?;
    // Written at once (no buffer thread): Lambda freezes the process between
    // invocations, and a line still buffered then would wait or be lost.
    crate::telemetry::init_logging(&file.server.log_format, "info");
    let options = app::StartOptions {
        host: crate::registry::Host::Lambda,
        ..app::StartOptions::default()
    };
    let built = app::build(source, &options).await?;
    let registry = built.registry.snapshot().ok_or("no registry was loaded")?;
    let door = LambdaDoor::new(built.broker, &registry, built.file.lambda)?;
    tracing::info!(
        registry = %registry.origin,
        consumers = registry.consumers.len(),
        routes = registry.routes.len(),
        "reseal lambda is ready"
    );
    Ok(Arc::new(door))
}

/// Where the configuration comes from.
async fn source(
    config: Option<&str>,
    task_root: Option<&Path>,
) -> Result<ConfigSource, Box<dyn std::error::Error>> {
    let base = task_root
        .map(Path::to_owned)
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    match config {
        Some(reference) if reference.starts_with("ssm:") => {
            let name = &reference["ssm:".len()..];
            if !name.starts_with('/') && !name.starts_with("arn:") {
                return Err(format!(
                    "--config {reference}: ssm: parameter names start with `/` (or are an ARN)"
                )
                .into());
            }
            // The default credential chain: the function's execution role.
            let aws = AwsKeys::new(AwsOptions::default(), Arc::new(Metrics::new()));
            let text = aws
                .parameter_text(name)
                .await
                .map_err(|e| format!("cannot read the configuration at {reference}: {e}"))?;
            Ok(ConfigSource::Embedded {
                name: reference.to_owned(),
                text: text.to_string(),
                base_dir: base,
            })
        }
        Some(path) => Ok(ConfigSource::File(PathBuf::from(path))),
        None => {
            let bundled = base.join("reseal.yaml");
            if task_root.is_some() && bundled.exists() {
                Ok(ConfigSource::File(bundled))
            } else {
                Ok(app::config_source(None))
            }
        }
    }
}
