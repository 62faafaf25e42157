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
//!
//! Fair sharing: every job belongs to a caller ([`JobOwner`]: the
//! authenticated caller, or the connection of an anonymous one) and each
//! caller has a queue of its own. Threads take jobs by deficit round robin
//! over the callers' queues, charged with the CPU time each job actually
//! took, so a caller with many (or heavy) jobs gets its share and no more
//! while others wait. Callers are served by standing first ([`Standing`]):
//! those whose recent calls succeeded before new ones, new ones before those
//! whose recent calls failed authentication; and `Suspect` work occupies at
//! most half the threads (at least one), so a caller in good standing finds
//! a thread free even while a flood of messages that do not authenticate
//! keeps the rest busy.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A job gave no result: it panicked, or the pool was shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a crypto task failed")]
pub struct PoolGone;

/// How a caller's jobs are ranked: every `Trusted` caller's queue is served
/// before any `New` one's, and those before any `Suspect` one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Standing {
    /// Recent calls succeeded, and few failed.
    Trusted = 0,
    /// No record yet.
    New = 1,
    /// Many recent calls failed authentication.
    Suspect = 2,
}

const CLASSES: usize = 3;

/// The caller a job is done for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobOwner {
    /// The fairness key: an authenticated caller's name, or a connection.
    pub key: Arc<str>,
    pub standing: Standing,
}

impl JobOwner {
    pub fn new(key: impl Into<Arc<str>>, standing: Standing) -> Self {
        JobOwner {
            key: key.into(),
            standing,
        }
    }

    /// Work done for nobody in particular (tests, benchmarks).
    pub fn anonymous() -> Self {
        JobOwner::new("-", Standing::New)
    }
}

/// CPU time a caller's queue is credited each time its turn comes round.
const QUANTUM: Duration = Duration::from_millis(2);

/// One caller's queue.
struct Flow {
    jobs: VecDeque<Job>,
    /// CPU time it may still use this round (negative: owed).
    deficit: i64,
    /// Jobs of it running now.
    running: usize,
    /// What its jobs usually take (ns), charged when one starts.
    usual: i64,
    /// Whether it is in its class's round.
    in_round: bool,
}

struct Sched {
    flows: HashMap<JobOwner, Flow>,
    rounds: [VecDeque<JobOwner>; CLASSES],
    queued: usize,
    idle: usize,
    closed: bool,
    /// Threads `Suspect` jobs may occupy at once: half of them (at least
    /// one), so a caller in good standing always finds a thread soon.
    suspect_threads: usize,
    suspect_running: usize,
}

impl Sched {
    fn push(&mut self, owner: JobOwner, job: Job) {
        let class = owner.standing as usize;
        let flow = self.flows.entry(owner.clone()).or_insert_with(|| Flow {
            jobs: VecDeque::new(),
            deficit: 0,
            running: 0,
            usual: quantum_ns() / 4,
            in_round: false,
        });
        flow.jobs.push_back(job);
        if !flow.in_round {
            flow.in_round = true;
            self.rounds[class].push_back(owner);
        }
        self.queued += 1;
    }

    /// The next job by standing, then deficit round robin: the caller at the
    /// front of the round is credited a quantum each time it comes round, and
    /// takes jobs while its credit lasts. A job is charged its caller's usual
    /// cost when it starts and corrected to what it took when it ends.
    fn pop(&mut self) -> Option<(JobOwner, Job)> {
        for class in 0..CLASSES {
            if class == Standing::Suspect as usize && self.suspect_running >= self.suspect_threads {
                continue;
            }
            let round = &mut self.rounds[class];
            if round.is_empty() {
                continue;
            }
            // When every queue in the round is owed, credit them all the
            // quanta the least indebted needs at once (one pass, not a spin).
            let best = round
                .iter()
                .filter_map(|o| self.flows.get(o))
                .map(|f| f.deficit)
                .max()
                .unwrap_or(1);
            if best <= 0 {
                let quanta = (-best) / quantum_ns() + 1;
                for o in round.iter() {
                    if let Some(f) = self.flows.get_mut(o) {
                        f.deficit += quanta * quantum_ns();
                    }
                }
            }
            while let Some(owner) = round.pop_front() {
                let Some(flow) = self.flows.get_mut(&owner) else {
                    continue;
                };
                if flow.jobs.is_empty() {
                    flow.in_round = false;
                    if flow.running == 0 {
                        self.flows.remove(&owner);
                    }
                    continue;
                }
                if flow.deficit <= 0 {
                    flow.deficit += quantum_ns();
                    round.push_back(owner);
                    continue;
                }
                let Some(job) = flow.jobs.pop_front() else {
                    continue;
                };
                flow.running += 1;
                flow.deficit -= flow.usual;
                self.queued -= 1;
                if owner.standing == Standing::Suspect {
                    self.suspect_running += 1;
                }
                if flow.jobs.is_empty() {
                    flow.in_round = false;
                } else if flow.deficit > 0 {
                    round.push_front(owner.clone());
                } else {
                    round.push_back(owner.clone());
                }
                return Some((owner, job));
            }
        }
        None
    }

    /// Corrects a finished job's charge to the CPU time it took.
    fn charge(&mut self, owner: &JobOwner, took: Duration) {
        if owner.standing == Standing::Suspect {
            self.suspect_running = self.suspect_running.saturating_sub(1);
        }
        if let Some(flow) = self.flows.get_mut(owner) {
            let took = i64::try_from(took.as_nanos()).unwrap_or(i64::MAX / 4);
            flow.running = flow.running.saturating_sub(1);
            flow.deficit -= took - flow.usual;
            flow.usual = (flow.usual * 3 + took) / 4;
            // A caller with nothing queued or running starts afresh next time.
            if flow.running == 0 && flow.jobs.is_empty() && !flow.in_round {
                self.flows.remove(owner);
            }
        }
    }
}

fn quantum_ns() -> i64 {
    QUANTUM.as_nanos() as i64
}

struct Shared {
    sched: Mutex<Sched>,
    ready: Condvar,
}

/// Stops the threads when the last pool handle goes.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        if let Ok(mut q) = self.0.sched.lock() {
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

thread_local! {
    /// The owner of the job this pool thread is running: jobs it spawns
    /// (fan-out chunks) join that caller's queue.
    static CURRENT: RefCell<Option<JobOwner>> = const { RefCell::new(None) };
}

impl CpuPool {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            sched: Mutex::new(Sched {
                flows: HashMap::new(),
                rounds: Default::default(),
                queued: 0,
                idle: 0,
                closed: false,
                suspect_threads: (threads / 2).max(1),
                suspect_running: 0,
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
            .sched
            .lock()
            .map(|q| q.idle.saturating_sub(q.queued))
            .unwrap_or(0)
    }

    /// Queues `f` for `owner`; the receiver gets its result. A job whose
    /// receiver is gone by the time a thread takes it (the caller gave up)
    /// does not run.
    pub fn spawn_for<T: Send + 'static>(
        &self,
        owner: &JobOwner,
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
        let wake = match shared.sched.lock() {
            Ok(mut q) => {
                q.push(owner.clone(), job);
                q.idle > 0
            }
            Err(_) => false,
        };
        if wake {
            shared.ready.notify_one();
        }
        rx
    }

    /// Queues `f` for the caller whose job is running on this thread (a
    /// fan-out chunk), or for nobody in particular.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let owner = CURRENT
            .with(|c| c.borrow().clone())
            .unwrap_or_else(JobOwner::anonymous);
        self.spawn_for(&owner, f)
    }

    /// Runs `f` on the pool for `owner` and waits for it without blocking the reactor.
    pub async fn run_for<T: Send + 'static>(
        &self,
        owner: &JobOwner,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolGone> {
        self.spawn_for(owner, f).await.map_err(|_| PoolGone)
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
        let (owner, job) = {
            let Ok(mut q) = shared.sched.lock() else {
                return;
            };
            loop {
                if let Some(next) = q.pop() {
                    break next;
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
        CURRENT.with(|c| *c.borrow_mut() = Some(owner.clone()));
        let started = Instant::now();
        // A panicking job drops its sender (the caller sees an internal
        // error); the thread lives on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
        let took = started.elapsed();
        CURRENT.with(|c| *c.borrow_mut() = None);
        let more = match shared.sched.lock() {
            Ok(mut q) => {
                q.charge(&owner, took);
                q.queued > 0 && q.idle > 0
            }
            Err(_) => false,
        };
        // A job held back for its class's share may run now.
        if more {
            shared.ready.notify_one();
        }
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

    /// Blocks the pool's one thread until the gate opens, so jobs queue up.
    fn blocked(pool: &CpuPool) -> (std::sync::mpsc::Sender<()>, oneshot::Receiver<()>) {
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let blocker = pool.spawn(move || {
            let _ = gate_rx.recv();
        });
        std::thread::sleep(Duration::from_millis(20));
        (gate_tx, blocker)
    }

    /// One caller with a deep queue does not make another wait behind all
    /// of it: their jobs alternate.
    #[tokio::test]
    async fn callers_take_turns_whatever_their_queue_depth() {
        let pool = CpuPool::new(1);
        let (gate, blocker) = blocked(&pool);
        let order = Arc::new(Mutex::new(Vec::new()));
        let flood = JobOwner::new("flood", Standing::New);
        let calm = JobOwner::new("calm", Standing::New);
        let mut rxs = Vec::new();
        for i in 0..20 {
            let order = order.clone();
            rxs.push(pool.spawn_for(&flood, move || {
                std::thread::sleep(Duration::from_millis(1));
                order.lock().unwrap().push(format!("f{i}"));
            }));
        }
        for i in 0..3 {
            let order = order.clone();
            rxs.push(pool.spawn_for(&calm, move || {
                std::thread::sleep(Duration::from_millis(1));
                order.lock().unwrap().push(format!("c{i}"));
            }));
        }
        gate.send(()).unwrap();
        blocker.await.unwrap();
        for rx in rxs {
            rx.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let last_calm = order.iter().rposition(|s| s.starts_with('c')).unwrap();
        assert!(
            last_calm < 10,
            "the calm caller's 3 jobs waited behind the flood: {order:?}"
        );
    }

    /// Suspect callers get at most half the threads: the other half stays
    /// free for callers in good standing.
    #[tokio::test]
    async fn suspect_work_leaves_threads_free() {
        let pool = CpuPool::new(2);
        let suspect = JobOwner::new("suspect", Standing::Suspect);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let rxs: Vec<_> = (0..8)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                pool.spawn_for(&suspect, move || {
                    let n = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        // A trusted caller's job runs at once on the free thread.
        let t = Instant::now();
        let trusted = JobOwner::new("trusted", Standing::Trusted);
        pool.run_for(&trusted, || ()).await.unwrap();
        assert!(t.elapsed() < Duration::from_millis(20), "{:?}", t.elapsed());
        for rx in rxs {
            rx.await.unwrap();
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// Callers in good standing are served before new ones, and new ones
    /// before suspect ones.
    #[tokio::test]
    async fn standing_orders_the_queues() {
        let pool = CpuPool::new(1);
        let (gate, blocker) = blocked(&pool);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut rxs = Vec::new();
        for (name, standing) in [
            ("suspect", Standing::Suspect),
            ("new", Standing::New),
            ("trusted", Standing::Trusted),
        ] {
            for _ in 0..3 {
                let order = order.clone();
                let owner = JobOwner::new(name, standing);
                rxs.push(pool.spawn_for(&owner, move || order.lock().unwrap().push(name)));
            }
        }
        gate.send(()).unwrap();
        blocker.await.unwrap();
        for rx in rxs {
            rx.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            [
                "trusted", "trusted", "trusted", "new", "new", "new", "suspect", "suspect",
                "suspect"
            ]
        );
    }

    /// Heavier jobs cost their caller more turns: CPU time is what is shared.
    #[tokio::test]
    async fn heavy_jobs_are_charged_for_their_time() {
        let pool = CpuPool::new(1);
        let (gate, blocker) = blocked(&pool);
        // (caller, how long the job took)
        let done = Arc::new(Mutex::new(Vec::<(&str, Duration)>::new()));
        let heavy = JobOwner::new("heavy", Standing::New);
        let light = JobOwner::new("light", Standing::New);
        let mut rxs = Vec::new();
        let job = |name: &'static str, length: Duration| {
            let d = done.clone();
            move || {
                let t = Instant::now();
                std::thread::sleep(length);
                d.lock().unwrap().push((name, t.elapsed()));
            }
        };
        for _ in 0..8 {
            rxs.push(pool.spawn_for(&heavy, job("h", Duration::from_millis(10))));
        }
        for _ in 0..30 {
            rxs.push(pool.spawn_for(&light, job("l", Duration::from_micros(500))));
        }
        gate.send(()).unwrap();
        blocker.await.unwrap();
        for rx in rxs {
            rx.await.unwrap();
        }
        let done = done.lock().unwrap().clone();
        // Until the light caller is done, the heavy one has had about as much
        // time as the light one (give or take its job in progress), not a
        // turn per light job.
        let last_light = done.iter().rposition(|(s, _)| *s == "l").unwrap();
        let time = |who: &str| -> Duration {
            done[..=last_light]
                .iter()
                .filter(|(s, _)| *s == who)
                .map(|(_, t)| *t)
                .sum()
        };
        let longest_heavy = done
            .iter()
            .filter(|(s, _)| *s == "h")
            .map(|(_, t)| *t)
            .max()
            .unwrap();
        assert!(
            time("h") <= time("l") + longest_heavy * 2,
            "heavy {:?}, light {:?}: {done:?}",
            time("h"),
            time("l")
        );
        assert!(
            done[..=last_light]
                .iter()
                .filter(|(s, _)| *s == "h")
                .count()
                < 8,
            "the heavy caller ran all its jobs first: {done:?}"
        );
    }
}
