//! When the open loop's calls go out: the arrival process and the timer that
//! releases each call.
//!
//! Why a timer of its own: tokio's timer wheel has millisecond ticks, so every
//! call due within one millisecond went out at the same tick. At 2,300 calls/s
//! that turned "fixed intervals" into bursts of two or three calls each
//! millisecond (in one trace, 59 % of the gaps between consecutive calls were
//! under 50 µs), and the third call of a burst waited for a whole job on a
//! two-thread server. A `timerfd` is a high-resolution kernel timer that the
//! runtime polls like a socket: each caller sleeps on its own, to the
//! microsecond, at the cost of one wake-up per call (which a uniform schedule
//! needs anyway).

use std::time::Duration;

/// How the open loop's due times are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Call n is due at n / rate: what a pacing client sends.
    Uniform,
    /// Exponential gaps with mean 1 / rate (seeded, so runs repeat): what many
    /// independent clients send. Burstier, so a longer tail at the same rate.
    Poisson,
}

impl std::str::FromStr for Arrivals {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(Arrivals::Uniform),
            "poisson" => Ok(Arrivals::Poisson),
            other => Err(format!("unknown arrivals `{other}` (uniform or poisson)")),
        }
    }
}

/// What releases a call at its due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Timer {
    /// A `timerfd` per caller (Linux; elsewhere the same as `tokio`).
    Precise,
    /// tokio's timer: millisecond ticks, so calls leave in bursts at high rates.
    Tokio,
}

impl std::str::FromStr for Timer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "precise" => Ok(Timer::Precise),
            "tokio" => Ok(Timer::Tokio),
            other => Err(format!("unknown timer `{other}` (precise or tokio)")),
        }
    }
}

/// Due offsets from the schedule's start, call by call.
pub enum DueTimes {
    Uniform {
        rate: f64,
    },
    /// Precomputed up to the schedule's deadline; calls past the end are not issued.
    Listed(Vec<Duration>),
}

impl DueTimes {
    /// Due times for `arrivals` at `rate` calls/s, covering `span` from the start.
    pub fn new(arrivals: Arrivals, rate: f64, span: Duration) -> Self {
        match arrivals {
            Arrivals::Uniform => DueTimes::Uniform { rate },
            Arrivals::Poisson => {
                let mut rng = SplitMix64(0x5EA1_5EA1_5EA1_5EA1);
                let (mut t, end) = (0.0f64, span.as_secs_f64());
                let mut due = Vec::new();
                while t < end {
                    due.push(Duration::from_secs_f64(t));
                    // Inverse transform: -ln(U) / rate, with U in (0, 1].
                    let u = 1.0 - rng.next_f64();
                    t += -u.ln() / rate;
                }
                DueTimes::Listed(due)
            }
        }
    }

    /// How many calls are due before `t` (the first call is due at zero).
    pub fn count_before(&self, t: Duration) -> u64 {
        match self {
            DueTimes::Uniform { rate } => (t.as_secs_f64() * rate).ceil() as u64,
            DueTimes::Listed(due) => due.partition_point(|d| *d < t) as u64,
        }
    }

    /// When call `n` is due, from the start; None: past the schedule.
    pub fn get(&self, n: u64) -> Option<Duration> {
        match self {
            DueTimes::Uniform { rate } => Some(Duration::from_secs_f64(n as f64 / rate)),
            DueTimes::Listed(due) => usize::try_from(n).ok().and_then(|n| due.get(n).copied()),
        }
    }
}

/// A small, fixed-seed generator: the schedule must repeat from run to run, and
/// its quality needs are modest (exponential gaps for a load generator).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One caller's sleeper.
pub struct Sleeper {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl Sleeper {
    /// A sleeper on `timer`; falls back to tokio's timer when a `timerfd`
    /// cannot be had. Must be called inside the runtime.
    pub fn new(timer: Timer) -> Self {
        #[cfg(target_os = "linux")]
        {
            let fd = match timer {
                Timer::Precise => linux::timerfd()
                    .map_err(|e| tracing::warn!(error = %e, "no timerfd; tokio's timer releases the calls"))
                    .ok(),
                Timer::Tokio => None,
            };
            Sleeper { fd }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = timer;
            Sleeper {}
        }
    }

    /// Whether this sleeper uses the high-resolution timer.
    pub fn is_precise(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            self.fd.is_some()
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    }

    /// Returns at `at` (or at once if it has passed).
    pub async fn sleep_until(&self, at: tokio::time::Instant) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            if linux::sleep_until(fd, at).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    pub fn timerfd() -> io::Result<AsyncFd<OwnedFd>> {
        // SAFETY: timerfd_create takes no pointers; a non-negative result is a
        // new descriptor that nothing else owns.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an OwnedFd stays open, and names the same descriptor, for as
        // long as it lives, and the AsyncFd owns it.
        Ok(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?)
    }

    pub async fn sleep_until(fd: &AsyncFd<OwnedFd>, at: tokio::time::Instant) -> io::Result<()> {
        let now = tokio::time::Instant::now();
        if at <= now {
            return Ok(());
        }
        // tokio's Instant is CLOCK_MONOTONIC on Linux; aim by the difference.
        let target = super::monotonic_ns() as u128 + (at - now).as_nanos();
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (target / 1_000_000_000) as libc::time_t,
                tv_nsec: (target % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: a valid descriptor and a valid itimerspec; no old value asked for.
        let r = unsafe {
            libc::timerfd_settime(
                fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut guard = fd.readable().await?;
            let read = guard.try_io(|fd| {
                let mut expirations = 0u64;
                // SAFETY: reads 8 bytes into a u64 that lives across the call.
                let n = unsafe {
                    libc::read(
                        fd.as_raw_fd(),
                        (&mut expirations as *mut u64).cast(),
                        std::mem::size_of::<u64>(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match read {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (what `Instant` reads on Linux).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_due_times_have_the_rate_and_repeat() {
        let a = DueTimes::new(Arrivals::Poisson, 1000.0, Duration::from_secs(10));
        let b = DueTimes::new(Arrivals::Poisson, 1000.0, Duration::from_secs(10));
        let DueTimes::Listed(list) = &a else {
            panic!("poisson is listed")
        };
        // 10,000 expected; a Poisson count's standard deviation is 100.
        assert!((9_500..10_500).contains(&list.len()), "{}", list.len());
        assert!(list.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(a.get(1234), b.get(1234));
        assert_eq!(a.get(list.len() as u64), None);
        let before_one_second = a.count_before(Duration::from_secs(1));
        assert!(a.get(before_one_second).unwrap() >= Duration::from_secs(1));
        assert!(a.get(before_one_second - 1).unwrap() < Duration::from_secs(1));
        // Exponential gaps: about 63 % shorter than the mean (1 - 1/e), where
        // uniform gaps would give 0 % or 100 %.
        let short = list
            .windows(2)
            .filter(|w| w[1] - w[0] < Duration::from_millis(1))
            .count() as f64
            / (list.len() - 1) as f64;
        assert!((0.58..0.68).contains(&short), "{short}");
    }

    #[test]
    fn uniform_due_times_are_fixed_intervals() {
        let d = DueTimes::new(Arrivals::Uniform, 400.0, Duration::from_secs(1));
        assert_eq!(d.get(0), Some(Duration::ZERO));
        assert_eq!(d.get(4), Some(Duration::from_millis(10)));
        // Due at 0, 2.5, 5, 7.5 ms: four before 10 ms; 400 before a second.
        assert_eq!(d.count_before(Duration::from_millis(10)), 4);
        assert_eq!(d.count_before(Duration::from_secs(1)), 400);
    }

    /// The point of the precise timer: calls due 250 µs apart leave apart, not
    /// in millisecond bursts. Robust to a busy machine: only the median gap is
    /// checked, and tokio's timer would give a median of 0 or 1 ms.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn precise_sleeps_release_calls_between_milliseconds() {
        let sleeper = Sleeper::new(Timer::Precise);
        assert!(sleeper.is_precise());
        let start = tokio::time::Instant::now() + Duration::from_millis(5);
        let mut released = Vec::new();
        for n in 0..200u32 {
            sleeper
                .sleep_until(start + Duration::from_micros(250) * n)
                .await;
            released.push(tokio::time::Instant::now());
        }
        let mut gaps: Vec<Duration> = released.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort();
        let median = gaps[gaps.len() / 2];
        assert!(
            median > Duration::from_micros(100) && median < Duration::from_micros(900),
            "median gap {median:?}"
        );
        // A time already past returns at once.
        sleeper.sleep_until(start).await;
    }
}
