//! `reseal keys`: every source and consumer key of a configuration with its
//! type, provider id and key name, window, certificate dates and days left,
//! as a table or JSON. Names and dates only, never material; no AWS call
//! unless `--check-aws` asks for the self-test of AWS-backed keys.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;
use crate::app;
use crate::registry::{self, CheckStatus, SelfTestOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (default: config/reseal.yaml, else the embedded default).
    #[arg(long, env = "RESEAL_CONFIG")]
    pub config: Option<PathBuf>,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also run the self-test of every key, AWS-backed ones included (AWS calls).
    #[arg(long)]
    pub check_aws: bool,
}

fn day(t: &Option<String>) -> String {
    t.as_deref()
        .map_or_else(|| "-".to_owned(), |t| t.to_owned())
}

pub fn run(args: Args) -> CliResult {
    crate::telemetry::init_logging("text", "warn");
    let source = app::config_source(args.config.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (_, loaded) = super::validate::load(&source).await?;
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                for p in e.problems() {
                    eprintln!("{p}");
                }
                eprintln!("the configuration does not load; `reseal validate` shows every problem");
                return Ok(ExitCode::FAILURE);
            }
        };
        let now = time::OffsetDateTime::now_utc();
        let listing = loaded.registry.key_listing(now);
        let checks: BTreeMap<String, (CheckStatus, String)> = if args.check_aws {
            registry::self_test_with(&loaded.registry, now, SelfTestOptions { offline: false })
                .await
                .into_iter()
                .map(|c| (c.entry, (c.status, c.detail)))
                .collect()
        } else {
            BTreeMap::new()
        };
        let failed = checks.values().any(|(s, _)| *s == CheckStatus::Fail);
        if args.json {
            let mut out = Vec::new();
            for k in &listing {
                let mut v = serde_json::to_value(k)?;
                if let Some((status, detail)) = checks.get(&k.entry) {
                    v["check"] =
                        serde_json::json!({"status": status.to_string(), "detail": detail});
                }
                out.push(v);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            let mut table = vec![vec![
                "KIND".to_owned(),
                "ID".into(),
                "KEY".into(),
                "TYPE".into(),
                "PROVIDER ID / KEY NAME".into(),
                "NOT BEFORE".into(),
                "NOT AFTER".into(),
                "CERTIFICATE".into(),
                "DAYS LEFT".into(),
                "STATUS".into(),
            ]];
            for k in &listing {
                let names = match (&k.provider_id, k.key_names.as_slice()) {
                    (Some(p), []) => format!("{p} / (discovery: {})", k.reference),
                    (Some(p), names) => format!("{p} / {}", names.join(", ")),
                    (None, _) => k.reference.clone(),
                };
                let cert = k.certificate.as_ref().map_or_else(
                    || "-".to_owned(),
                    |c| format!("{} .. {}", c.not_before, c.not_after),
                );
                let mut status = k.status.to_owned();
                if let Some((s, _)) = checks.get(&k.entry) {
                    status = format!("{status}, check {s}");
                }
                table.push(vec![
                    k.kind.to_owned(),
                    k.id.clone(),
                    k.key.clone(),
                    k.key_type.to_owned(),
                    names,
                    day(&k.not_before),
                    day(&k.not_after),
                    cert,
                    k.days_left
                        .map_or_else(|| "-".to_owned(), |d| d.to_string()),
                    status,
                ]);
            }
            let widths: Vec<usize> = (0..table[0].len())
                .map(|i| {
                    table
                        .iter()
                        .map(|r| r[i].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for row in &table {
                let line: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", line.join("  ").trim_end());
            }
            for (entry, (status, detail)) in &checks {
                if *status != CheckStatus::Ok {
                    println!("{status}  {entry}: {detail}");
                }
            }
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}
