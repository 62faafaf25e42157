//! The CPU pool: a fixed set of threads (`server.worker_threads`, one per core by default) that run
//! the crypto, so the async reactor only moves bytes.
//!
//! Why not `spawn_blocking` per step: every hand-off between the reactor and
//! a blocking thread costs a wake-up and a context switch (BENCHMARKS.md has
//! the measurement at fan-out 100, when each envelope was its own task).
//! So a request is one job here, from parsing to the first envelopes; it
//! splits its fan-out across threads only when some are idle, which buys
//! latency at low load and costs nothing at saturation. Jobs are queued, not
//! refused: the server's concurrency limit bounds the queue.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A job gave no result: it panicked, or the pool was shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a crypto task failed")]
pub struct PoolGone;

struct Queue {
    jobs: VecDeque<Job>,
    idle: usize,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// Stops the threads when the last pool handle goes.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        if let Ok(mut q) = self.0.queue.lock() {
            q.closed = true;
        }
        self.0.ready.notify_all();
    }
}

/// A handle to the pool; clones share it.
#[derive(Clone)]
pub struct CpuPool {
    handle: Arc<Handle>,
}

impl CpuPool {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                idle: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        });
        for i in 0..threads {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("reseal-crypto-{i}"))
                .spawn(move || worker(&shared));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a crypto thread");
            }
        }
        CpuPool {
            handle: Arc::new(Handle(shared)),
        }
    }

    /// Threads waiting for work right now (a hint for splitting work).
    pub fn idle_threads(&self) -> usize {
        self.handle
            .0
            .queue
            .lock()
            .map(|q| q.idle.saturating_sub(q.jobs.len()))
            .unwrap_or(0)
    }

    /// Queues `f`; the receiver gets its result. A job whose receiver is gone
    /// by the time a thread takes it (the caller gave up) does not run.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(f());
        });
        let shared = &self.handle.0;
        let wake = match shared.queue.lock() {
            Ok(mut q) => {
                q.jobs.push_back(job);
                q.idle > 0
            }
            Err(_) => false,
        };
        if wake {
            shared.ready.notify_one();
        }
        rx
    }

    /// Runs `f` on the pool and waits for it without blocking the reactor.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolGone> {
        self.spawn(f).await.map_err(|_| PoolGone)
    }
}

fn worker(shared: &Shared) {
    loop {
        let job = {
            let Ok(mut q) = shared.queue.lock() else {
                return;
            };
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                if q.closed {
                    return;
                }
                q.idle += 1;
                q = match shared.ready.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
                q.idle -= 1;
            }
        };
        // A panicking job drops its sender (the caller sees an internal
        // error); the thread lives on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_survives_a_panic() {
        let pool = CpuPool::new(2);
        assert_eq!(pool.run(|| 2 + 2).await.unwrap(), 4);
        let failed = pool.run(|| -> u8 { panic!("boom") }).await;
        assert!(failed.is_err());
        let all: Vec<_> = (0..50).map(|i| pool.spawn(move || i * 2)).collect();
        for (i, rx) in all.into_iter().enumerate() {
            assert_eq!(rx.await.unwrap(), i * 2);
        }
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_does_not_run() {
        let pool = CpuPool::new(1);
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let blocker = pool.spawn(move || gate_rx.recv().ok());
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        drop(pool.spawn(move || flag.store(true, std::sync::atomic::Ordering::SeqCst)));
        gate_tx.send(()).unwrap();
        blocker.await.unwrap();
        assert_eq!(pool.run(|| 1).await.unwrap(), 1);
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }
}
