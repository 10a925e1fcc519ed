//! The worker loop: take a task, make one attempt, hand the result back.
//!
//! Workers share one `ureq::Agent` (its connection pool is shared and thread-safe) and
//! decide nothing: retries, ordering and host limits belong to the scheduler.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::event::Event;
use crate::fetch;
use crate::net::ratelimit::RateLimiter;
use crate::pool::messages::{Back, Done, Work};

/// What a worker needs, shared by all of them.
pub(crate) struct Context {
    pub(crate) config: Arc<Config>,
    pub(crate) agent: ureq::Agent,
    /// Tells a stale pooled connection from a fresh one ([`reuse`](crate::net::reuse)).
    pub(crate) opened: Arc<crate::net::reuse::Opened>,
    pub(crate) events: Sender<Event>,
    pub(crate) cancelled: Arc<AtomicBool>,
    /// Jobs cancelled by id.
    pub(crate) job_cancels: Arc<fetch::JobCancels>,
    /// Verdicts of the up-to-date pre-check, shared with the session's feeder.
    pub(crate) precheck: Arc<crate::output::check::Precheck>,
    /// The output directory's lock, taken by the first file job.
    pub(crate) output_lock: Arc<crate::lock::Lazy>,
    /// The run's shared byte-rate limit (`--limit-rate`), if any.
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    /// The attempt path's per-pool state (hashing threads, what the disk supports).
    pub(crate) shared: Arc<fetch::Shared>,
}

pub(crate) fn run(ctx: Context, tasks: Receiver<Work>, done: Sender<Back>) {
    let emit = |event: Event| {
        let _ = ctx.events.send(event);
    };
    let offer = |split| {
        let _ = done.send(Back::Split(split));
    };
    let env = fetch::Env {
        config: &ctx.config,
        agent: &ctx.agent,
        opened: &ctx.opened,
        cancelled: &ctx.cancelled,
        job_cancels: &ctx.job_cancels,
        precheck: &ctx.precheck,
        output_lock: &ctx.output_lock,
        limiter: ctx.limiter.as_deref(),
        shared: &ctx.shared,
        emit: &emit,
        offer: &offer,
    };
    let mut scratch = fetch::Scratch::new();
    for work in tasks {
        let back = match work {
            Work::Attempt(task) => {
                let input = fetch::Input {
                    id: task.pending.id,
                    job: &task.pending.job,
                    attempt: task.pending.attempts,
                    host: task.pending.host,
                    deadline: task.deadline,
                };
                let result = fetch::attempt(&env, &input, &mut scratch);
                Back::Done(Done {
                    pending: task.pending,
                    result,
                })
            }
            Work::Segment(split) => {
                fetch::segment::help(&env, &split, &mut scratch);
                Back::Helped(split)
            }
        };
        if done.send(back).is_err() {
            break;
        }
    }
}
