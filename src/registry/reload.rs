//! Hot reload: the current registry behind an atomic pointer, replaced only by
//! a registry that loaded and self-tested whole.
//!
//! Triggers: a change of the file's *content* (polled, which also catches the
//! symlink swap Kubernetes does for ConfigMaps) and SIGHUP. A broken file
//! leaves the old registry serving and is reported in logs and metrics.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use super::build::{load_str, LoadOptions};
use super::check::{self_test, Check, CheckStatus};
use super::Registry;
use crate::clock::Clock;
use crate::telemetry::Metrics;

/// Where the configuration comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    File(PathBuf),
    /// Text compiled into the binary (the development default).
    Embedded {
        name: String,
        text: String,
        base_dir: PathBuf,
    },
}

impl ConfigSource {
    /// The text, a name for messages (the path), and the folder `file:`
    /// references are relative to.
    pub fn read(&self) -> Result<(String, String, PathBuf), String> {
        match self {
            ConfigSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let base = path
                    .parent()
                    .map(|p| p.to_owned())
                    .unwrap_or_else(|| PathBuf::from("."));
                Ok((text, path.display().to_string(), base))
            }
            ConfigSource::Embedded {
                name,
                text,
                base_dir,
            } => Ok((text.clone(), name.clone(), base_dir.clone())),
        }
    }
}

/// What a reload attempt did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// Content unchanged since the last attempt.
    Unchanged,
    Applied {
        digest: String,
        warnings: Vec<String>,
        checks: Vec<Check>,
    },
    /// The old registry keeps serving.
    Rejected { problems: Vec<String> },
}

/// The current registry, shared by every request.
pub struct RegistryHandle {
    current: ArcSwapOption<Registry>,
    source: ConfigSource,
    options: LoadOptions,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Digest of the content last attempted (applied or rejected).
    last_attempt: Mutex<Option<String>>,
    /// Files the current registry read (key material, secrets), watched with the config.
    watched: Mutex<Vec<PathBuf>>,
    /// Serializes reloads.
    reloading: tokio::sync::Mutex<()>,
}

/// The digest of the configuration text and of every file the last loaded
/// registry read (a missing file counts as empty).
fn inputs_digest(text: &str, watched: &[PathBuf]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(text.as_bytes());
    for path in watched {
        let bytes = std::fs::read(path).unwrap_or_default();
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes).as_ref());
    }
    hex::encode(ctx.finish().as_ref())
}

impl RegistryHandle {
    pub fn new(
        source: ConfigSource,
        options: LoadOptions,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        RegistryHandle {
            current: ArcSwapOption::empty(),
            source,
            options,
            clock,
            metrics,
            last_attempt: Mutex::new(None),
            watched: Mutex::new(Vec::new()),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The registry requests should use, if one has loaded.
    pub fn snapshot(&self) -> Option<Arc<Registry>> {
        self.current.load_full()
    }

    pub fn source(&self) -> &ConfigSource {
        &self.source
    }

    /// Installs a registry directly (tests, demo).
    pub fn install(&self, registry: Registry) {
        self.metrics.set_expiries(&registry.expiries());
        self.current.store(Some(Arc::new(registry)));
    }

    /// Loads, self-tests and (if sound) swaps in the configuration.
    /// `force` reloads even when the content has not changed (SIGHUP).
    pub async fn reload(&self, force: bool) -> ReloadOutcome {
        let _guard = self.reloading.lock().await;
        let (text, origin, base) = match self.source.read() {
            Ok(t) => t,
            Err(e) => return self.reject(None, vec![e]),
        };
        let watched = self
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let d = inputs_digest(&text, &watched);
        if !force
            && self
                .last_attempt
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_deref()
                == Some(d.as_str())
        {
            return ReloadOutcome::Unchanged;
        }
        let loaded_text = text.clone();
        let loaded = {
            let options = self.options.clone();
            let origin = origin.clone();
            // Parsing PEM and RSA keys is CPU work: keep it off the reactor.
            match tokio::task::spawn_blocking(move || load_str(&text, &origin, &base, &options))
                .await
            {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => return self.reject(Some(d), e.problems()),
                Err(e) => return self.reject(Some(d), vec![format!("loader crashed: {e}")]),
            }
        };
        let checks = self_test(&loaded.registry, self.clock.now()).await;
        let blocking: Vec<String> = checks
            .iter()
            .filter(|c| c.blocking)
            .map(|c| format!("{origin}: {}: self-test failed: {}", c.entry, c.detail))
            .collect();
        if !blocking.is_empty() {
            return self.reject(Some(d), blocking);
        }
        for w in &loaded.warnings {
            tracing::warn!(warning = %w, "registry warning");
        }
        for c in &checks {
            match c.status {
                CheckStatus::Ok | CheckStatus::Skip => {
                    tracing::debug!(entry = %c.entry, detail = %c.detail, "key check ok")
                }
                CheckStatus::Warn => {
                    tracing::warn!(entry = %c.entry, detail = %c.detail, "key check warning")
                }
                CheckStatus::Fail => {
                    tracing::error!(entry = %c.entry, detail = %c.detail, "key check failed")
                }
            }
        }
        let registry = loaded.registry;
        let digest = registry.digest.clone();
        // The files it read (key material, caller secrets) count as its content
        // from now on: a rotated Secret file is a change like an edit of the config.
        *self.watched.lock().unwrap_or_else(|e| e.into_inner()) = loaded.watched_files.clone();
        let d = inputs_digest(&loaded_text, &loaded.watched_files);
        tracing::info!(
            origin = %registry.origin,
            digest = %digest,
            sources = registry.sources.len(),
            consumers = registry.consumers.len(),
            routes = registry.routes.len(),
            "registry loaded"
        );
        self.install(registry);
        *self.last_attempt.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
        self.metrics.registry_reload(true);
        ReloadOutcome::Applied {
            digest,
            warnings: loaded.warnings,
            checks,
        }
    }

    fn reject(&self, digest: Option<String>, problems: Vec<String>) -> ReloadOutcome {
        if let Some(d) = digest {
            *self.last_attempt.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
        }
        let serving = self.current.load().is_some();
        for p in &problems {
            tracing::error!(problem = %p, keeps_serving_previous = serving, "registry reload rejected");
        }
        self.metrics.registry_reload(false);
        ReloadOutcome::Rejected { problems }
    }

    /// Polls the file every `interval` and reloads on SIGHUP, until `shutdown` flips.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let handle = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut ticker = (!interval.is_zero()).then(|| {
                let mut t = tokio::time::interval(interval);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                #[cfg(unix)]
                let hup_fut = async {
                    match hup.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hup_fut = std::future::pending::<Option<()>>();
                let tick_fut = async {
                    match ticker.as_mut() {
                        Some(t) => {
                            t.tick().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = hup_fut => {
                        tracing::info!("SIGHUP: reloading registry");
                        handle.reload(true).await;
                    }
                    _ = tick_fut => {
                        handle.reload(false).await;
                    }
                }
            }
        });
    }
}
