//! CPU time and memory from `/proc` (Linux), for a server measured from outside.

use std::io;
use std::time::Duration;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProcSample {
    /// User + system CPU time of all its threads, exited ones included.
    pub cpu_seconds: f64,
    /// Resident set size now.
    pub rss_bytes: u64,
    /// Peak resident set size since the process started (VmHWM).
    pub peak_rss_bytes: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the `(comm)`: state is field 3; utime and stime are 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("unexpected /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> io::Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| io::Error::other("unexpected /proc/PID/stat"))
    };
    let cpu_seconds = (ticks(11)? + ticks(12)?) / clock_ticks_per_second();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(ProcSample {
        cpu_seconds,
        rss_bytes: kib("VmRSS:"),
        peak_rss_bytes: kib("VmHWM:"),
    })
}

/// One reading of the whole machine's CPU counters (`/proc/stat`, all CPUs).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct MachineSample {
    /// CPU time spent running anything: user, nice, system, irq, softirq.
    pub busy_seconds: f64,
    /// Time the hypervisor ran something else while a CPU wanted to run.
    pub steal_seconds: f64,
}

/// Reads the first (`cpu`, all CPUs summed) line of `/proc/stat`.
pub fn machine_sample() -> io::Result<MachineSample> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| io::Error::other("no cpu line in /proc/stat"))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0.0);
    let hz = clock_ticks_per_second();
    // user nice system idle iowait irq softirq steal (guest time is inside user)
    Ok(MachineSample {
        busy_seconds: (at(0) + at(1) + at(2) + at(5) + at(6)) / hz,
        steal_seconds: at(7) / hz,
    })
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU time of the calling thread, in nanoseconds of precision (schedstat).
pub fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// The machine, for reports: CPU model, logical CPUs, kernel.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // All CPUs of the machine (not the affinity mask this process may run under).
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} logical CPUs, Linux {kernel}")
}

/// How often this thread lost its CPU for a while: a busy loop that notes
/// every gap of more than `threshold` between two clock reads. On a shared VM
/// such gaps (the hypervisor running someone else) bound the latency tail any
/// server can show.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stalls {
    pub seconds: f64,
    pub threshold_us: u64,
    pub count: u64,
    pub per_second: f64,
    pub stalled_ms: f64,
    pub longest_ms: f64,
}

pub fn stall_probe(duration: Duration, threshold: Duration) -> Stalls {
    let start = std::time::Instant::now();
    let mut last = start;
    let (mut count, mut stalled, mut longest) = (0u64, Duration::ZERO, Duration::ZERO);
    loop {
        let now = std::time::Instant::now();
        let gap = now - last;
        if gap > threshold {
            count += 1;
            stalled += gap;
            longest = longest.max(gap);
        }
        last = now;
        if now - start >= duration {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Stalls {
        seconds,
        threshold_us: threshold.as_micros() as u64,
        count,
        per_second: count as f64 / seconds,
        stalled_ms: stalled.as_secs_f64() * 1e3,
        longest_ms: longest.as_secs_f64() * 1e3,
    }
}
