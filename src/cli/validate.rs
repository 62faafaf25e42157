//! `reseal validate`: the "Test" button. Loads everything, exercises every key,
//! prints one row per key (OK / WARN / FAIL, with its window and certificate
//! dates) and exits non-zero on any FAIL. `--offline` makes no AWS call: the
//! check for CI pipelines (and the Helm chart's pre-upgrade hook) that have
//! no credentials.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::CliResult;
use crate::app;
use crate::registry::model::AwsSpec;
use crate::registry::{
    self, CheckStatus, ConfigSource, LoadError, LoadOptions, Loaded, Origin, SelfTestOptions,
};
use crate::telemetry::Metrics;

/// Output formats of `validate` and `keys`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One row per check, then a summary line.
    Text,
    /// One JSON document (checks with their dates and locations).
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (default: config/reseal.yaml, else the embedded default).
    #[arg(long, env = "RESEAL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Make no AWS call: AWS-backed keys are checked as configuration only
    /// and reported as SKIP (for CI pipelines without credentials).
    #[arg(long)]
    pub offline: bool,
}

/// Loads a configuration as `serve` would, on the blocking pool. AWS-backed
/// keys are compiled (no AWS call is made while compiling).
pub(super) async fn load(
    source: &ConfigSource,
) -> Result<(String, Result<Loaded, LoadError>), Box<dyn std::error::Error>> {
    // Creates development keys when the file asks for them; a file that does
    // not parse is reported in full by the load below.
    let prepared = app::prepare(source);
    let (text, origin, base) = app::read_source(source)?;
    let metrics = Arc::new(Metrics::new());
    let aws_spec = match &prepared {
        Ok((file, _)) => file.aws.clone(),
        Err(_) => AwsSpec::default(),
    };
    let options = LoadOptions {
        env_overrides: true,
        aws: app::aws_keys(&aws_spec, &metrics),
        host: crate::registry::Host::Server,
    };
    let name = origin.clone();
    let loaded =
        tokio::task::spawn_blocking(move || registry::load_str(&text, &origin, &base, &options))
            .await?;
    Ok((name, loaded))
}

/// One output row.
struct Row {
    status: CheckStatus,
    entry: String,
    detail: String,
    data: serde_json::Value,
}

pub fn run(args: Args) -> CliResult {
    crate::telemetry::init_logging("text", "warn");
    let source = app::config_source(args.config.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (origin, loaded) = load(&source).await?;
        let mut rows: Vec<Row> = Vec::new();
        match loaded {
            Err(e) => {
                for p in e.details() {
                    let mut data = serde_json::json!({
                        "status": "FAIL",
                        "entry": "config",
                        "path": p.path,
                        "file": p.origin,
                        "detail": p.to_string(),
                        "message": p.message,
                    });
                    match &p.line {
                        Origin::File { line, column } => {
                            data["line"] = (*line).into();
                            data["column"] = (*column).into();
                        }
                        Origin::Env(var) => data["environment_variable"] = var.as_str().into(),
                        Origin::Unknown => {}
                    }
                    rows.push(Row {
                        status: CheckStatus::Fail,
                        entry: "config".into(),
                        detail: p.to_string(),
                        data,
                    });
                }
            }
            Ok(loaded) => {
                for w in &loaded.warnings {
                    rows.push(Row {
                        status: CheckStatus::Warn,
                        entry: "config".into(),
                        detail: w.clone(),
                        data: serde_json::json!({"status": "WARN", "entry": "config", "detail": w}),
                    });
                }
                let options = SelfTestOptions {
                    offline: args.offline,
                };
                let now = time::OffsetDateTime::now_utc();
                for c in registry::self_test_with(&loaded.registry, now, options).await {
                    let mut data = serde_json::to_value(&c)?;
                    data["status"] = c.status.to_string().into();
                    rows.push(Row {
                        status: c.status,
                        entry: c.entry,
                        detail: c.detail,
                        data,
                    });
                }
            }
        }
        let count = |s| rows.iter().filter(|r| r.status == s).count();
        let (ok, warn, fail, skip) = (
            count(CheckStatus::Ok),
            count(CheckStatus::Warn),
            count(CheckStatus::Fail),
            count(CheckStatus::Skip),
        );
        match args.format {
            Format::Json => {
                let doc = serde_json::json!({
                    "config": origin,
                    "offline": args.offline,
                    "passed": fail == 0,
                    "summary": {"ok": ok, "warnings": warn, "failures": fail, "skipped": skip},
                    "checks": rows.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            }
            Format::Text => {
                let width = rows.iter().map(|r| r.entry.len()).max().unwrap_or(0);
                for r in &rows {
                    println!(
                        "{:<4}  {:<width$}  {}",
                        r.status.to_string(),
                        r.entry,
                        r.detail
                    );
                }
                let skipped = if skip > 0 {
                    format!(", {skip} not checked (offline)")
                } else {
                    String::new()
                };
                println!("{ok} ok, {warn} warnings, {fail} failures{skipped}");
            }
        }
        Ok(if fail > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}
