//! Log lines leave the server through a buffer that a thread of its own writes out.
//!
//! Why: every request writes an audit line, and writing it to stderr from the
//! async reactor costs a system call per request there (1 of the 5 a fan-out-1
//! request makes) and blocks the reactor, and every request with it, whenever the
//! reader of the pipe (a container runtime) falls behind. Here a line is appended
//! to memory; the writer thread wakes at most once per [`GATHER`], takes
//! everything gathered and writes it in one call. Nothing is dropped: once
//! [`MAX_PENDING`] bytes wait, a logging thread waits for the writer, as it
//! would have waited for the pipe. Lines still buffered when the process is
//! killed outright (not on SIGTERM) are lost, at most one gathering's worth.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer gathers lines after the first one arrives.
pub const GATHER: Duration = Duration::from_millis(10);
/// Bytes that may wait before a logging thread waits for the writer.
pub const MAX_PENDING: usize = 1 << 20;

type Sink = Box<dyn Write + Send>;

struct State {
    pending: Vec<u8>,
    /// The writer thread is waiting for a first line (so a new one must wake it).
    writer_idle: bool,
    /// No writer thread any more: lines go straight to the sink.
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread: a first line, or shutdown.
    line_ready: Condvar,
    /// Wakes logging threads waiting for room.
    drained: Condvar,
    sink: Mutex<Sink>,
    max_pending: usize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the sink while `state` is still held, so that bytes reach the sink
    /// in the order they were logged, whoever writes them.
    fn sink(&self, state: MutexGuard<'_, State>) -> MutexGuard<'_, Sink> {
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        drop(state);
        sink
    }
}

fn write_out(sink: &mut Sink, bytes: &[u8]) {
    // A log line that cannot be written has nowhere else to go.
    let _ = sink.write_all(bytes);
    let _ = sink.flush();
}

/// The `MakeWriter` for the log layer; clones share one buffer.
#[derive(Clone)]
pub struct BufferedLog {
    shared: Arc<Shared>,
}

/// Stops the writer thread once everything buffered is written.
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Logs to stderr, buffered as above (for the server) or line by line (for
/// short-lived commands, which have no shutdown to flush at), and the handle
/// that flushes the buffer.
pub fn stderr(buffered: bool) -> (BufferedLog, Flusher) {
    with_sink(
        Box::new(io::stderr()),
        MAX_PENDING,
        buffered.then_some(GATHER),
    )
}

/// A log in front of `sink`; without `gather`, no writer thread and each line
/// written at once.
fn with_sink(sink: Sink, max_pending: usize, gather: Option<Duration>) -> (BufferedLog, Flusher) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            pending: Vec::new(),
            writer_idle: false,
            // Lines are buffered only while a writer thread is there to write them.
            closed: gather.is_none(),
        }),
        line_ready: Condvar::new(),
        drained: Condvar::new(),
        sink: Mutex::new(sink),
        max_pending,
    });
    let thread = gather.and_then(|gather| {
        let writer = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("reseal-log".into())
            .spawn(move || write_loop(&writer, gather));
        match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                shared.state().closed = true;
                eprintln!("could not start the log writer thread ({e}); logging unbuffered");
                None
            }
        }
    });
    (
        BufferedLog {
            shared: shared.clone(),
        },
        Flusher { shared, thread },
    )
}

fn write_loop(shared: &Shared, gather: Duration) {
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let mut state = shared.state();
        while state.pending.is_empty() && !state.closed {
            state.writer_idle = true;
            state = shared
                .line_ready
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.writer_idle = false;
        if !state.closed && state.pending.len() < shared.max_pending {
            drop(state);
            std::thread::sleep(gather);
            state = shared.state();
        }
        std::mem::swap(&mut state.pending, &mut out);
        if state.closed && out.is_empty() {
            return;
        }
        let mut sink = shared.sink(state);
        shared.drained.notify_all();
        write_out(&mut sink, &out);
        drop(sink);
        // Keep a normal buffer for the next round, not one grown by a burst.
        if out.capacity() > 4 * 1024 * 1024 {
            out = Vec::with_capacity(64 * 1024);
        } else {
            out.clear();
        }
    }
}

impl Flusher {
    /// Writes out everything buffered and stops the writer thread; later lines
    /// are written directly. Blocking.
    pub fn finish(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.state().closed = true;
        self.shared.line_ready.notify_one();
        let _ = thread.join();
        self.shared.drained.notify_all();
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One log event's writer (the log layer formats an event, then writes it whole).
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let shared = self.shared;
        let mut state = shared.state();
        // The writer is busy while anything is pending, so it will drain this.
        while !state.closed && state.pending.len() >= shared.max_pending {
            state = shared
                .drained
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        if state.closed {
            // Anything still buffered was logged before this line.
            let earlier = std::mem::take(&mut state.pending);
            let mut sink = shared.sink(state);
            write_out(&mut sink, &earlier);
            write_out(&mut sink, buf);
            return Ok(buf.len());
        }
        state.pending.extend_from_slice(buf);
        if state.writer_idle {
            state.writer_idle = false;
            shared.line_ready.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BufferedLog {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    /// A sink that records what reached it, in order, and can be made slow.
    #[derive(Clone, Default)]
    struct Recorder {
        written: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        delay: Duration,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::thread::sleep(self.delay);
            *self.writes.lock().unwrap() += 1;
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("line {i:05}\n")).collect()
    }

    #[test]
    fn every_line_arrives_in_order_and_in_few_writes() {
        let sink = Recorder::default();
        let (log, mut flusher) = with_sink(Box::new(sink.clone()), MAX_PENDING, Some(GATHER));
        let expected = lines(2000);
        for line in &expected {
            log.make_writer().write_all(line.as_bytes()).unwrap();
        }
        flusher.finish();
        let written = String::from_utf8(sink.written.lock().unwrap().clone()).unwrap();
        assert_eq!(written, expected.concat());
        // One write per gathering, not one per line.
        let writes = *sink.writes.lock().unwrap();
        assert!(writes <= 200, "{writes} writes for 2000 lines");
    }

    #[test]
    fn a_slow_sink_holds_writers_back_and_loses_nothing_across_a_shutdown() {
        let sink = Recorder {
            delay: Duration::from_millis(2),
            ..Recorder::default()
        };
        // Room for about 10 lines: writers must wait for the sink.
        let (log, mut flusher) =
            with_sink(Box::new(sink.clone()), 100, Some(Duration::from_millis(1)));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let line = format!("t{t} {i:04}\n");
                        log.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        // Shut down while they log: what comes after goes straight to the
        // sink, and must not overtake what was buffered before.
        std::thread::sleep(Duration::from_millis(20));
        flusher.finish();
        for t in threads {
            t.join().unwrap();
        }
        let written = String::from_utf8(sink.written.lock().unwrap().clone()).unwrap();
        for t in 0..4 {
            let own: Vec<&str> = written
                .lines()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .collect();
            let expected: Vec<String> = (0..200).map(|i| format!("t{t} {i:04}")).collect();
            assert_eq!(own, expected, "thread {t}'s lines");
        }
    }

    #[test]
    fn lines_logged_after_a_shutdown_do_not_overtake_buffered_ones() {
        let sink = Recorder::default();
        // A long gathering: the shutdown comes while lines wait in the buffer.
        let (log, mut flusher) = with_sink(
            Box::new(sink.clone()),
            MAX_PENDING,
            Some(Duration::from_millis(50)),
        );
        let logger = std::thread::spawn(move || {
            for i in 0..300 {
                let line = format!("{i:04}\n");
                log.make_writer().write_all(line.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        flusher.finish();
        logger.join().unwrap();
        let written = String::from_utf8(sink.written.lock().unwrap().clone()).unwrap();
        let expected: String = (0..300).map(|i| format!("{i:04}\n")).collect();
        assert_eq!(written, expected);
    }

    #[test]
    fn a_line_is_written_without_a_shutdown_and_after_one_directly() {
        let sink = Recorder::default();
        let (log, mut flusher) = with_sink(Box::new(sink.clone()), MAX_PENDING, Some(GATHER));
        log.make_writer().write_all(b"first\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.written.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line never left");
            std::thread::sleep(Duration::from_millis(1));
        }
        flusher.finish();
        log.make_writer().write_all(b"late\n").unwrap();
        assert_eq!(&*sink.written.lock().unwrap(), b"first\nlate\n");
    }
}
