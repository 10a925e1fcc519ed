//! What crosses the pool's channels: jobs in batches, control messages, attempts to make
//! and their results. The event channel carries [`crate::Event`]s as they are.

use std::time::Instant;

use crate::error::Error;
use std::sync::Arc;

use crate::fetch::{Failure, Split, Success};
use crate::job::{Job, JobId};
use crate::report::{Measured, Names, Outcome, Status};

/// Jobs submitted together, with their ids.
pub(crate) type Batch = Vec<(JobId, Job)>;

/// Control messages from the session.
pub(crate) enum Ctl {
    Cancel,
    /// End this job cancelled (see [`crate::fetch::JobCancels`]).
    CancelJob(JobId),
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
    /// The kept headers of the last response received.
    pub(crate) headers: Vec<(String, String)>,
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
            headers: Vec::new(),
        }
    }

    /// Takes in a failed attempt: the wait before the next one, or `None` when the job
    /// ends with this failure (not transient, out of retries, or the wait would pass
    /// its deadline). The one retry decision, for the scheduler and [`crate::Pool::fetch`].
    pub(crate) fn next_attempt(
        &mut self,
        cfg: &crate::config::Config,
        failure: &Failure,
        now: Instant,
        rng: &mut crate::pool::retry::Jitter,
    ) -> Option<std::time::Duration> {
        let deadline = self.deadline(cfg);
        self.absorb(failure);
        let retries = self.retries(cfg);
        let counted = self.counted_attempts(retries);
        if !failure.error.is_transient() || counted > retries {
            return None;
        }
        // After progress the backoff starts over from the base step.
        let retry_after = failure.error.retry_after();
        let delay = crate::pool::retry::delay(cfg, counted.max(1), retry_after, rng);
        deadline.is_none_or(|d| now + delay < d).then_some(delay)
    }

    /// Keeps what a failed attempt learned for the next attempt and the report.
    pub(crate) fn absorb(&mut self, failure: &Failure) {
        if failure.http_status.is_some() {
            self.http_status = failure.http_status;
            self.headers = failure.headers.to_vec();
        }
        self.redirects.clone_from(&failure.redirects);
        self.partial = failure.partial;
        self.progressed += u32::from(failure.grew);
    }

    /// The job's retries: its own, or the pool's.
    pub(crate) fn retries(&self, cfg: &crate::config::Config) -> u32 {
        self.job.retries.unwrap_or(cfg.retries)
    }

    /// When the job's whole budget (its own, or the pool's) runs out, once it started.
    pub(crate) fn deadline(&self, cfg: &crate::config::Config) -> Option<Instant> {
        let budget = self.job.max_time.or(cfg.max_time)?;
        Some(self.first_start? + budget)
    }

    /// Attempts that count against `retries`: an attempt that grew the part is not
    /// counted, up to `retries` of them, so a job whose transfer makes progress between
    /// failures (a server restarting mid-body) gets up to twice the retries.
    pub(crate) fn counted_attempts(&self, retries: u32) -> u32 {
        self.attempts - self.progressed.min(retries).min(self.attempts)
    }

    fn measured(&self) -> Measured {
        Measured {
            attempts: self.attempts,
            elapsed: self.first_start.map(|t| t.elapsed()).unwrap_or_default(),
            ..Measured::default()
        }
    }

    /// The outcome of a job that ended well: the `Pending` is spent afterwards (only its
    /// `job.id` is left, for the dependency bookkeeping).
    pub(crate) fn take_success(&mut self, s: Success) -> Outcome {
        if let Some(placed) = s.placed_at.clone() {
            self.job.dest = crate::job::Destination::File(placed);
        }
        let status = if s.skipped {
            Status::Skipped
        } else {
            Status::Ok
        };
        let measured = Measured {
            http_status: s.http_status,
            connections: s.connections,
            bytes: s.bytes,
            sha256: s.sha256,
            verified: s.verified,
            resumed_from: s.resumed_from,
            redirects: s.redirects,
            body: s.body,
            headers: s.headers,
            ..self.measured()
        };
        Outcome::new(self.id, Names::take(&mut self.job), status, measured, None)
    }

    /// The outcome of a job that ended badly, with the bytes its attempts left in
    /// `PATH.part` for a resume; spent afterwards like [`Pending::take_success`].
    pub(crate) fn take_failure(&mut self, status: Status, error: Error) -> Outcome {
        let measured = Measured {
            http_status: self.http_status,
            bytes: self.partial.unwrap_or(0),
            redirects: std::mem::take(&mut self.redirects),
            headers: std::mem::take(&mut self.headers),
            ..self.measured()
        };
        Outcome::new(
            self.id,
            Names::take(&mut self.job),
            status,
            measured,
            Some(error),
        )
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

/// What a worker is handed: an attempt at a job, or a segment of a split file.
pub(crate) enum Work {
    Attempt(Task),
    /// Fetch one segment of this split file, if one is left.
    Segment(Arc<Split>),
}

/// What comes back from the workers.
pub(crate) enum Back {
    /// An attempt ended.
    Done(Done),
    /// An attempt split its file: it may use helpers.
    Split(Arc<Split>),
    /// A segment task ended.
    Helped(Arc<Split>),
}
