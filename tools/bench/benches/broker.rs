//! The whole stack per request, next to its crypto floor, measured in the same
//! run: a regression guard for the broker's hot path (gRPC edge, registry
//! lookup, CPU pool hand-off, open once, seal per consumer, audit, metrics).
//!
//! * `reencrypt_fanout_N/grpc`: one unary `Reencrypt` over loopback gRPC
//!   (client and server in this process, one call at a time), an Amazon
//!   Connect-shaped input sealed for N consumers (0x0478, RSA-2048).
//! * `reencrypt_fanout_N/floor`: the same primitive work done directly with
//!   aws-lc-rs on one thread (`reseal_bench::floor`).
//! * `pool_round_trip`: one empty job through the CPU pool and back.
//!
//! Wall time per call, so the gRPC rows include the client and the hand-offs;
//! the CPU-time comparison under load is `scripts/bench.sh` (BENCHMARKS.md).
//!
//! Run: `cargo bench -p reseal-bench --bench broker` (each benchmark runs once under `cargo test`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use reseal::app::{self, StartOptions};
use reseal::broker::CpuPool;
use reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient;
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptRequest};
use reseal::registry::ConfigSource;
use reseal_bench::{floor::FloorWork, load, setup};

fn reencrypt(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    setup::write(
        dir.path(),
        &setup::SetupOptions {
            consumers: 100,
            port: 0,
            worker_threads: None,
            kms_key_arn: None,
            format: setup::Format::Esdk,
        },
    )
    .unwrap();
    let (running, mut client, inputs) = runtime.block_on(async {
        let running = app::start(
            ConfigSource::File(dir.path().join("reseal.yaml")),
            StartOptions::loopback(),
        )
        .await
        .unwrap();
        let client = ReencryptServiceClient::connect(format!("http://{}", running.grpc_addr))
            .await
            .unwrap();
        let input = load::InputKind::Connect {
            public_key: dir.path().join("connect.pub.pem"),
        };
        let inputs = load::make_inputs(&input, 16, 16).await.unwrap();
        (running, client, inputs)
    });
    let floor = FloorWork::new(100, 16).unwrap();
    for fan_out in [1usize, 10, 100] {
        let mut g = c.benchmark_group(format!("reencrypt_fanout_{fan_out}"));
        if fan_out == 100 {
            g.sample_size(20);
        }
        let mut i = 0usize;
        g.bench_function("grpc", |b| {
            b.iter(|| {
                i += 1;
                let request = ReencryptRequest {
                    input: Some(Input::Ciphertext(inputs[i % inputs.len()].clone())),
                    route: setup::route(fan_out),
                    ..Default::default()
                };
                let response = runtime
                    .block_on(client.reencrypt(request))
                    .unwrap()
                    .into_inner();
                assert_eq!(response.results.len(), fan_out);
                black_box(response);
            })
        });
        let mut j = 0usize;
        g.bench_function("floor", |b| {
            b.iter(|| {
                j += 1;
                floor.reencrypt(j, fan_out)
            })
        });
        g.finish();
    }
    c.bench_function("pool_round_trip", |b| {
        let pool = CpuPool::new(2);
        b.iter(|| runtime.block_on(pool.run(|| black_box(1u8))).unwrap())
    });
    runtime.block_on(running.stop()).unwrap();
}

criterion_group!(benches, reencrypt);
criterion_main!(benches);
