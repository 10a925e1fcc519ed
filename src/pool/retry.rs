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

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
/// A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses the IMF-fixdate form, `Sun, 06 Nov 1994 08:49:37 GMT`, the only form senders
/// may generate.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split_whitespace().collect();
    if parts.len() != 5 || parts[4] != "GMT" {
        return None;
    }
    let day: u64 = parts[0].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[1])? as u64
        + 1;
    let year: u64 = parts[2].parse().ok()?;
    let hms: Vec<u64> = parts[3]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    // RFC 9110 writes the year in four digits; a larger one would overflow the seconds.
    if hms.len() != 3
        || !(1..=31).contains(&day)
        || !(1970..=9999).contains(&year)
        || hms[0] > 23
        || hms[1] > 59
        || hms[2] > 60
    {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let secs = days as u64 * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Formats a time as an IMF-fixdate, for `If-Modified-Since` and tests.
pub fn format_http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    let s = secs % 86_400;
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

// Howard Hinnant's days-from-civil algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + if m <= 2 { 1 } else { 0 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_both_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:39 GMT", now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn http_dates_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(parse_http_date(&format_http_date(t)), Some(t));
        assert_eq!(
            format_http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn a_retry_after_date_with_a_huge_year_is_ignored_not_a_panic() {
        // Found by the `headers` fuzz target: the year's seconds overflowed u64.
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        for year in ["999999999999", "18446744073709551615", "10000"] {
            let date = format!("Sun, 06 Nov {year} 08:49:37 GMT");
            assert_eq!(parse_http_date(&date), None, "{date}");
            assert_eq!(parse_retry_after(&date, now), None, "{date}");
        }
        let last = "Fri, 31 Dec 9999 23:59:59 GMT";
        assert_eq!(format_http_date(parse_http_date(last).unwrap()), last);
    }

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
