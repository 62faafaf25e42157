//! The composition root: config → registry → broker → servers. Used by
//! `reseal serve`, `reseal demo` and the end-to-end tests, so all three run the
//! very same wiring.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::broker::{Broker, CpuPool, DeskOptions, MaterialsCache};
use crate::clock::{Clock, SystemClock};
use crate::keys::aws::AwsKeys;
use crate::registry::model::{AwsSpec, ConfigFile, IoScheduling, ServerSpec};
use crate::registry::{self, ConfigSource, Host, LoadOptions, RegistryHandle, ReloadOutcome};
use crate::server::{serve, Listeners, ServeError};
use crate::telemetry::Metrics;

/// The default configuration, compiled in for runs outside a checkout.
pub const EMBEDDED_CONFIG: &str = include_str!("../config/reseal.yaml");

/// Picks the configuration: an explicit path, else `config/reseal.yaml` if it
/// exists, else the embedded default (keys then live under `./dev-keys`).
pub fn config_source(explicit: Option<&Path>) -> ConfigSource {
    match explicit {
        Some(p) => ConfigSource::File(p.to_owned()),
        None => {
            let default = PathBuf::from("config/reseal.yaml");
            if default.exists() {
                ConfigSource::File(default)
            } else {
                ConfigSource::Embedded {
                    name: "embedded default config".into(),
                    text: EMBEDDED_CONFIG.into(),
                    base_dir: std::env::current_dir().unwrap_or_default().join("config"),
                }
            }
        }
    }
}

/// Errors that stop the process from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Reads the text and base folder of a config source.
pub fn read_source(source: &ConfigSource) -> Result<(String, String, PathBuf), StartError> {
    source.read().map_err(StartError::Config)
}

/// The non-reloadable parts of a config, plus dev-key creation when asked for.
pub fn prepare(source: &ConfigSource) -> Result<(ConfigFile, PathBuf), StartError> {
    let (text, origin, base) = read_source(source)?;
    let file = registry::parse_file(&text, &origin, true)
        .map_err(|e| StartError::Config(e.to_string()))?;
    if let Some(dir) = &file.development.generate_missing_keys_in {
        let created = registry::generate_missing_dev_keys(&file, &base, dir)
            .map_err(|e| StartError::Config(format!("dev keys: {e}")))?;
        for path in created {
            tracing::warn!(path = %path.display(), "created a DEVELOPMENT key (never use it in production)");
        }
    }
    Ok((file, base))
}

/// A running broker.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The HTTP/JSON door, when `server.http_listen` is set.
    pub http_addr: Option<SocketAddr>,
    pub registry: Arc<RegistryHandle>,
    pub broker: Arc<Broker>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// Starts draining and waits for the servers to stop.
    pub async fn stop(self) -> Result<(), ServeError> {
        let _ = self.shutdown.send(true);
        server_outcome(self.task.await)
    }

    pub fn shutdown_sender(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    pub async fn wait(self) -> Result<(), ServeError> {
        server_outcome(self.task.await)
    }
}

/// A server task that panicked (or was cancelled) is a failure, never a clean exit.
fn server_outcome(
    joined: Result<Result<(), ServeError>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    joined.unwrap_or_else(|e| Err(ServeError::Crashed(e.to_string())))
}

/// Options that tests and the demo override.
pub struct StartOptions {
    pub clock: Arc<dyn Clock>,
    /// Listen on ephemeral loopback ports instead of the configured addresses.
    pub loopback: bool,
    pub metrics: Arc<Metrics>,
    /// What serves the registry (`reseal serve` or `reseal lambda`).
    pub host: Host,
}

impl StartOptions {
    /// Every listener on an ephemeral loopback port (tests, the demo, benchmarks).
    pub fn loopback() -> Self {
        StartOptions {
            loopback: true,
            ..StartOptions::default()
        }
    }
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            clock: Arc::new(SystemClock),
            loopback: false,
            metrics: Arc::new(Metrics::new()),
            host: Host::Server,
        }
    }
}

/// The async runtime of `reseal serve`: `server.io_workers()` threads that only
/// move bytes (the crypto has its own pool), under `server.io_scheduling`.
pub fn runtime(server: &ServerSpec) -> std::io::Result<tokio::runtime::Runtime> {
    let policy = server.io_scheduling;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server.io_workers())
        .enable_all()
        .on_thread_start(move || scheduling::apply(policy))
        .build()
}

pub use scheduling::last_error as io_scheduling_error;

/// Gives memory freed after a burst back to the system: glibc's malloc keeps
/// freed memory in its per-thread arenas (a flood that allocated 20 MB left
/// RSS 20 MB up for good; BENCHMARKS.md, "Under attack"), so a thread checks
/// every `interval` how much the allocator holds free and, past
/// [`memory::TRIM_ABOVE`], trims it. Off with an interval of 0.
pub fn start_memory_release(interval: std::time::Duration) {
    if interval.is_zero() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("reseal-trim".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            memory::release_free();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the memory release thread");
    }
}

pub mod memory {
    /// Free bytes the allocator may keep before they are given back.
    pub const TRIM_ABOVE: usize = 4 * 1024 * 1024;

    /// When glibc's allocator holds more than [`TRIM_ABOVE`] bytes free,
    /// returns them to the system (`malloc_trim`); the bytes it held free.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)] // libc has no safe wrapper; see below
    pub fn release_free() -> usize {
        // SAFETY: mallinfo2 only reads the allocator's statistics (under its
        // own locks); malloc_trim(0) releases free pages of every arena back
        // to the kernel and touches no memory that is in use. Neither takes
        // or returns a pointer.
        let free = unsafe { libc::mallinfo2() }.fordblks;
        if free > TRIM_ABOVE {
            // SAFETY: as above.
            unsafe { libc::malloc_trim(0) };
        }
        free
    }

    /// Other allocators return memory on their own.
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    pub fn release_free() -> usize {
        0
    }
}

mod scheduling {
    use std::sync::atomic::{AtomicI32, Ordering};

    use super::IoScheduling;

    /// errno of the last failed attempt; 0 when none failed.
    static LAST_ERRNO: AtomicI32 = AtomicI32::new(0);

    /// Sets the calling thread's policy (on Linux a policy is per thread).
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)] // the crate's one unsafe call: libc has no safe wrapper for it
    pub fn apply(policy: IoScheduling) {
        let policy = match policy {
            IoScheduling::Batch => libc::SCHED_BATCH,
            IoScheduling::Normal => return,
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread, and `param` is a valid
        // sched_param (priority 0 is the only one SCHED_BATCH takes).
        if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
            LAST_ERRNO.store(errno, Ordering::Relaxed);
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn apply(_policy: IoScheduling) {}

    /// Why the runtime threads could not get their scheduling policy, if they
    /// could not (logged once telemetry is up; the server runs on regardless).
    pub fn last_error() -> Option<std::io::Error> {
        match LAST_ERRNO.load(Ordering::Relaxed) {
            0 => None,
            errno => Some(std::io::Error::from_raw_os_error(errno)),
        }
    }
}

/// Builds the AWS key factory (its clients start on first use, so a
/// configuration without AWS keys never touches AWS).
pub fn aws_keys(spec: &AwsSpec, metrics: &Arc<Metrics>) -> Option<Arc<AwsKeys>> {
    Some(Arc::new(AwsKeys::new(spec.options(), metrics.clone())))
}

/// A broker on a loaded registry, before any listener: what `serve`, the
/// Lambda runtime and the tests all build the same way.
pub struct Built {
    pub broker: Arc<Broker>,
    pub registry: Arc<RegistryHandle>,
    pub file: ConfigFile,
}

/// Loads the registry (failing fast on a broken file) and builds the broker.
pub async fn build(source: ConfigSource, options: &StartOptions) -> Result<Built, StartError> {
    let (file, _base) = prepare(&source)?;
    let metrics = options.metrics.clone();
    metrics.set_request_timeout(file.server.request_timeout);
    let aws = aws_keys(&file.aws, &metrics);
    let load_options = LoadOptions {
        env_overrides: true,
        aws: aws.clone(),
        host: options.host,
    };
    let registry = Arc::new(RegistryHandle::new(
        source,
        load_options,
        options.clock.clone(),
        metrics.clone(),
    ));
    match registry.reload(true).await {
        ReloadOutcome::Applied { .. } | ReloadOutcome::Unchanged => {}
        ReloadOutcome::Rejected { problems } => {
            return Err(StartError::Config(problems.join("\n")))
        }
    }
    let server = &file.server;
    let cpu = CpuPool::new(server.workers());
    let materials = Arc::new(MaterialsCache::new(
        &file.aws.consumer_data_key_cache,
        metrics.clone(),
    ));
    let broker = Arc::new(
        Broker::new(registry.clone(), options.clock.clone(), metrics, cpu)
            .with_materials_cache(materials)
            .with_desk(&DeskOptions {
                max_concurrent_requests: server.max_concurrent_requests,
                allow_plaintext_credentials: server.allow_plaintext_credentials,
                max_pending_requests: server.max_pending_requests,
                failure_burst: server.failure_budget.burst,
                failure_window: server.failure_budget.window,
                security_log_interval: server.security_log_interval,
                max_request_body_memory: server.max_request_body_memory,
            }),
    );
    Ok(Built {
        broker,
        registry,
        file,
    })
}

/// Loads the registry (failing fast on a broken file), binds, and serves.
pub async fn start(source: ConfigSource, options: StartOptions) -> Result<Running, StartError> {
    let Built {
        broker,
        registry,
        file,
    } = build(source, &options).await?;
    let server: ServerSpec = file.server;
    let problems = server.problems();
    if !problems.is_empty() {
        return Err(StartError::Config(problems.join("\n")));
    }
    start_memory_release(server.memory_release_interval);
    let (shutdown, shutdown_rx) = watch::channel(false);
    registry.spawn_watcher(server.reload_interval, shutdown_rx.clone());

    let loopback = "127.0.0.1:0".to_owned();
    let addr = |configured: &String| {
        if options.loopback {
            loopback.clone()
        } else {
            configured.clone()
        }
    };
    let bind = |what: &'static str, addr: String| async move {
        tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Bind { what, addr, source })
    };
    let http = match &server.http_listen {
        Some(a) if !a.is_empty() => Some(bind("HTTP/JSON", addr(a)).await?),
        _ => None,
    };
    let listeners = Listeners {
        grpc: bind("gRPC", addr(&server.listen)).await?,
        health: bind("health", addr(&server.health_listen)).await?,
        admin: bind("admin", addr(&server.admin_listen)).await?,
        http,
    };
    let local = |l: &tokio::net::TcpListener| {
        l.local_addr().map_err(|e| StartError::Bind {
            what: "listener",
            addr: "?".into(),
            source: e,
        })
    };
    let grpc_addr = local(&listeners.grpc)?;
    let health_addr = local(&listeners.health)?;
    let admin_addr = local(&listeners.admin)?;
    let http_addr = match &listeners.http {
        Some(l) => Some(local(l)?),
        None => None,
    };
    let task = {
        let broker = broker.clone();
        tokio::spawn(async move { serve(broker, &server, listeners, shutdown_rx).await })
    };
    Ok(Running {
        grpc_addr,
        health_addr,
        admin_addr,
        http_addr,
        registry,
        broker,
        shutdown,
        task,
    })
}

/// Resolves when SIGTERM or Ctrl-C arrives.
pub async fn termination() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod outcome_tests {
    use super::*;

    #[tokio::test]
    async fn a_panicked_server_task_is_an_error() {
        let joined = tokio::spawn(async { panic!("boom") }).await;
        assert!(matches!(
            server_outcome(joined),
            Err(ServeError::Crashed(_))
        ));
        let joined = tokio::spawn(async { Ok(()) }).await;
        assert!(server_outcome(joined).is_ok());
    }
}

#[cfg(all(test, target_os = "linux"))]
#[allow(unsafe_code)] // reads the threads' policies back
mod tests {
    use super::*;

    /// The policy the runtime's worker threads run under.
    fn worker_policy(scheduling: IoScheduling) -> i32 {
        let server = ServerSpec {
            io_threads: Some(2),
            io_scheduling: scheduling,
            ..ServerSpec::default()
        };
        let runtime = runtime(&server).unwrap();
        // SAFETY: sched_getscheduler(0) only reads the calling thread's policy.
        let policy = runtime
            .block_on(runtime.spawn(async { unsafe { libc::sched_getscheduler(0) } }))
            .unwrap();
        assert!(io_scheduling_error().is_none());
        policy
    }

    #[test]
    fn runtime_threads_get_the_configured_scheduling_policy() {
        // SAFETY: as above.
        let own = || unsafe { libc::sched_getscheduler(0) };
        let before = own();
        assert_eq!(worker_policy(IoScheduling::Batch), libc::SCHED_BATCH);
        // `normal` leaves the inherited policy alone.
        assert_eq!(worker_policy(IoScheduling::Normal), before);
        // The calling thread keeps its own policy.
        assert_eq!(own(), before);
    }
}
