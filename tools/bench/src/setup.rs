//! `reseal-bench setup`: keys and a configuration for benchmarking.
//!
//! DIR/connect.pem, connect.pub.pem: the Amazon Connect-shaped source key.
//! DIR/consumers/cNNN.pem, cNNN.pub.pem: one RSA-2048 key per consumer.
//! DIR/bench.json: the key id and consumer names (read by the Python baseline).
//! DIR/reseal.yaml: the server, with routes `fanout-1`, `fanout-10`, `fanout-100`
//! (every fan-out up to the consumer count), 0x0478 envelopes (or, with
//! `--format jwe`, JWE envelopes: RSA-OAEP-256 + A256GCM, compact), audit
//! logging on. The keys are the same for both formats.

use std::fmt::Write as _;
use std::path::Path;

use reseal::keys::raw_rsa;

/// What the set-up writes into the configuration.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    pub consumers: usize,
    /// gRPC port; health and admin take the next two.
    pub port: u16,
    /// Crypto worker threads of the server (`server.worker_threads`); None: one per core.
    pub worker_threads: Option<usize>,
    /// Also configure an AWS KMS source for this key ARN (inputs wrapped by KMS).
    pub kms_key_arn: Option<String>,
    /// The consumers' envelope format.
    pub format: Format,
}

/// The consumers' envelope format (`format:` of every consumer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// ESDK messages (0x0478, one RSA-2048 OAEP-SHA256 EDK).
    #[default]
    Esdk,
    /// JWE (compact; RSA-OAEP-256 for the one RSA-2048 key, A256GCM).
    Jwe,
}

/// Route name for a fan-out.
pub fn route(fan_out: usize) -> String {
    format!("fanout-{fan_out}")
}

/// Consumer name `i`.
pub fn consumer(i: usize) -> String {
    format!("c{i:03}")
}

pub fn write(dir: &Path, o: &SetupOptions) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir.join("consumers"))?;
    let key = |path: &Path| -> Result<(), Box<dyn std::error::Error>> {
        if !path.exists() {
            let (private, public) = raw_rsa::generate_pem(2048)?;
            write_private(path, private.as_bytes())?;
            std::fs::write(path.with_extension("pub.pem"), public)?;
        }
        Ok(())
    };
    key(&dir.join("connect.pem"))?;
    let names: Vec<String> = (0..o.consumers).map(consumer).collect();
    for n in &names {
        key(&dir.join("consumers").join(format!("{n}.pem")))?;
    }
    let meta = serde_json::json!({
        "connect_key_id": super::CONNECT_KEY_ID,
        "connect_provider_id": "AmazonConnect",
        "consumers": names,
    });
    std::fs::write(dir.join("bench.json"), serde_json::to_vec_pretty(&meta)?)?;
    std::fs::write(dir.join("reseal.yaml"), config(o))?;
    Ok(())
}

fn write_private(path: &Path, pem: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(pem)
}

/// The benchmark configuration (YAML).
pub fn config(o: &SetupOptions) -> String {
    let mut y = String::new();
    let p = o.port;
    let _ = writeln!(
        y,
        "# Written by `reseal-bench setup`: a benchmark configuration."
    );
    let _ = writeln!(y, "server:");
    let _ = writeln!(y, "  listen: 127.0.0.1:{p}");
    let _ = writeln!(y, "  health_listen: 127.0.0.1:{}", p + 1);
    let _ = writeln!(y, "  admin_listen: 127.0.0.1:{}", p + 2);
    let _ = writeln!(y, "  max_concurrent_requests: 4096");
    let _ = writeln!(y, "  reload_interval: 0s");
    let _ = writeln!(y, "  log_format: json");
    if let Some(t) = o.worker_threads {
        let _ = writeln!(y, "  worker_threads: {t}");
    }
    let _ = writeln!(y, "limits:");
    let _ = writeln!(y, "  max_consumers_per_call: {}", o.consumers.max(1));
    let _ = writeln!(y, "sources:");
    let _ = writeln!(y, "  connect:");
    let _ = writeln!(y, "    type: raw-rsa");
    let _ = writeln!(y, "    provider_id: AmazonConnect");
    let _ = writeln!(y, "    key_name: {}", super::CONNECT_KEY_ID);
    let _ = writeln!(y, "    padding: oaep-sha512");
    let _ = writeln!(y, "    private_key: file:connect.pem");
    if let Some(arn) = &o.kms_key_arn {
        let _ = writeln!(y, "  kms:");
        let _ = writeln!(y, "    type: aws-kms");
        let _ = writeln!(y, "    key_ids: [\"{arn}\"]");
    }
    let _ = writeln!(y, "consumers:");
    for i in 0..o.consumers {
        let n = consumer(i);
        let format = match o.format {
            Format::Esdk => "",
            Format::Jwe => "format: jwe, ",
        };
        let _ = writeln!(
            y,
            "  {n}: {{{format}keys: {{{n}-k1: {{type: rsa-public, public_key: file:consumers/{n}.pub.pem}}}}}}"
        );
    }
    let _ = writeln!(y, "routes:");
    for f in super::FAN_OUTS
        .iter()
        .copied()
        .filter(|f| *f <= o.consumers)
    {
        let list: Vec<String> = (0..f).map(consumer).collect();
        let _ = writeln!(y, "  {}: [{}]", route(f), list.join(", "));
    }
    y
}
