//! When to try again: exponential backoff with equal jitter, and `Retry-After`.
//!
//! Whether an error is worth retrying is [`crate::Error::is_transient`]; this module only
//! decides how long to wait. The scheduler keeps the timers, so a waiting job holds no
//! worker and no connection.
//!
//! Equal jitter (half the step fixed, half drawn) rather than full jitter: full jitter
//! can draw three waits of nearly nothing, and a server restarting for 1.5 s then
//! outlasts all of a job's retries. With the defaults (1 s base, as curl starts, and 3
//! retries) the waits are 0.5–1, 1–2 and 2–4 s: every job keeps trying for at least
//! 3.5 s, and jobs that failed together still spread over a window as wide again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Config;

/// A small xorshift generator: jitter needs spread, not cryptography.
pub(crate) struct Jitter(pub(crate) u64);

impl Jitter {
    pub(crate) fn seeded() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(1);
        Jitter((nanos as u64) | 1)
    }

    /// A uniform value in `[0, 1)`.
    fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The wait before the attempt after `attempt` (1 for the first): the server's
/// `Retry-After` when given, else a uniform draw in `[step/2, step]` with
/// `step = base·2^(attempt-1)`; both capped by `retry_max_delay`.
pub(crate) fn delay(
    cfg: &Config,
    attempt: u32,
    retry_after: Option<Duration>,
    jitter: &mut Jitter,
) -> Duration {
    if let Some(ra) = retry_after {
        return ra.min(cfg.retry_max_delay);
    }
    let exp = 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
    let ceiling = (cfg.retry_base_delay.as_secs_f64() * exp).min(cfg.retry_max_delay.as_secs_f64());
    Duration::from_secs_f64(ceiling * (1.0 + jitter.next_unit()) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = Config {
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(1),
            ..Config::default()
        };
        let mut j = Jitter::seeded();
        for attempt in 1..20 {
            let d = delay(&cfg, attempt, None, &mut j);
            let ceiling = (0.1 * 2f64.powi(attempt as i32 - 1)).min(1.0);
            assert!(d.as_secs_f64() <= ceiling, "attempt {attempt}: {d:?}");
            assert!(d.as_secs_f64() >= ceiling / 2.0, "attempt {attempt}: {d:?}");
        }
        assert_eq!(
            delay(&cfg, 1, Some(Duration::from_secs(5)), &mut j),
            Duration::from_secs(1)
        );
    }

    /// The default schedule outlasts a server restart of a few seconds, whatever the
    /// draws: with full jitter three retries could all come within a few milliseconds.
    #[test]
    fn default_retries_wait_at_least_three_and_a_half_seconds_in_total() {
        let cfg = Config::default();
        assert_eq!(cfg.retries, 3);
        assert_eq!(cfg.retry_base_delay, Duration::from_secs(1));
        let mut j = Jitter::seeded();
        let mut shortest = Duration::MAX;
        let mut longest = Duration::ZERO;
        for _ in 0..10_000 {
            let window: Duration = (1..=cfg.retries)
                .map(|attempt| delay(&cfg, attempt, None, &mut j))
                .sum();
            shortest = shortest.min(window);
            longest = longest.max(window);
        }
        assert!(shortest >= Duration::from_millis(3500), "{shortest:?}");
        assert!(longest <= Duration::from_secs(7), "{longest:?}");
        // Still jittered: jobs that failed together do not all come back at once.
        assert!(
            longest - shortest >= Duration::from_secs(2),
            "{shortest:?}..{longest:?}"
        );
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let cfg = Config::default();
        let mut j = Jitter::seeded();
        let ra = Some(Duration::from_secs(7));
        assert_eq!(delay(&cfg, 1, ra, &mut j), Duration::from_secs(7));
        let ra = Some(Duration::from_secs(600));
        assert_eq!(delay(&cfg, 1, ra, &mut j), cfg.retry_max_delay);
    }
}
