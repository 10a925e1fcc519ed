//! The worker loop: take a task, make one attempt, hand the result back.
//!
//! Workers share one `ureq::Agent` (its connection pool is shared and thread-safe) and
//! decide nothing: retries, ordering and host limits belong to the scheduler.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::fetch;
use crate::net::ratelimit::RateLimiter;
use crate::pool::messages::{Done, Note, Task};

/// What a worker needs, shared by all of them.
pub(crate) struct Context {
    pub(crate) config: Arc<Config>,
    pub(crate) agent: ureq::Agent,
    /// Tells a stale pooled connection from a fresh one ([`reuse`](crate::net::reuse)).
    pub(crate) opened: Arc<crate::net::reuse::Opened>,
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
