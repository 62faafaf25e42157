//! `reseal validate`: the "Test" button. Loads everything, exercises every key,
//! prints one row per key (OK / WARN / FAIL) and exits non-zero on any FAIL.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::CliResult;
use crate::app;
use crate::registry::{self, CheckStatus, LoadOptions};
use crate::telemetry::Metrics;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (default: config/reseal.yaml, else the embedded default).
    #[arg(long, env = "RESEAL_CONFIG")]
    pub config: Option<PathBuf>,
    /// `text` (default) or `json`.
    #[arg(long, default_value = "text")]
    pub format: String,
}

pub fn run(args: Args) -> CliResult {
    crate::telemetry::init_logging("text", "warn");
    let source = app::config_source(args.config.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut rows: Vec<(CheckStatus, String, String)> = Vec::new();
        let prepared = app::prepare(&source);
        let (text, origin, base) = app::read_source(&source)?;
        let metrics = Arc::new(Metrics::new());
        let aws = match &prepared {
            Ok((file, _)) => app::aws_keys(&file.aws, &metrics),
            Err(_) => None,
        };
        let options = LoadOptions {
            env_overrides: true,
            aws,
        };
        match tokio::task::spawn_blocking(move || registry::load_str(&text, &origin, &base, &options)).await? {
            Err(e) => {
                for p in e.problems() {
                    rows.push((CheckStatus::Fail, "config".into(), p));
                }
            }
            Ok(loaded) => {
                for w in &loaded.warnings {
                    rows.push((CheckStatus::Warn, "config".into(), w.clone()));
                }
                for c in registry::self_test(&loaded.registry, time::OffsetDateTime::now_utc()).await {
                    rows.push((c.status, c.entry, c.detail));
                }
            }
        }
        let failed = rows.iter().any(|r| r.0 == CheckStatus::Fail);
        if args.format == "json" {
            let v: Vec<_> = rows
                .iter()
                .map(|(s, e, d)| serde_json::json!({"status": s.to_string(), "entry": e, "detail": d}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
            for (status, entry, detail) in &rows {
                println!("{:<4}  {:<width$}  {}", status.to_string(), entry, detail);
            }
            let count = |s| rows.iter().filter(|r| r.0 == s).count();
            println!(
                "{} ok, {} warnings, {} failures",
                count(CheckStatus::Ok),
                count(CheckStatus::Warn),
                count(CheckStatus::Fail)
            );
        }
        Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    })
}
