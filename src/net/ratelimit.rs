//! Byte and request rates: one overall byte rate shared by every worker, and the
//! request budgets the scheduler starts jobs by ([`RequestBucket`]).
//!
//! A token bucket behind a mutex: a worker takes tokens for the bytes it just read and,
//! when the bucket is in debt, sleeps until the debt is paid. The debt is shared, so N
//! workers together never exceed the rate, however many there are. The bucket holds at
//! most 50 ms worth of tokens and workers read at most that much at a time, so the flow is
//! smooth (about twenty small reads a second) rather than a burst followed by a pause.
//! The lock is held for a few arithmetic operations, never while sleeping.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shares `bytes_per_sec` among all the threads that read through it.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens available; negative when readers are in debt.
    tokens: f64,
    refilled: Instant,
}

/// How much time the bucket holds: the most a reader gets without waiting.
const BURST: f64 = 0.05;
/// The smallest read, so very low rates still make progress in whole packets.
const MIN_CHUNK: usize = 512;

impl RateLimiter {
    /// A limiter for `bytes_per_sec` (at least 1), starting with a full 50 ms bucket.
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = rate * BURST;
        RateLimiter {
            rate,
            burst,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                refilled: Instant::now(),
            }),
        }
    }

    /// How many bytes to read at once, given a buffer of `buf` bytes: 50 ms worth, at
    /// least 512 bytes, at most `buf`.
    pub fn chunk(&self, buf: usize) -> usize {
        (self.burst as usize).max(MIN_CHUNK).min(buf)
    }

    /// Takes `n` bytes' worth of tokens and returns how long the caller must sleep before
    /// reading again (zero while the bucket has tokens).
    pub fn take(&self, n: u64) -> Duration {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(b.refilled).as_secs_f64();
        b.refilled = now;
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst) - n as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.rate)
        }
    }
}

/// A request budget: `rate` requests per second, one at a time, with no burst. Owned by
/// the scheduler, which starts a job only once a token is there and otherwise keeps it
/// queued (no worker waits, no connection is held for it) until [`RequestBucket::take`]
/// says when.
#[derive(Debug, Clone)]
pub(crate) struct RequestBucket {
    rate: f64,
    /// Tokens available, from one: the first request goes at once, the next after
    /// `1 / rate`, so there is no burst at the start (see `refill` for the cap).
    tokens: f64,
    refilled: Instant,
}

/// How much lateness a request bucket makes up for, in seconds of its rate.
const CATCH_UP: f64 = 0.025;

/// The slowest request rate a bucket runs at: one request every 1000 s.
const MIN_REQUEST_RATE: f64 = 0.001;

impl RequestBucket {
    /// A bucket for `per_sec` requests per second (at least [`MIN_REQUEST_RATE`]),
    /// holding one token.
    pub(crate) fn new(per_sec: f64, now: Instant) -> RequestBucket {
        RequestBucket {
            rate: per_sec.max(MIN_REQUEST_RATE),
            tokens: 1.0,
            refilled: now,
        }
    }

    /// The rate, in requests per second.
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    /// Changes the rate from `now` on; tokens gathered so far are kept.
    pub(crate) fn set_rate(&mut self, per_sec: f64, now: Instant) {
        self.refill(now);
        self.rate = per_sec.max(MIN_REQUEST_RATE);
    }

    /// Gathers tokens up to one, and a little more (at most 25 ms worth, at most one
    /// more token) so that a start made late by a busy machine is made up for by the next
    /// instead of lost: the rate holds over a run, and no more than two requests ever
    /// start at once.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        let cap = 1.0 + (self.rate * CATCH_UP).min(1.0);
        self.tokens = (self.tokens + elapsed * self.rate).min(cap);
        self.refilled = now;
    }

    /// When a token will be there: `None` if one is there now (it is not taken).
    pub(crate) fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        if self.tokens >= 1.0 - 1e-9 {
            None
        } else {
            Some(now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Takes the token [`RequestBucket::ready_at`] said is there.
    pub(crate) fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limiter_reads_50_ms_at_a_time_and_makes_a_whole_second_wait() {
        let limiter = RateLimiter::new(1 << 20); // 1 MiB/s
        assert_eq!(limiter.chunk(256 * 1024), 52_428); // read at most 50 ms worth at a time
        let wait = limiter.take(1 << 20); // a whole second's worth, all at once
        assert!(wait > std::time::Duration::from_millis(900));
    }

    #[test]
    fn a_request_bucket_has_no_burst_and_changes_rate_in_place() {
        let t0 = Instant::now();
        let mut b = RequestBucket::new(10.0, t0);
        assert_eq!(b.ready_at(t0), None);
        b.take(t0);
        let next = b.ready_at(t0).expect("empty after one");
        assert!((next - t0).as_secs_f64() > 0.099, "{:?}", next - t0);
        // A long idle spell gathers at most 1 + 25 ms worth of tokens, not a burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.ready_at(later), None);
        b.take(later);
        // A quarter token is kept to make up for a late start: the next comes 75 ms on.
        let next = b.ready_at(later).unwrap();
        assert!(
            ((next - later).as_secs_f64() - 0.075).abs() < 1e-6,
            "{:?}",
            next - later
        );
        b.set_rate(1.0, later);
        let next = b.ready_at(later).unwrap();
        assert!(
            ((next - later).as_secs_f64() - 0.75).abs() < 1e-6,
            "{:?}",
            next - later
        );
    }

    #[test]
    fn debt_is_shared_so_the_overall_rate_holds() {
        let l = RateLimiter::new(1000);
        // The full bucket (50 bytes) passes at once; then each taker waits its share.
        assert_eq!(l.take(50), Duration::ZERO);
        let first = l.take(100);
        let second = l.take(100);
        assert!((0.09..0.11).contains(&first.as_secs_f64()), "{first:?}");
        assert!((0.19..0.21).contains(&second.as_secs_f64()), "{second:?}");
    }

    #[test]
    fn chunks_are_fifty_milliseconds_of_bytes_within_the_buffer() {
        assert_eq!(RateLimiter::new(2 << 20).chunk(256 << 10), 104_857);
        assert_eq!(RateLimiter::new(100).chunk(256 << 10), 512);
        assert_eq!(RateLimiter::new(1 << 30).chunk(256 << 10), 256 << 10);
    }
}
