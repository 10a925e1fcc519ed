//! The worker loop: take a task, make one attempt, hand the result back.
//!
//! Workers share one `ureq::Agent` (its connection pool is shared and thread-safe) and
//! decide nothing: retries, ordering and host limits belong to the scheduler.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::error::Error;
use crate::fetch::{self, Failure, Success};
use crate::job::{Destination, Job, JobId};
use crate::ratelimit::RateLimiter;
use crate::report::{Outcome, Status};
use crate::scheduler::Note;

/// What a worker needs, shared by all of them.
pub(crate) struct Context {
    pub(crate) config: Arc<Config>,
    pub(crate) agent: ureq::Agent,
    pub(crate) events: Sender<Note>,
    pub(crate) cancelled: Arc<AtomicBool>,
    /// Verdicts of the up-to-date pre-check, shared with the session's feeder.
    pub(crate) precheck: Arc<crate::resume::Precheck>,
    /// The output directory's lock, taken by the first file job.
    pub(crate) output_lock: Arc<crate::lock::Lazy>,
    /// The run's shared byte-rate limit (`--limit-rate`), if any.
    pub(crate) limiter: Option<Arc<RateLimiter>>,
}

impl Context {
    /// How much of a `buf`-byte buffer one read may fill: all of it, or under a rate
    /// limit a small slice, so the shared budget flows smoothly.
    pub(crate) fn read_size(&self, buf: usize) -> usize {
        self.limiter.as_ref().map_or(buf, |l| l.chunk(buf))
    }

    /// Accounts for `n` bytes just read; under a rate limit, sleeps until they fit it.
    pub(crate) fn throttle(&self, n: usize) {
        if let Some(l) = &self.limiter {
            let wait = l.take(n as u64);
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }
}

/// A job between its arrival and its outcome, with what its attempts so far learned.
pub(crate) struct Pending {
    pub(crate) id: JobId,
    pub(crate) seq: u64,
    pub(crate) host: usize,
    pub(crate) job: Job,
    pub(crate) attempts: u32,
    pub(crate) first_start: Option<Instant>,
    pub(crate) http_status: Option<u16>,
    pub(crate) redirects: Vec<String>,
    /// Bytes of the body already in `PATH.part` from an attempt that broke mid-way and
    /// that a ranged request may continue.
    pub(crate) partial: Option<u64>,
    /// Failed attempts that added bytes to the part: they do not use up retries.
    pub(crate) progressed: u32,
}

impl Pending {
    pub(crate) fn new(id: JobId, seq: u64, host: usize, job: Job) -> Self {
        Pending {
            id,
            seq,
            host,
            job,
            attempts: 0,
            first_start: None,
            http_status: None,
            redirects: Vec::new(),
            partial: None,
            progressed: 0,
        }
    }

    fn elapsed(&self) -> Duration {
        self.first_start.map(|t| t.elapsed()).unwrap_or_default()
    }

    /// Keeps what a failed attempt learned for the next attempt and the report.
    pub(crate) fn absorb(&mut self, failure: &Failure) {
        if failure.http_status.is_some() {
            self.http_status = failure.http_status;
        }
        self.redirects.clone_from(&failure.redirects);
        self.partial = failure.partial;
        self.progressed += u32::from(failure.grew);
    }

    /// Attempts that count against `retries`: an attempt that grew the part is not
    /// counted, up to `retries` of them, so a job whose transfer makes progress between
    /// failures (a server restarting mid-body) gets up to twice the retries.
    pub(crate) fn counted_attempts(&self, retries: u32) -> u32 {
        self.attempts - self.progressed.min(retries).min(self.attempts)
    }

    /// Moves the job's URL and path out: the `Pending` is spent afterwards (only its
    /// `job.id` is left, for the dependency bookkeeping).
    fn take_names(&mut self) -> (String, Option<PathBuf>) {
        let path = match std::mem::replace(&mut self.job.dest, Destination::Memory) {
            Destination::File(p) => Some(p),
            Destination::Memory => None,
        };
        (std::mem::take(&mut self.job.url), path)
    }

    /// The outcome of a job that ended well; see [`Pending::take_names`].
    pub(crate) fn take_success(&mut self, s: Success) -> Outcome {
        let (url, path) = self.take_names();
        Outcome {
            id: self.id,
            name: self.job.id.clone(),
            url,
            path,
            status: if s.skipped {
                Status::Skipped
            } else {
                Status::Ok
            },
            http_status: s.http_status,
            bytes: s.bytes,
            sha256: s.sha256,
            attempts: self.attempts,
            elapsed: self.elapsed(),
            resumed_from: s.resumed_from,
            redirects: s.redirects,
            error: None,
            body: s.body,
        }
    }

    /// The outcome of a job that ended badly, with the bytes its attempts left in
    /// `PATH.part` for a resume; see [`Pending::take_names`].
    pub(crate) fn take_failure(&mut self, status: Status, error: Error) -> Outcome {
        let (url, path) = self.take_names();
        Outcome {
            id: self.id,
            name: self.job.id.clone(),
            url,
            path,
            status,
            http_status: self.http_status,
            bytes: self.partial.unwrap_or(0),
            sha256: None,
            attempts: self.attempts,
            elapsed: self.elapsed(),
            resumed_from: None,
            redirects: std::mem::take(&mut self.redirects),
            error: Some(error),
            body: None,
        }
    }
}

/// One attempt to make.
pub(crate) struct Task {
    /// Boxed: a task and its result cross two channels, and a pointer moves cheaply.
    pub(crate) pending: Box<Pending>,
    /// When the job's whole budget runs out, if it has one.
    pub(crate) deadline: Option<Instant>,
}

/// An attempt's result, with the job handed back to the scheduler.
pub(crate) struct Done {
    pub(crate) pending: Box<Pending>,
    pub(crate) result: Result<Success, Failure>,
}

pub(crate) fn run(ctx: Context, tasks: Receiver<Task>, done: Sender<Done>) {
    for task in tasks {
        let result = fetch::attempt(&ctx, &task);
        if done
            .send(Done {
                pending: task.pending,
                result,
            })
            .is_err()
        {
            break;
        }
    }
}
