//! Progress: the bar on a terminal (files done of the plan's total, bytes, rate, ETA,
//! failures so far and jobs in flight), or, in logs, a status line (or a JSON object)
//! every interval, so a two-hour run in CI, `kubectl logs` or a Slurm output file says
//! how it is doing while it runs.
//!
//! It is an observer on the main thread, so it must stay cheap: each event costs a few
//! counter updates and at most one hash-map operation, the message text is rebuilt at most
//! five times a second, and indicatif redraws at most five times a second. A slow terminal
//! can therefore never slow the pool down; at worst the bar lags.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fetchpool::{Event, JobId, Status};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::human_bytes;

/// The bar being drawn, if any, for [`LogWriter`].
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Where log records go: straight to stderr, or, while a bar is drawn, above it (the bar
/// is hidden for the write and redrawn after).
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let bar = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(|| io::stderr().write_all(buf))?,
            None => io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Redraws per second, and message rebuilds with them.
const HZ: u8 = 5;
const REFRESH: Duration = Duration::from_millis(1000 / HZ as u64);

pub struct Progress {
    bar: ProgressBar,
    /// Bytes received by each attempt in flight, to turn totals into deltas.
    in_flight: HashMap<JobId, u64>,
    bytes: u64,
    failed: u64,
    last_message: Instant,
    /// Bytes and time at the last rate sample, and the smoothed rate.
    sample: (u64, Instant),
    rate: f64,
}

impl Progress {
    /// A bar on stderr for `total` jobs.
    pub fn new(total: u64) -> Progress {
        let bar =
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(HZ));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {pos}/{len} files [{wide_bar}] {msg} · ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        let now = Instant::now();
        let mut p = Progress {
            bar,
            in_flight: HashMap::new(),
            bytes: 0,
            failed: 0,
            last_message: now,
            sample: (0, now),
            rate: 0.0,
        };
        p.refresh(now);
        p
    }

    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Started { id, .. } => {
                self.in_flight.insert(*id, 0);
            }
            Event::Progress { id, bytes, .. } => {
                if let Some(seen) = self.in_flight.get_mut(id) {
                    self.bytes += bytes.saturating_sub(*seen);
                    *seen = *bytes;
                }
            }
            Event::Retrying { id, .. } => {
                self.in_flight.remove(id);
            }
            Event::Finished(outcome) => {
                let seen = self.in_flight.remove(&outcome.id).unwrap_or(0);
                if outcome.status == Status::Ok {
                    // Bodies smaller than a progress step arrive without a Progress event.
                    self.bytes += outcome.bytes.saturating_sub(seen);
                }
                if matches!(outcome.status, Status::Failed) {
                    self.failed += 1;
                }
                self.bar.inc(1);
            }
            _ => return,
        }
        let now = Instant::now();
        if now.duration_since(self.last_message) >= REFRESH {
            self.refresh(now);
        }
    }

    fn refresh(&mut self, now: Instant) {
        let (bytes, at) = self.sample;
        let dt = now.duration_since(at).as_secs_f64();
        if dt >= 0.5 {
            let recent = (self.bytes - bytes) as f64 / dt;
            // Smooths over about two seconds, so the rate neither jumps nor lags much.
            self.rate = if self.rate == 0.0 {
                recent
            } else {
                0.75 * self.rate + 0.25 * recent
            };
            self.sample = (self.bytes, now);
        }
        self.last_message = now;
        let failed = if self.failed > 0 {
            format!(" · {} failed", self.failed)
        } else {
            String::new()
        };
        self.bar.set_message(format!(
            "{} {}/s · {} in flight{failed}",
            human_bytes(self.bytes),
            human_bytes(self.rate as u64),
            self.in_flight.len(),
        ));
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: impl AsRef<str>) {
        self.bar.println(line);
    }

    /// Removes the bar, leaving the screen to the summary.
    pub fn finish(self) {
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.bar.finish_and_clear();
    }
}

pub use super::args::ProgressMode as Mode;

/// The run's counts, shared between the observer (which writes them) and the thread
/// that prints them every interval.
#[derive(Default)]
pub struct Tally {
    done: AtomicU64,
    ok: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    retrying: AtomicU64,
    bytes: AtomicU64,
    in_flight: AtomicU64,
}

/// Keeps a [`Tally`] from the pool's events.
pub struct Counter {
    tally: Arc<Tally>,
    /// Bytes received by each attempt in flight, to turn totals into deltas.
    in_flight: HashMap<JobId, u64>,
}

impl Counter {
    pub fn new(tally: Arc<Tally>) -> Counter {
        Counter {
            tally,
            in_flight: HashMap::new(),
        }
    }

    pub fn observe(&mut self, event: &Event) {
        let t = &self.tally;
        match event {
            Event::Started { id, .. } => {
                self.in_flight.insert(*id, 0);
            }
            Event::Progress { id, bytes, .. } => {
                if let Some(seen) = self.in_flight.get_mut(id) {
                    t.bytes
                        .fetch_add(bytes.saturating_sub(*seen), Ordering::Relaxed);
                    *seen = *bytes;
                }
            }
            Event::Retrying { id, .. } => {
                self.in_flight.remove(id);
                t.retrying.fetch_add(1, Ordering::Relaxed);
            }
            Event::Finished(outcome) => {
                let seen = self.in_flight.remove(&outcome.id).unwrap_or(0);
                if outcome.status == Status::Ok {
                    t.bytes
                        .fetch_add(outcome.bytes.saturating_sub(seen), Ordering::Relaxed);
                }
                let which = match outcome.status {
                    Status::Ok => &t.ok,
                    Status::Skipped => &t.skipped,
                    Status::Failed => &t.failed,
                    _ => &t.cancelled,
                };
                which.fetch_add(1, Ordering::Relaxed);
                t.done.fetch_add(1, Ordering::Relaxed);
            }
            _ => return,
        }
        t.in_flight
            .store(self.in_flight.len() as u64, Ordering::Relaxed);
    }
}

/// Prints the tally every `interval` until `stop` is closed or sent to: a line of text
/// for [`Mode::Lines`], a JSON object for [`Mode::Json`]. A failed write (stderr gone)
/// is ignored: the run goes on.
pub fn report_every(
    mode: Mode,
    interval: Duration,
    total: u64,
    tally: &Tally,
    stop: &crossbeam_channel::Receiver<()>,
) {
    let start = Instant::now();
    let mut last = (0u64, start);
    loop {
        match stop.recv_timeout(interval) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = Instant::now();
        let bytes = tally.bytes.load(Ordering::Relaxed);
        let dt = now.duration_since(last.1).as_secs_f64();
        let rate = if dt > 0.0 {
            (bytes.saturating_sub(last.0)) as f64 / dt
        } else {
            0.0
        };
        last = (bytes, now);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let elapsed = now.duration_since(start).as_secs_f64();
        let line = match mode {
            Mode::Json => serde_json::json!({
                "progress": {
                    "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
                    "done": get(&tally.done),
                    "total": total,
                    "ok": get(&tally.ok),
                    "skipped": get(&tally.skipped),
                    "failed": get(&tally.failed),
                    "cancelled": get(&tally.cancelled),
                    "retries": get(&tally.retrying),
                    "bytes": bytes,
                    "bytes_per_s": rate.round() as u64,
                    "in_flight": get(&tally.in_flight),
                }
            })
            .to_string(),
            _ => {
                let failed = get(&tally.failed);
                let failed = if failed > 0 {
                    format!(" · {failed} failed")
                } else {
                    String::new()
                };
                format!(
                    "fetchpool: {}/{total} done{failed} · {} · {}/s · {} in flight · {:.0} s",
                    get(&tally.done),
                    human_bytes(bytes),
                    human_bytes(rate as u64),
                    get(&tally.in_flight),
                    elapsed,
                )
            }
        };
        let _ = writeln!(io::stderr(), "{line}");
    }
}
