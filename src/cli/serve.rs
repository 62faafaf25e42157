//! `reseal serve`: run the broker until SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;
use crate::app;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (default: config/reseal.yaml, else the embedded default).
    #[arg(long, env = "RESEAL_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn run(args: Args) -> CliResult {
    let source = app::config_source(args.config.as_deref());
    let (text, origin, _) = app::read_source(&source)?;
    let file = crate::registry::parse_file(&text, &origin, true)?;
    let runtime = app::runtime(&file.server)?;
    // The OTLP exporter's gRPC client must be created inside the runtime.
    let traces = {
        let _in_runtime = runtime.enter();
        crate::telemetry::init(&file.server.log_format, "info", &file.telemetry)
    };
    if let Some(e) = app::io_scheduling_error() {
        tracing::warn!(error = %e, policy = ?file.server.io_scheduling,
            "could not set the scheduling policy of the runtime threads; running with the default");
    }
    let code = runtime.block_on(async move {
        let running = match app::start(source, app::StartOptions::default()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reseal could not start");
                eprintln!("error: {e}");
                return Ok::<_, Box<dyn std::error::Error>>(ExitCode::from(1));
            }
        };
        tracing::info!(
            grpc = %running.grpc_addr,
            health = %running.health_addr,
            admin = %running.admin_addr,
            http = %running.http_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
            "reseal is serving"
        );
        let shutdown = running.shutdown_sender();
        tokio::spawn(async move {
            app::termination().await;
            tracing::info!("shutting down: draining in-flight requests");
            let _ = shutdown.send(true);
        });
        running.wait().await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    });
    // Flush buffered spans while the runtime (and the exporter's client) is still up.
    runtime.block_on(async move {
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    });
    code
}
