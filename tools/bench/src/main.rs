//! `reseal-bench`: the benchmark set-up, the crypto floor and the load generator.
//! `scripts/bench.sh` strings them together into BENCHMARKS.md. A tool of its
//! own, built on reseal's public API, so the product binary holds only the product.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use reseal_bench::{floor, load, setup};

#[derive(clap::Parser, Debug)]
#[command(
    name = "reseal-bench",
    version,
    about = "Benchmarks for reseal: set-up, crypto floor, load generator (see scripts/bench.sh)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Errors a subcommand reports before exiting with status 2.
type CliResult = Result<ExitCode, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    use clap::Parser as _;
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Write keys and a server configuration with routes fanout-1/10/100.
    Setup(SetupArgs),
    /// Measure the crypto floor: the primitive work per request on one thread.
    Floor(FloorArgs),
    /// Drive a running server over loopback and report throughput, latency, CPU and memory.
    Load(Box<LoadArgs>),
    /// Measure how often this CPU is taken away (busy loop; gaps over 0.5 ms).
    Stalls(StallArgs),
    /// Flood a running server (issue 22's attacks) with a legitimate caller
    /// beside it; the "Under attack" table. `--rounds` makes it a soak.
    Attack(AttackArgs),
}

#[derive(clap::Args, Debug)]
pub struct AttackArgs {
    /// gRPC address of the running server.
    #[arg(long, default_value = "127.0.0.1:50151")]
    target: String,
    /// Its HTTP/JSON door, for the HTTP/1.1 slow-header variant.
    #[arg(long)]
    http: Option<String>,
    /// Floods to run, in order (default: all).
    #[arg(long, value_delimiter = ',')]
    flood: Vec<reseal_bench::attack::Flood>,
    /// How long each flood (and each unloaded measurement) runs.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Time the server gets after a flood before its RSS is read.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Repeat the floods this many times (a soak).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Route the legitimate caller (and the attacker) name.
    #[arg(long, default_value = "fanout-1")]
    route: String,
    /// The source key's provider id and key name (public: in every ciphertext).
    #[arg(long, default_value = "AmazonConnect")]
    provider_id: String,
    #[arg(long, default_value = reseal_bench::CONNECT_KEY_ID)]
    key_name: String,
    /// The source's public key (`reseal-bench setup` writes connect.pub.pem):
    /// the legitimate caller's inputs, and the tampered flood's.
    #[arg(long)]
    connect_public_key: PathBuf,
    /// The server's pid, for its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Attacking connections (default: each flood's own).
    #[arg(long)]
    connections: Option<usize>,
    /// Write every row as JSON lines here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct StallArgs {
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct SetupArgs {
    #[arg(long)]
    dir: PathBuf,
    /// Consumers (one RSA-2048 key each).
    #[arg(long, default_value_t = 100)]
    consumers: usize,
    /// gRPC port; health and admin use the next two.
    #[arg(long, default_value_t = 50151)]
    port: u16,
    /// `server.worker_threads` of the configured server.
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Also accept inputs wrapped by this AWS KMS key.
    #[arg(long)]
    kms_key: Option<String>,
    /// The consumers' envelope format: `esdk` (0x0478) or `jwe` (RSA-OAEP-256 + A256GCM).
    #[arg(long, value_enum, default_value_t = setup::Format::Esdk)]
    format: setup::Format,
}

#[derive(clap::Args, Debug)]
pub struct FloorArgs {
    /// Fan-outs to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 10, 100])]
    fan_out: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long, default_value_t = 16)]
    payload_bytes: usize,
    /// Upper bound on iterations per measurement.
    #[arg(long, default_value_t = 10_000_000)]
    max_iterations: u64,
    /// Use the keys `reseal-bench setup` wrote here (the server's own keys) instead of new ones.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// What each consumer's envelope is: `esdk` (the 0x0478 seal) or `jwe`
    /// (RSA-OAEP-256 of a random CEK, A256GCM of the payload).
    #[arg(long, value_enum, default_value_t = setup::Format::Esdk)]
    format: setup::Format,
}

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// gRPC address of the running server.
    #[arg(long, default_value = "127.0.0.1:50151")]
    target: String,
    /// Route to call (default: `fanout-N` from --fan-out).
    #[arg(long)]
    route: Option<String>,
    /// Consumers per request, via the set-up's `fanout-N` routes.
    #[arg(long, default_value_t = 1)]
    fan_out: usize,
    /// `connect` (RSA, needs --connect-public-key) or `kms` (needs --kms-key and AWS_ENDPOINT_URL).
    #[arg(long, default_value = "connect")]
    input: String,
    #[arg(long)]
    connect_public_key: Option<PathBuf>,
    #[arg(long)]
    kms_key: Option<String>,
    #[arg(long, default_value_t = 16)]
    payload_bytes: usize,
    /// Distinct inputs, used in turn.
    #[arg(long, default_value_t = 64)]
    inputs: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measured window.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Upper bound on calls in the measured window.
    #[arg(long, default_value_t = 10_000_000)]
    max_calls: u64,
    /// Open loop at this many calls per second (default: closed loop, as fast as it goes).
    #[arg(long)]
    rate: Option<f64>,
    /// How the open loop spaces its calls: `uniform` (fixed intervals) or `poisson`
    /// (exponential gaps, seeded: what many independent clients send).
    #[arg(long, default_value = "uniform")]
    arrivals: reseal_bench::pacer::Arrivals,
    /// What releases each open-loop call: `precise` (a timerfd per caller) or `tokio`
    /// (millisecond ticks: calls due in the same millisecond leave together).
    #[arg(long, default_value = "precise")]
    timer: reseal_bench::pacer::Timer,
    /// Items per ReencryptBatch call (default: unary Reencrypt).
    #[arg(long, default_value_t = 0)]
    batch: usize,
    /// The server's process id, for its CPU time and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write every measured call here, one line each: when it was due and its latency, in µs
    /// from the window's start (for where a latency tail comes from: `benches/trace_windows.py`).
    #[arg(long)]
    latency_trace: Option<PathBuf>,
    /// Threads of the load generator's runtime: 1 runs every caller on one thread (the
    /// least CPU taken from a server on the same machine); 0: one per CPU it may use.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn run(cmd: Command) -> CliResult {
    match cmd {
        Command::Setup(a) => {
            setup::write(
                &a.dir,
                &setup::SetupOptions {
                    consumers: a.consumers,
                    port: a.port,
                    worker_threads: a.worker_threads,
                    kms_key_arn: a.kms_key,
                    format: a.format,
                },
            )?;
            println!("wrote {}", a.dir.join("reseal.yaml").display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Floor(a) => {
            let max = a.fan_out.iter().copied().max().unwrap_or(1);
            let work = match &a.keys {
                Some(dir) => floor::FloorWork::from_setup_dir(dir, max, a.payload_bytes)?,
                None => floor::FloorWork::new(max, a.payload_bytes)?,
            };
            let d = Duration::from_secs_f64(a.seconds);
            let jwe = a.format == setup::Format::Jwe;
            let mut results = vec![
                floor::measure("open", 0, d, a.max_iterations, |i| {
                    std::hint::black_box(work.open_connect(i as usize));
                }),
                floor::measure("seal", 1, d, a.max_iterations, |i| {
                    let c = i as usize % work.consumers();
                    if jwe {
                        work.seal_jwe(c, b"4111111111111111");
                    } else {
                        work.seal_envelope(c, b"4111111111111111");
                    }
                }),
            ];
            for &f in &a.fan_out {
                results.push(floor::measure("reencrypt", f, d, a.max_iterations, |i| {
                    if jwe {
                        work.reencrypt_jwe(i as usize, f)
                    } else {
                        work.reencrypt(i as usize, f)
                    }
                }));
            }
            println!(
                "crypto floor (aws-lc-rs, one thread, {} B payload, {} envelopes)",
                a.payload_bytes,
                if jwe { "JWE" } else { "ESDK" }
            );
            println!(
                "{:>10} {:>8} {:>12} {:>14}",
                "work", "fan-out", "µs/op", "ops per core-s"
            );
            for r in &results {
                println!(
                    "{:>10} {:>8} {:>12.1} {:>14.0}",
                    r.what, r.fan_out, r.us_per_op, r.ops_per_core_second
                );
            }
            if let Some(path) = a.json {
                let doc = serde_json::json!({
                    "tool": "floor",
                    "format": if jwe { "jwe" } else { "esdk" },
                    "payload_bytes": a.payload_bytes,
                    "aws_lc_rs": aws_lc_rs_version(),
                    "machine": reseal_bench::procfs::machine(),
                    "results": results,
                });
                std::fs::write(path, serde_json::to_vec_pretty(&doc)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Stalls(a) => {
            let r = reseal_bench::procfs::stall_probe(
                Duration::from_secs_f64(a.seconds),
                Duration::from_micros(500),
            );
            println!(
                "{} stalls over 0.5 ms in {:.1} s ({:.1}/s), {:.1} ms in total, longest {:.2} ms",
                r.count, r.seconds, r.per_second, r.stalled_ms, r.longest_ms
            );
            if let Some(path) = a.json {
                std::fs::write(path, serde_json::to_vec_pretty(&r)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Attack(a) => attack(a),
        Command::Load(a) => {
            let input = match a.input.as_str() {
                "connect" => load::InputKind::Connect {
                    public_key: a
                        .connect_public_key
                        .ok_or("--input connect needs --connect-public-key")?,
                },
                "kms" => load::InputKind::Kms {
                    key_arn: a.kms_key.ok_or("--input kms needs --kms-key")?,
                },
                other => return Err(format!("unknown --input `{other}` (connect or kms)").into()),
            };
            let options = load::RunOptions {
                target: a.target,
                route: a.route.unwrap_or_else(|| setup::route(a.fan_out)),
                concurrency: a.concurrency,
                connections: a.connections,
                warmup: a.warmup,
                duration: a.duration,
                max_calls: a.max_calls,
                rate: a.rate,
                arrivals: a.arrivals,
                timer: a.timer,
                batch: a.batch,
                server_pid: a.server_pid,
                latency_trace: a.latency_trace,
            };
            let runtime = match a.threads {
                1 => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
                n => {
                    let mut b = tokio::runtime::Builder::new_multi_thread();
                    if n > 1 {
                        b.worker_threads(n);
                    }
                    b.enable_all().build()?
                }
            };
            let report = runtime.block_on(async {
                let inputs = load::make_inputs(&input, a.payload_bytes, a.inputs.max(1)).await?;
                load::run(&options, inputs, &input, a.payload_bytes).await
            })?;
            load::print_header();
            load::print_row(&report);
            if let Some(e) = &report.first_error {
                eprintln!("first error: {e}");
            }
            if let Some(path) = a.json {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
            }
            Ok(if report.errors == 0 && report.requests > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// The aws-lc-rs version this binary was built with (from Cargo.lock at build time).
fn aws_lc_rs_version() -> &'static str {
    option_env!("RESEAL_AWS_LC_RS_VERSION").unwrap_or("unknown")
}

fn attack(a: AttackArgs) -> CliResult {
    use reseal_bench::attack::{self, Campaign, Flood, Target};
    let public = std::fs::read_to_string(&a.connect_public_key)?;
    let sender = reseal::keys::RawRsaKeyring::from_public_pem(
        &a.provider_id,
        &a.key_name,
        reseal::keys::RsaPadding::OaepSha512,
        public.as_bytes(),
    )?;
    let legit = reseal::grpc::proto::ReencryptRequest {
        input: Some(reseal::grpc::proto::reencrypt_request::Input::Ciphertext(
            reseal_bench::connect_message(&sender, b"4111111111111111")?,
        )),
        route: a.route.clone(),
        ..Default::default()
    };
    let campaign = Campaign {
        target: Target {
            grpc: a.target.parse()?,
            http: a.http.as_deref().map(str::parse).transpose()?,
            route: a.route,
            provider_id: a.provider_id,
            key_name: a.key_name,
            public_key_pem: Some(public),
        },
        legit,
        floods: if a.flood.is_empty() {
            Flood::ALL.to_vec()
        } else {
            a.flood
        },
        duration: a.duration,
        settle: a.settle,
        server_pid: a.server_pid,
        connections: a.connections,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut out = match &a.json {
        Some(p) => Some(std::fs::File::create(p)?),
        None => None,
    };
    println!("{}", attack::MARKDOWN_HEADER);
    let mut failed = 0;
    for round in 0..a.rounds.max(1) {
        let rows = rt
            .block_on(campaign.run(|row| {
                println!("{}", attack::markdown_row(row));
                if let Some(f) = out.as_mut() {
                    use std::io::Write as _;
                    let _ = writeln!(f, "{}", serde_json::json!({"round": round, "row": row}));
                }
            }))
            .map_err(|e| e.to_string())?;
        failed += rows.iter().map(|r| r.during.failures).sum::<u64>();
    }
    if failed > 0 {
        eprintln!("{failed} legitimate calls failed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
