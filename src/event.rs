//! Events: what the pool tells its observers while it runs.
//!
//! The scheduler and the workers send [`Event`]s on one channel. The CLI's progress bar
//! and report writer are observers like any library caller: they see the same events,
//! in the same order, and cannot slow the pool down (the channel is unbounded and
//! `Progress` is throttled per job).

use std::time::Duration;

use crate::error::Error;
use crate::job::JobId;
use crate::report::Outcome;

/// Something that happened to a job.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The pool accepted the job; it waits for a worker, its host or its dependencies.
    Queued {
        /// The job.
        id: JobId,
        /// Its URL.
        url: String,
    },
    /// A worker started an attempt.
    Started {
        /// The job.
        id: JobId,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// Bytes arrived. Sent at most every 250 ms (and at 1 MiB steps) per job.
    Progress {
        /// The job.
        id: JobId,
        /// Bytes received by this attempt so far.
        bytes: u64,
        /// The size the server announced, when it did.
        total: Option<u64>,
    },
    /// The server redirected the request.
    Redirected {
        /// The job.
        id: JobId,
        /// The status (301, 302, 303, 307, 308).
        status: u16,
        /// The next URL.
        to: String,
    },
    /// An attempt failed with a transient error; the job will be tried again after `delay`.
    Retrying {
        /// The job.
        id: JobId,
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// Why it failed.
        reason: Error,
        /// How long the job waits before its next attempt.
        delay: Duration,
    },
    /// The job ended: ok, skipped, failed or cancelled.
    Finished(Box<Outcome>),
}
