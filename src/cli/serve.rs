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
    crate::telemetry::init_logging(&file.server.log_format, "info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let running = match app::start(source, app::StartOptions::default()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reseal could not start");
                eprintln!("error: {e}");
                return Ok(ExitCode::from(1));
            }
        };
        tracing::info!(
            grpc = %running.grpc_addr,
            health = %running.health_addr,
            admin = %running.admin_addr,
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
    })
}
