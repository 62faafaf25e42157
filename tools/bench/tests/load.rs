//! `reseal-bench`: the set-up's configuration serves, and the load generator
//! measures what it claims (every call answered, fan-out seen, open loop at
//! the asked rate, server CPU and RSS read from /proc).

use std::time::Duration;

use reseal::app::{self, StartOptions};
use reseal::registry::ConfigSource;
use reseal_bench::{load, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_config_serves_and_the_load_generator_measures_it() {
    let dir = tempfile::tempdir().unwrap();
    setup::write(
        dir.path(),
        &setup::SetupOptions {
            consumers: 10,
            port: 0,
            worker_threads: Some(2),
            kms_key_arn: None,
            format: setup::Format::Esdk,
        },
    )
    .unwrap();
    let yaml = std::fs::read_to_string(dir.path().join("reseal.yaml")).unwrap();
    assert!(yaml.contains("fanout-10: [c000, c001"), "{yaml}");
    assert!(
        !yaml.contains("fanout-100"),
        "no route beyond the consumer count"
    );
    let running = app::start(
        ConfigSource::File(dir.path().join("reseal.yaml")),
        StartOptions::loopback(),
    )
    .await
    .expect("the bench configuration is valid");

    let input = load::InputKind::Connect {
        public_key: dir.path().join("connect.pub.pem"),
    };
    let inputs = load::make_inputs(&input, 16, 4).await.unwrap();
    assert_eq!(inputs.len(), 4);
    let options = load::RunOptions {
        target: running.grpc_addr.to_string(),
        route: setup::route(10),
        concurrency: 2,
        connections: 1,
        warmup: Duration::from_millis(100),
        duration: Duration::from_secs(10),
        max_calls: 12,
        rate: None,
        arrivals: load::Arrivals::Uniform,
        timer: load::Timer::Precise,
        batch: 0,
        server_pid: Some(std::process::id()),
        latency_trace: None,
    };
    // Closed loop, bounded by the call count (well before the 10 s).
    let closed = load::run(&options, inputs.clone(), &input, 16)
        .await
        .unwrap();
    assert_eq!(closed.errors, 0, "{:?}", closed.first_error);
    assert_eq!(closed.calls, 12);
    assert_eq!(closed.requests, 12);
    assert_eq!(closed.fan_out, 10);
    assert_eq!((closed.arrivals, closed.timer), (None, None));
    assert!(closed.seconds < 9.0);
    assert!(closed.latency_us.p50 > 0 && closed.latency_us.p50 <= closed.latency_us.max);
    let server = closed.server.as_ref().unwrap();
    assert!(server.cpu_seconds > 0.0 && server.cpu_us_per_request > 0.0);
    assert!(server.after.peak_rss_bytes >= server.after.rss_bytes && server.after.rss_bytes > 0);
    // The machine's share: this process is both ends here, so it did all of it.
    let machine = closed.machine.as_ref().expect("Linux reports the machine");
    assert!(
        machine.load_generator_cores_busy > 0.0 && machine.load_generator_cpu_us_per_call > 0.0
    );
    assert!(machine.cores_busy > 0.0 && machine.other_cores_busy >= 0.0);

    // Open loop: about rate × duration calls, bounded by time, each one traced; the
    // warm-up is the schedule's first calls (100 ms at 40/s: 4), issued, not counted.
    let trace = dir.path().join("latency-trace.txt");
    let open_loop = |arrivals| load::RunOptions {
        rate: Some(40.0),
        arrivals,
        duration: Duration::from_millis(500),
        max_calls: 1_000,
        concurrency: 4,
        latency_trace: Some(trace.clone()),
        ..options.clone()
    };
    let open = load::run(
        &open_loop(load::Arrivals::Uniform),
        inputs.clone(),
        &input,
        16,
    )
    .await
    .unwrap();
    assert_eq!(open.errors, 0);
    assert!((18..=22).contains(&open.calls), "{} calls", open.calls);
    assert_eq!(
        (open.arrivals, open.timer),
        (Some(load::Arrivals::Uniform), Some(load::Timer::Precise))
    );
    // One line per call, in order of due time, one every 25 ms (a call released on
    // time is due when released; a late one when it was scheduled).
    let text = std::fs::read_to_string(&trace).unwrap();
    // The window's start on CLOCK_MONOTONIC, to line the calls up with a system trace.
    let start_ns: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("# window_start_monotonic_ns "))
        .expect("trace header with the window start")
        .parse()
        .unwrap();
    assert!(start_ns > 0);
    let calls: Vec<(u64, u64)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (due, latency) = l.split_once(' ').unwrap();
            (due.parse().unwrap(), latency.parse().unwrap())
        })
        .collect();
    assert_eq!(calls.len() as u64, open.calls);
    for (n, (due, latency)) in calls.iter().enumerate() {
        let scheduled = n as u64 * 25_000;
        assert!(
            *due + 1_000 >= scheduled && *due < scheduled + 25_000,
            "call {n} due at {due} µs"
        );
        assert!(*latency > 0 && *latency <= open.latency_us.max + 1000);
    }

    // Poisson arrivals: the same mean rate, irregular gaps (a seeded schedule).
    let poisson = load::run(
        &open_loop(load::Arrivals::Poisson),
        inputs.clone(),
        &input,
        16,
    )
    .await
    .unwrap();
    assert_eq!(poisson.errors, 0);
    assert_eq!(poisson.arrivals, Some(load::Arrivals::Poisson));
    assert!((5..=40).contains(&poisson.calls), "{} calls", poisson.calls);
    let dues: Vec<u64> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_once(' ').unwrap().0.parse().unwrap())
        .collect();
    let gaps: Vec<u64> = dues.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().any(|g| *g < 15_000) && gaps.iter().any(|g| *g > 35_000),
        "{gaps:?}"
    );

    // Batches count their items as requests.
    let batched = load::run(
        &load::RunOptions {
            batch: 3,
            max_calls: 2,
            route: setup::route(1),
            ..options.clone()
        },
        inputs,
        &input,
        16,
    )
    .await
    .unwrap();
    assert_eq!(
        (batched.calls, batched.requests, batched.fan_out),
        (2, 6, 1)
    );

    // A wrong route is an error the report carries, not a success.
    let failing = load::run(
        &load::RunOptions {
            route: "no-such-route".into(),
            warmup: Duration::ZERO,
            max_calls: 3,
            ..options
        },
        vec![vec![1, 2, 3]],
        &input,
        16,
    )
    .await
    .unwrap();
    assert_eq!((failing.requests, failing.errors), (0, 3));
    assert!(failing.first_error.is_some());
    running.stop().await.unwrap();
}

/// `reseal-bench setup --format jwe`: the same keys and routes, every consumer
/// JWE; the load generator drives it, and the floor's JWE seal opens with the
/// consumer's key shape (a compact RSA-OAEP-256 + A256GCM envelope).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwe_setup_serves_jwe_envelopes_to_the_load_generator() {
    use reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient;
    let dir = tempfile::tempdir().unwrap();
    let options = setup::SetupOptions {
        consumers: 10,
        port: 0,
        worker_threads: Some(2),
        kms_key_arn: None,
        format: setup::Format::Jwe,
    };
    setup::write(dir.path(), &options).unwrap();
    let yaml = std::fs::read_to_string(dir.path().join("reseal.yaml")).unwrap();
    assert!(
        yaml.contains("c000: {format: jwe, keys: {c000-k1: {type: rsa-public"),
        "{yaml}"
    );
    let running = app::start(
        ConfigSource::File(dir.path().join("reseal.yaml")),
        StartOptions::loopback(),
    )
    .await
    .expect("the JWE bench configuration is valid");
    let input = load::InputKind::Connect {
        public_key: dir.path().join("connect.pub.pem"),
    };
    let inputs = load::make_inputs(&input, 16, 2).await.unwrap();
    let mut client = ReencryptServiceClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .unwrap();
    let resp = client
        .reencrypt(reseal::grpc::proto::ReencryptRequest {
            input: Some(reseal::grpc::proto::reencrypt_request::Input::Ciphertext(
                inputs[0].clone(),
            )),
            route: setup::route(10),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.results.len(), 10);
    for r in &resp.results {
        assert_eq!(r.format(), reseal::grpc::proto::EnvelopeFormat::JweCompact);
        let jwe = reseal::jwe::parse(&r.ciphertext).unwrap();
        assert_eq!(
            jwe.recipients()[0].alg(),
            reseal::jwe::Algorithm::RsaOaep256
        );
    }
    let report = load::run(
        &load::RunOptions {
            target: running.grpc_addr.to_string(),
            route: setup::route(10),
            concurrency: 2,
            connections: 1,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(10),
            max_calls: 4,
            rate: None,
            arrivals: load::Arrivals::Uniform,
            timer: load::Timer::Precise,
            batch: 0,
            server_pid: None,
            latency_trace: None,
        },
        inputs,
        &input,
        16,
    )
    .await
    .unwrap();
    assert_eq!(
        (report.calls, report.errors),
        (4, 0),
        "{:?}",
        report.first_error
    );
    running.stop().await.unwrap();
    // The floor's JWE half on the same keys.
    let floor = reseal_bench::floor::FloorWork::from_setup_dir(dir.path(), 10, 16).unwrap();
    floor.reencrypt_jwe(0, 10);
}
