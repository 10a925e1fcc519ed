//! What one attempt is given and what it gives back: its own input ([`Input`]: the job
//! and its place among its attempts), what the pool shares with it ([`Env`], with the
//! emit callback for its events, and [`Shared`], the pool's state of the attempt path),
//! the worker's [`Scratch`], and the attempt's [`Success`] or [`Failure`].

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::config::Config;
use crate::error::Error;
use crate::event::Event;
use crate::job::{Job, JobId};
use crate::lock;
use crate::net::ratelimit::RateLimiter;
use crate::net::reuse::Opened;
use crate::output::check::Precheck;
use crate::output::{Disk, RecentDirs};

use super::split::Split;

/// What one attempt is about: the job, and where it stands among its attempts.
pub(crate) struct Input<'a> {
    pub(crate) id: JobId,
    pub(crate) job: &'a Job,
    /// This attempt's number: 1 for the job's first.
    pub(crate) attempt: u32,
    /// The pool's index of the job's host, handed back with a split file's offer.
    pub(crate) host: usize,
    /// When the job's whole budget runs out, if it has one.
    pub(crate) deadline: Option<Instant>,
}

/// What every attempt of one pool uses, borrowed from the worker that makes it.
pub(crate) struct Env<'a> {
    pub(crate) config: &'a Config,
    pub(crate) agent: &'a ureq::Agent,
    /// Tells a stale pooled connection from a fresh one.
    pub(crate) opened: &'a Opened,
    /// Set when the session is cancelled: a body stops at its next read.
    pub(crate) cancelled: &'a AtomicBool,
    /// Jobs cancelled one by one: such a job's body stops at its next read.
    pub(crate) job_cancels: &'a JobCancels,
    /// Verdicts of the up-to-date pre-check.
    pub(crate) precheck: &'a Precheck,
    /// The output directory's lock, taken by the first file job.
    pub(crate) output_lock: &'a lock::Lazy,
    /// The run's shared byte-rate limit, if any.
    pub(crate) limiter: Option<&'a RateLimiter>,
    /// The pool's state of the attempt path.
    pub(crate) shared: &'a Shared,
    /// Where the attempt's events (redirects, progress) go.
    pub(crate) emit: &'a dyn Fn(Event),
    /// Where a split file is offered for helpers (the scheduler, which sends them).
    pub(crate) offer: &'a dyn Fn(Arc<Split>),
}

impl Env<'_> {
    /// How much of a `buf`-byte buffer one read may fill: all of it, or under a rate
    /// limit a small slice, so the shared budget flows smoothly.
    pub(super) fn read_size(&self, buf: usize) -> usize {
        self.limiter.map_or(buf, |l| l.chunk(buf))
    }

    /// The error job `id` ends with when its session was cancelled or it was cancelled by
    /// id, checked before each read of a body; `None` while it may go on.
    pub(super) fn cancel_asked(&self, id: JobId) -> Option<Error> {
        if self.cancelled.load(Ordering::Relaxed) {
            Some(Error::Cancelled {
                reason: "interrupted".into(),
            })
        } else if self.job_cancels.contains(id) {
            Some(Error::Cancelled {
                reason: CANCELLED_BY_ID.into(),
            })
        } else {
            None
        }
    }

    /// Accounts for `n` bytes just read; under a rate limit, sleeps until they fit it.
    pub(super) fn throttle(&self, n: usize) {
        if let Some(l) = self.limiter {
            let wait = l.take(n as u64);
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }

    /// One read of job `id`'s body into `buf`, as every body loop makes it: at most what
    /// the rate limit allows at once, an interrupted read made again, the bytes counted
    /// against the limit. A read that fails while a cancel is asked (the cancel shuts the
    /// connections, and a stalled server keeps a read waiting until its stall limit) fails
    /// with the cancel, not with the read's error (`on_error`'s). `Ok(0)` is the end.
    pub(super) fn read_chunk(
        &self,
        id: JobId,
        reader: &mut dyn std::io::Read,
        buf: &mut [u8],
        on_error: impl FnOnce(std::io::Error) -> Error,
    ) -> Result<usize, Error> {
        let want = self.read_size(buf.len());
        loop {
            match reader.read(&mut buf[..want]) {
                Ok(n) => {
                    if n > 0 {
                        self.throttle(n);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.cancel_asked(id).unwrap_or_else(|| on_error(e))),
            }
        }
    }
}

/// The jobs of a session cancelled by id and not yet ended, shared by whoever may cancel
/// (the session, its submitters and cancel handles), the scheduler that ends them, and
/// the attempts that must stop. While none is pending an attempt's check is one atomic
/// load per read.
#[derive(Debug, Default)]
pub(crate) struct JobCancels {
    any: AtomicBool,
    ids: Mutex<HashSet<JobId>>,
}

impl JobCancels {
    fn ids(&self) -> MutexGuard<'_, HashSet<JobId>> {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for `id` to end cancelled.
    pub(crate) fn request(&self, id: JobId) {
        let mut ids = self.ids();
        ids.insert(id);
        self.any.store(true, Ordering::SeqCst);
    }

    /// Whether `id` was asked to end.
    pub(crate) fn contains(&self, id: JobId) -> bool {
        self.any.load(Ordering::Relaxed) && self.ids().contains(&id)
    }

    /// Whether `id` was asked to end, forgetting the request.
    pub(crate) fn take(&self, id: JobId) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return false;
        }
        let mut ids = self.ids();
        let had = ids.remove(&id);
        if ids.is_empty() {
            self.any.store(false, Ordering::SeqCst);
        }
        had
    }
}

/// The reason of a job cancelled by id.
pub(crate) const CANCELLED_BY_ID: &str = "the job was cancelled";

/// The attempt path's state for one pool, created by the pool and shared by its workers:
/// the hashing-thread budget and what the output directory supports. Two pools share
/// nothing.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) hashers: Hashers,
    pub(crate) disk: Disk,
}

/// What one worker keeps between its attempts: its read buffer and the directories it
/// created or checked lately.
pub(crate) struct Scratch {
    pub(super) buf: Vec<u8>,
    pub(super) made: RecentDirs,
    pub(super) checked: RecentDirs,
}

impl Scratch {
    /// A worker's scratch, with a read buffer of [`BUF_SIZE`] bytes.
    pub(crate) fn new() -> Scratch {
        Scratch {
            buf: vec![0; BUF_SIZE],
            made: RecentDirs::default(),
            checked: RecentDirs::default(),
        }
    }
}

/// What a successful attempt produced.
pub(crate) struct Success {
    pub(crate) http_status: Option<u16>,
    pub(crate) bytes: u64,
    pub(crate) sha256: Option<String>,
    /// What the body (or the file already there) was verified with, if anything.
    pub(crate) verified: Option<crate::checksum::Verified>,
    pub(crate) resumed_from: Option<u64>,
    pub(crate) redirects: Vec<String>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) skipped: bool,
    /// The kept headers of the response (see [`crate::Outcome::headers`]).
    pub(crate) headers: Vec<(String, String)>,
    /// Where the file went when not at the job's path (a `Content-Disposition` name),
    /// relative to the output directory.
    pub(crate) placed_at: Option<std::path::PathBuf>,
    /// The most connections that carried the body at once: 1 for a single stream, 0
    /// when no body was received.
    pub(crate) connections: u32,
}

/// Why an attempt failed, and what it learned on the way.
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) http_status: Option<u16>,
    pub(crate) redirects: Vec<String>,
    /// Bytes left in `PATH.part` that a later attempt may continue from; for a memory
    /// job, the bytes this attempt received before it failed.
    pub(crate) partial: Option<u64>,
    /// Whether this attempt added bytes to the kept part: progress, which the retry
    /// policy rewards with patience.
    pub(crate) grew: bool,
    /// The kept headers of the response, when one came (a boxed slice: a failure crosses
    /// two channels in a `Result`, which clippy rightly keeps small).
    pub(crate) headers: Box<[(String, String)]>,
}

impl Failure {
    pub(super) fn new(error: Error) -> Self {
        Failure {
            error,
            http_status: None,
            redirects: Vec::new(),
            partial: None,
            grew: false,
            headers: Box::default(),
        }
    }
}

/// Hands `event` to the attempt's observer.
pub(super) fn emit(ctx: &Env, event: Event) {
    (ctx.emit)(event);
}

/// Size of each worker's read buffer: the connection's input buffer (see
/// [`crate::net::agent::INPUT_BUFFER`]), the most one read hands over; larger would never be
/// filled, only counted in memory.
pub(super) const BUF_SIZE: usize = crate::net::agent::INPUT_BUFFER;

/// A pool's budget of hashing threads. A hashing thread only helps while a core is idle:
/// when every core is busy (many workers, large files) hashing inline costs the same CPU
/// without the copies and buffers, so at most one per core runs at a time.
#[derive(Debug)]
pub(crate) struct Hashers {
    /// Hashing threads running now.
    running: AtomicUsize,
    /// At most this many at once: the cores the system reports.
    cores: usize,
}

impl Default for Hashers {
    fn default() -> Self {
        Hashers {
            running: AtomicUsize::new(0),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Hashers {
    /// One slot for a hashing thread, or `None` while every core has one.
    pub(super) fn claim(&self) -> Option<Pipeline<'_>> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.cores).then_some(n + 1)
            })
            .ok()
            .map(|_| Pipeline(self))
    }
}

/// One of the [`Hashers`] slots, given back on drop.
pub(super) struct Pipeline<'a>(&'a Hashers);

impl Drop for Pipeline<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}
