//! The scheduler: one thread that owns every scheduling decision.
//!
//! It reads submitted jobs (never more than `lookahead` queued at once, so memory stays
//! flat however long the list), holds jobs whose dependencies have not finished, hands a
//! worker only a job whose host has room (so a saturated host never blocks others), times
//! retries and per-host back-off, and turns attempt results into outcomes. Workers never
//! wait for a slot and never decide anything.
//!
//! Split files ([`crate::fetch::segment`]): the attempt that splits a file offers it
//! here, and workers that no queued job can use get a helper task for it, one segment
//! each; helpers count against the workers and the per-host limit like attempts.
//!
//! Ordering: among ready jobs, higher priority first, then submission order. Serial mode
//! is the same loop with one worker and stricter rules: submission order only (priority
//! is ignored), nothing starts while a job is in flight or waiting to retry, and a job
//! whose host is paused holds back the jobs behind it instead of being passed.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, never, select};

use crate::config::Config;
use crate::error::Error;
use crate::event::Event;
use crate::fetch::{CANCELLED_BY_ID, JobCancels, Split};
use crate::job::{Job, JobId};
use crate::net::ratelimit::RequestBucket;
use crate::plan::{Claims, PlanChecker};
use crate::pool::messages::{Back, Batch, Ctl, Done, Pending, Task, Work};
use crate::pool::retry;
use crate::report::{Outcome, Status, Summary};
use crate::url::write_host_key;

/// The scheduler's ends of the session's channels.
pub(crate) struct Links {
    /// Jobs arrive in batches: one channel operation, and at most one wake-up of a
    /// blocked submitter, per batch rather than per job.
    pub(crate) input: Receiver<Batch>,
    pub(crate) ctl: Receiver<Ctl>,
    pub(crate) work: Sender<Work>,
    pub(crate) done: Receiver<Back>,
    pub(crate) events: Sender<Event>,
    /// Jobs cancelled by id, shared with the session and the workers.
    pub(crate) job_cancels: Arc<JobCancels>,
}

/// A queued job's place in line: higher priority first, then lower sequence number.
#[derive(PartialEq, Eq)]
struct Ready {
    priority: i32,
    seq: u64,
}

impl Ord for Ready {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

#[derive(Default)]
struct Host {
    in_flight: usize,
    /// Jobs popped while the host was full, paused or out of budget, in the order they
    /// were popped.
    parked: VecDeque<Ready>,
    paused_until: Option<Instant>,
    /// The host's request budget: its configured rate, or a 429's slow-down.
    bucket: Option<RequestBucket>,
    slow: Option<Slowdown>,
    /// The host's last request starts, to measure its rate when a 429 comes.
    starts: VecDeque<Instant>,
    /// When a timer will look at the host's parked jobs again for its budget.
    wake_at: Option<Instant>,
}

/// A host slowed down by a 429: `cut` requests per second from `since`, a quarter more
/// every [`SLOW_STEP`], until `ceiling`.
struct Slowdown {
    cut: f64,
    since: Instant,
    ceiling: f64,
}

/// How long a slowed host keeps each rate before it grows by a quarter.
const SLOW_STEP: Duration = Duration::from_secs(5);
/// 429s this soon after a cut cut no further: they answer requests sent before it.
const SLOW_SETTLE: Duration = Duration::from_secs(1);
/// The slowest a 429 makes a host: one request every 2 s.
const SLOW_FLOOR: f64 = 0.5;
/// How many request starts per host are kept to measure its rate.
const STARTS_KEPT: usize = 32;

impl Host {
    /// The host's request rate now, given the configured one; ends a slow-down that has
    /// grown back past its ceiling.
    fn rate(&mut self, configured: Option<f64>, now: Instant) -> Option<f64> {
        if let Some(slow) = &self.slow {
            let steps = (now.saturating_duration_since(slow.since).as_secs_f64()
                / SLOW_STEP.as_secs_f64())
            .floor();
            let rate = slow.cut * 1.25f64.powf(steps);
            if rate < slow.ceiling {
                return Some(configured.map_or(rate, |c| c.min(rate)));
            }
            self.slow = None;
        }
        configured
    }

    /// When the host's budget has room for a request (`None`: now).
    fn budget_ready_at(&mut self, configured: Option<f64>, now: Instant) -> Option<Instant> {
        match self.rate(configured, now) {
            None => {
                self.bucket = None;
                None
            }
            Some(rate) => {
                let bucket = self
                    .bucket
                    .get_or_insert_with(|| RequestBucket::new(rate, now));
                if bucket.rate() != rate {
                    bucket.set_rate(rate, now);
                }
                bucket.ready_at(now)
            }
        }
    }

    /// Requests per second over the kept starts of the last few seconds, if there are two.
    fn measured_rate(&self, now: Instant) -> Option<f64> {
        let recent: Vec<&Instant> = self
            .starts
            .iter()
            .filter(|t| now.saturating_duration_since(**t) <= SLOW_STEP)
            .collect();
        let (first, last) = (recent.first()?, recent.last()?);
        let span = last.saturating_duration_since(**first).as_secs_f64();
        (recent.len() >= 2 && span > 0.0).then(|| (recent.len() - 1) as f64 / span)
    }

    /// A 429 came: halve the host's rate, unless it was cut a moment ago.
    fn slow_down(&mut self, configured: Option<f64>, now: Instant) {
        if self
            .slow
            .as_ref()
            .is_some_and(|s| now.saturating_duration_since(s.since) < SLOW_SETTLE)
        {
            return;
        }
        let limit = self.rate(configured, now);
        let current = match (limit, self.measured_rate(now)) {
            (Some(l), Some(m)) => l.min(m),
            (Some(r), None) | (None, Some(r)) => r,
            (None, None) => 1.0,
        };
        let ceiling = match (&self.slow, configured) {
            (_, Some(c)) => c,
            (Some(s), None) => s.ceiling,
            (None, None) => current * 2.0,
        };
        self.slow = Some(Slowdown {
            cut: (current / 2.0).max(SLOW_FLOOR),
            since: now,
            ceiling,
        });
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Retry(u64),
    Unpause(usize),
    /// A host's budget has room again: its parked jobs get another look.
    Wake(usize),
    /// The run's budget has room again.
    Tick,
}

/// A split file the scheduler sends helpers to.
struct Helping {
    split: Arc<Split>,
    /// Helper tasks sent and not yet back.
    dispatched: usize,
    /// Whether the attempt that split it has ended: no helper is wanted any more.
    ended: bool,
}

/// A job held until the jobs it names have finished.
struct Blocked {
    pending: Pending,
    remaining: usize,
}

pub(crate) struct Scheduler {
    cfg: Arc<Config>,
    input: Receiver<Batch>,
    input_open: bool,
    ctl: Receiver<Ctl>,
    work: Sender<Work>,
    done: Receiver<Back>,
    events: Sender<Event>,
    cancelled: Arc<AtomicBool>,
    /// Split files that may take helpers.
    splits: Vec<Helping>,
    seq: u64,
    host_ids: HashMap<String, usize>,
    /// Scratch space for host keys, so a known host costs no allocation.
    key: String,
    hosts: Vec<Host>,
    ready: BinaryHeap<Ready>,
    /// Jobs that are ready, parked or waiting to retry, by sequence number.
    /// Boxed: the table is sized for its busiest moment and never shrinks, so its slots
    /// should be pointers, not 350-byte jobs.
    jobs: HashMap<u64, Box<Pending>>,
    queued: usize,
    in_flight: usize,
    retry_waiting: usize,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    blocked: HashMap<u64, Blocked>,
    /// How many jobs wait for their dependencies, shared with the session: when every
    /// unfinished job is held, nothing can run and `run_with` may end the run.
    held: Arc<AtomicU64>,
    waiters: HashMap<String, Vec<u64>>,
    /// Whether each named job succeeded, kept for jobs that may still name it.
    results: HashMap<String, bool>,
    stopping: Option<&'static str>,
    rng: retry::Jitter,
    /// The run's request budget, and when a timer will look at it again.
    budget: Option<RequestBucket>,
    tick_at: Option<Instant>,
    /// The ids and paths the session's jobs have claimed.
    claims: Claims,
    job_cancels: Arc<JobCancels>,
    /// Every outcome counted as it is sent, handed back when the run ends: the observer
    /// may read events from the channel in any way, or not at all.
    summary: Summary,
    /// The jobs in flight (at most one per worker), and one past the highest id arrived:
    /// what tells a running or coming job from one that ended, for `cancel_job`.
    running: Vec<JobId>,
    next_arrival: u64,
}

impl Scheduler {
    pub(crate) fn new(
        cfg: Arc<Config>,
        links: Links,
        cancelled: Arc<AtomicBool>,
        held: Arc<AtomicU64>,
    ) -> Self {
        let Links {
            input,
            ctl,
            work,
            done,
            events,
            job_cancels,
        } = links;
        Scheduler {
            cfg,
            input,
            input_open: true,
            ctl,
            work,
            done,
            events,
            cancelled,
            splits: Vec::new(),
            seq: 0,
            host_ids: HashMap::new(),
            key: String::new(),
            hosts: Vec::new(),
            ready: BinaryHeap::new(),
            jobs: HashMap::new(),
            queued: 0,
            in_flight: 0,
            retry_waiting: 0,
            timers: BinaryHeap::new(),
            blocked: HashMap::new(),
            held,
            waiters: HashMap::new(),
            results: HashMap::new(),
            stopping: None,
            rng: retry::Jitter::seeded(),
            budget: None,
            tick_at: None,
            claims: Claims::default(),
            job_cancels,
            summary: Summary::default(),
            running: Vec::new(),
            next_arrival: 0,
        }
    }

    /// Runs until the input ends and nothing is left; returns the counts of the outcomes.
    pub(crate) fn run(mut self) -> Summary {
        let never_input = never::<Batch>();
        let never_ctl = never::<Ctl>();
        let mut ctl_open = true;
        loop {
            if self.cancelled.load(Ordering::SeqCst) && self.stopping.is_none() {
                self.stop("interrupted");
            }
            self.fire_timers();
            self.dispatch();
            if !self.input_open && self.is_idle() {
                self.cancel_orphans();
                break;
            }
            let wants_input =
                self.input_open && (self.queued < self.cfg.lookahead || self.stopping.is_some());
            let input = if wants_input {
                &self.input
            } else {
                &never_input
            };
            let ctl = if ctl_open { &self.ctl } else { &never_ctl };
            let wait = self
                .timers
                .peek()
                .map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(3600));
            select! {
                recv(input) -> msg => match msg {
                    Ok(batch) => {
                        for (id, job) in batch {
                            self.accept(id, job);
                        }
                    }
                    Err(_) => self.input_open = false,
                },
                recv(self.done) -> msg => match msg {
                    Ok(Back::Done(done)) => self.on_done(done),
                    Ok(Back::Split(split)) => self.splits.push(Helping {
                        split,
                        dispatched: 0,
                        ended: false,
                    }),
                    Ok(Back::Helped(split)) => self.on_helped(&split),
                    Err(_) => {}
                },
                recv(ctl) -> msg => match msg {
                    Ok(Ctl::Cancel) => self.stop("interrupted"),
                    Ok(Ctl::CancelJob(id)) => self.cancel_job(id),
                    Err(_) => ctl_open = false,
                },
                default(wait) => {}
            }
        }
        self.summary
    }

    fn is_idle(&self) -> bool {
        self.queued == 0 && self.in_flight == 0 && self.retry_waiting == 0
    }

    fn emit(&self, event: Event) {
        // Queued and Started cost the observer a wake-up each; an observer that draws no
        // progress asks for neither.
        if !self.cfg.progress_events
            && matches!(event, Event::Queued { .. } | Event::Started { .. })
        {
            return;
        }
        let _ = self.events.send(event);
    }

    fn host_index(&mut self, url: &str) -> usize {
        write_host_key(url, &mut self.key);
        if let Some(&i) = self.host_ids.get(self.key.as_str()) {
            return i;
        }
        self.hosts.push(Host::default());
        self.host_ids.insert(self.key.clone(), self.hosts.len() - 1);
        self.hosts.len() - 1
    }

    fn accept(&mut self, id: JobId, job: Job) {
        self.next_arrival = self.next_arrival.max(id.0 + 1);
        // Taken whatever becomes of the job, so that no request outlives it.
        let cancelled_by_id = self.job_cancels.take(id);
        self.emit(Event::Queued {
            id,
            url: job.url.clone(),
        });
        // The checks of a list, one job at a time: on its own, then against the others.
        if let Err(e) = PlanChecker::check(&job, &self.cfg.output_dir) {
            self.finish(Outcome::not_started(id, &job, Status::Failed, e), job.id);
            return;
        }
        if let Some(reason) = self.stopping {
            let e = Error::Cancelled {
                reason: reason.into(),
            };
            self.finish(Outcome::not_started(id, &job, Status::Cancelled, e), job.id);
            return;
        }
        if cancelled_by_id {
            let e = Error::Cancelled {
                reason: CANCELLED_BY_ID.into(),
            };
            self.finish(Outcome::not_started(id, &job, Status::Cancelled, e), job.id);
            return;
        }
        if let Err(e) = self.claims.claim(&job) {
            // A repeated id is another job's, whose dependents must not hear of this one.
            let name = job.id.clone().filter(|n| !self.claims.has_id(n));
            self.finish(Outcome::not_started(id, &job, Status::Failed, e), name);
            return;
        }
        let host = self.host_index(&job.url);
        let seq = self.seq;
        self.seq += 1;
        let pending = Pending::new(id, seq, host, job);
        let mut remaining = 0;
        for dep in pending.job.after.clone() {
            match self.results.get(&dep) {
                Some(true) => {}
                Some(false) => {
                    self.finish_unstarted(
                        pending,
                        Status::Cancelled,
                        Error::Dependency { id: dep },
                    );
                    return;
                }
                None => {
                    remaining += 1;
                    self.waiters.entry(dep).or_default().push(seq);
                }
            }
        }
        if remaining > 0 {
            self.hold(seq, Blocked { pending, remaining });
        } else {
            self.enqueue(pending);
        }
    }

    /// A job's place in line; serial mode knows only submission order.
    fn rank(&self, pending: &Pending) -> Ready {
        Ready {
            priority: if self.cfg.serial {
                0
            } else {
                pending.job.priority
            },
            seq: pending.seq,
        }
    }

    fn hold(&mut self, seq: u64, blocked: Blocked) {
        self.blocked.insert(seq, blocked);
        self.held.fetch_add(1, Ordering::SeqCst);
    }

    fn release(&mut self, seq: u64) -> Option<Blocked> {
        let b = self.blocked.remove(&seq)?;
        self.held.fetch_sub(1, Ordering::SeqCst);
        Some(b)
    }

    fn enqueue(&mut self, pending: Pending) {
        self.ready.push(self.rank(&pending));
        self.jobs.insert(pending.seq, Box::new(pending));
        self.queued += 1;
    }

    /// Hands out work: queued jobs first, then helpers of split files with the workers
    /// no queued job can use (none is ready, or their hosts are full or paused). A helper
    /// fetches one segment and comes back, so a split file gives its workers back to the
    /// list at every segment: splitting never delays another job by more than a segment.
    fn dispatch(&mut self) {
        self.dispatch_jobs();
        self.dispatch_helpers();
    }

    /// Sends helper tasks to split files, in turn, while workers are free and each one's
    /// host has room. Under a request budget none is sent (each segment would be a
    /// request the budget did not grant): the file's own connection fetches it all.
    fn dispatch_helpers(&mut self) {
        let budgeted = self.cfg.request_rate.is_some() || self.cfg.per_host_request_rate.is_some();
        if self.stopping.is_some() || self.cfg.serial || budgeted {
            return;
        }
        let now = Instant::now();
        let mut sent = true;
        while sent {
            sent = false;
            for h in &mut self.splits {
                if self.in_flight >= self.cfg.workers || !self.ready.is_empty() {
                    return;
                }
                let host = &mut self.hosts[h.split.host];
                let paused = host.paused_until.is_some_and(|t| t > now);
                if h.ended || paused || host.in_flight >= self.cfg.per_host {
                    continue;
                }
                if !h.split.room(h.dispatched) {
                    continue;
                }
                if self.work.send(Work::Segment(Arc::clone(&h.split))).is_err() {
                    return;
                }
                host.in_flight += 1;
                h.dispatched += 1;
                self.in_flight += 1;
                sent = true;
            }
        }
    }

    /// A helper task came back.
    fn on_helped(&mut self, split: &Arc<Split>) {
        self.in_flight -= 1;
        self.hosts[split.host].in_flight -= 1;
        self.unpark(split.host, 1);
        if let Some(h) = self
            .splits
            .iter_mut()
            .find(|h| Arc::ptr_eq(&h.split, split))
        {
            h.dispatched -= 1;
        }
        self.splits.retain(|h| !(h.ended && h.dispatched == 0));
    }

    fn dispatch_jobs(&mut self) {
        let now = Instant::now();
        while self.stopping.is_none() && self.in_flight < self.cfg.workers {
            if self.cfg.serial && (self.in_flight > 0 || self.retry_waiting > 0) {
                break;
            }
            let Some(next) = self.ready.pop() else { break };
            let host_idx = self.jobs[&next.seq].host;
            let host = &mut self.hosts[host_idx];
            let paused = host.paused_until.is_some_and(|t| t > now);
            if host.in_flight >= self.cfg.per_host || paused {
                if self.cfg.serial {
                    // The next job in order waits for its host; nothing may pass it.
                    self.ready.push(next);
                    break;
                }
                host.parked.push_back(next);
                continue;
            }
            // Request budgets: the job waits in line, holding no worker and no connection.
            if let Some(at) = host.budget_ready_at(self.cfg.per_host_request_rate, now) {
                if host.wake_at.is_none_or(|w| w > at) {
                    host.wake_at = Some(at);
                    self.timers.push(Reverse((at, Timer::Wake(host_idx))));
                }
                if self.cfg.serial {
                    self.ready.push(next);
                    break;
                }
                host.parked.push_back(next);
                continue;
            }
            if let Some(rate) = self.cfg.request_rate {
                let budget = self
                    .budget
                    .get_or_insert_with(|| RequestBucket::new(rate, now));
                if let Some(at) = budget.ready_at(now) {
                    // One budget for the run: nothing starts before it has room.
                    self.ready.push(next);
                    if self.tick_at.is_none_or(|t| t > at) {
                        self.tick_at = Some(at);
                        self.timers.push(Reverse((at, Timer::Tick)));
                    }
                    break;
                }
                budget.take(now);
            }
            if let Some(bucket) = host.bucket.as_mut() {
                bucket.take(now);
            }
            if host.starts.len() == STARTS_KEPT {
                host.starts.pop_front();
            }
            host.starts.push_back(now);
            host.in_flight += 1;
            let mut pending = self.jobs.remove(&next.seq).expect("queued job is stored");
            self.queued -= 1;
            pending.attempts += 1;
            pending.first_start.get_or_insert(now);
            let deadline = pending.deadline(&self.cfg);
            self.emit(Event::Started {
                id: pending.id,
                attempt: pending.attempts,
            });
            self.in_flight += 1;
            self.running.push(pending.id);
            if let Err(err) = self.work.send(Work::Attempt(Task { pending, deadline })) {
                // Workers are gone only if they panicked; end the job rather than lose it.
                let Work::Attempt(task) = err.into_inner() else {
                    unreachable!("an attempt was sent")
                };
                let pending = *task.pending;
                self.in_flight -= 1;
                self.stopped_running(pending.id);
                self.hosts[host_idx].in_flight -= 1;
                let e = Error::Cancelled {
                    reason: "worker threads stopped".into(),
                };
                self.finish_unstarted(pending, Status::Failed, e);
            }
        }
    }

    fn stopped_running(&mut self, id: JobId) {
        if let Some(i) = self.running.iter().position(|r| *r == id) {
            self.running.swap_remove(i);
        }
    }

    /// Moves up to `n` parked jobs of a host back in line.
    fn unpark(&mut self, host: usize, n: usize) {
        for _ in 0..n {
            match self.hosts[host].parked.pop_front() {
                Some(r) => self.ready.push(r),
                None => break,
            }
        }
    }

    fn on_done(&mut self, done: Done) {
        let Done {
            mut pending,
            result,
        } = done;
        self.in_flight -= 1;
        self.stopped_running(pending.id);
        self.hosts[pending.host].in_flight -= 1;
        self.unpark(pending.host, 1);
        if !self.splits.is_empty() {
            for h in &mut self.splits {
                h.ended |= h.split.id() == pending.id;
            }
            self.splits.retain(|h| !(h.ended && h.dispatched == 0));
        }
        // Cancelled by id while in flight: unless it made it to the end, it ends here.
        let cancelled_by_id = self.job_cancels.take(pending.id);
        match result {
            Err(failure) if cancelled_by_id => {
                pending.absorb(&failure);
                let e = Error::Cancelled {
                    reason: CANCELLED_BY_ID.into(),
                };
                let outcome = pending.take_failure(Status::Cancelled, e);
                let name = pending.job.id.take();
                self.finish(outcome, name);
            }
            Ok(success) => {
                let outcome = pending.take_success(success);
                let name = pending.job.id.take();
                self.finish(outcome, name);
            }
            Err(failure) => {
                let now = Instant::now();
                if self.cancelled.load(Ordering::SeqCst) {
                    pending.absorb(&failure);
                    let e = Error::Cancelled {
                        reason: "interrupted".into(),
                    };
                    let outcome = pending.take_failure(Status::Cancelled, e);
                    let name = pending.job.id.take();
                    self.finish(outcome, name);
                    return;
                }
                let next = pending
                    .next_attempt(&self.cfg, &failure, now, &mut self.rng)
                    .filter(|_| self.stopping.is_none());
                if failure.error.http_status() == Some(429) {
                    let configured = self.cfg.per_host_request_rate;
                    self.hosts[pending.host].slow_down(configured, now);
                }
                if let Some(ra) = failure.error.retry_after()
                    && matches!(failure.error.http_status(), Some(429 | 503))
                {
                    self.pause_host(pending.host, now + ra.min(self.cfg.retry_max_delay));
                }
                if let Some(delay) = next {
                    self.emit(Event::Retrying {
                        id: pending.id,
                        attempt: pending.attempts,
                        reason: failure.error,
                        delay,
                    });
                    self.timers
                        .push(Reverse((now + delay, Timer::Retry(pending.seq))));
                    self.jobs.insert(pending.seq, pending);
                    self.retry_waiting += 1;
                } else {
                    let outcome = pending.take_failure(Status::Failed, failure.error);
                    let name = pending.job.id.take();
                    self.finish(outcome, name);
                }
            }
        }
    }

    fn pause_host(&mut self, host: usize, until: Instant) {
        let h = &mut self.hosts[host];
        if h.paused_until.is_none_or(|t| t < until) {
            h.paused_until = Some(until);
            self.timers.push(Reverse((until, Timer::Unpause(host))));
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, timer)) = self.timers.pop().expect("peeked");
            match timer {
                Timer::Retry(seq) => {
                    self.retry_waiting -= 1;
                    if let Some(p) = self.jobs.get(&seq) {
                        let rank = self.rank(p);
                        self.ready.push(rank);
                        self.queued += 1;
                    }
                }
                Timer::Wake(host) => {
                    let h = &mut self.hosts[host];
                    if h.wake_at.is_some_and(|w| w <= now) {
                        h.wake_at = None;
                    }
                    let n = self.cfg.per_host;
                    self.unpark(host, n);
                }
                Timer::Tick => {
                    if self.tick_at.is_some_and(|t| t <= now) {
                        self.tick_at = None;
                    }
                }
                Timer::Unpause(host) => {
                    let paused = self.hosts[host].paused_until.is_some_and(|t| t > now);
                    if !paused {
                        self.hosts[host].paused_until = None;
                        let n = self.cfg.per_host;
                        self.unpark(host, n);
                    }
                }
            }
        }
    }

    fn finish_unstarted(&mut self, mut pending: Pending, status: Status, error: Error) {
        let outcome = Outcome::not_started(pending.id, &pending.job, status, error);
        let name = pending.job.id.take();
        self.finish(outcome, name);
    }

    /// Reports an outcome and settles the jobs that depend on it, transitively.
    fn finish(&mut self, outcome: Outcome, name: Option<String>) {
        let failed = outcome.status == Status::Failed;
        let ok = outcome.status.is_success();
        // Settled before anything is told, so that the session never sees a job finish
        // while the dependents it releases still count as held.
        let cascade = self.settle(name, ok);
        self.summary.record(&outcome);
        self.emit(Event::Finished(Box::new(outcome)));
        for outcome in cascade {
            self.summary.record(&outcome);
            self.emit(Event::Finished(Box::new(outcome)));
        }
        // After the dependents: theirs is a dependency failure, not a fail-fast stop.
        if failed && self.cfg.fail_fast {
            self.stop("fail-fast: an earlier job failed");
        }
    }

    /// Records whether the job named `name` succeeded and releases the jobs waiting for
    /// it, or cancels them, transitively; returns the outcomes of the cancelled ones.
    fn settle(&mut self, name: Option<String>, ok: bool) -> Vec<Outcome> {
        let mut cascade = Vec::new();
        let mut settled: Vec<(String, bool)> = name.into_iter().map(|n| (n, ok)).collect();
        while let Some((name, ok)) = settled.pop() {
            let waiting = self.waiters.remove(&name).unwrap_or_default();
            self.results.insert(name.clone(), ok);
            for seq in waiting {
                if ok {
                    let b = self.blocked.get_mut(&seq);
                    if let Some(b) = b {
                        b.remaining -= 1;
                        if b.remaining == 0 {
                            let b = self.release(seq).expect("present");
                            self.enqueue(b.pending);
                        }
                    }
                } else if let Some(mut b) = self.release(seq) {
                    let e = Error::Dependency { id: name.clone() };
                    cascade.push(Outcome::not_started(
                        b.pending.id,
                        &b.pending.job,
                        Status::Cancelled,
                        e,
                    ));
                    if let Some(n) = b.pending.job.id.take() {
                        settled.push((n, false));
                    }
                }
            }
        }
        cascade
    }

    /// Ends job `id` cancelled at once if it is queued, parked, waiting to retry or held
    /// for its dependencies. One in flight stops at its next read and ends in `on_done`;
    /// one not yet arrived ends in `accept`: either way the request stays in
    /// `job_cancels` until then. The request for a job that already ended is dropped:
    /// ids arrive in order (a submit assigns them and sends under one lock), so an id
    /// below the next to arrive that is neither waiting nor running has ended.
    fn cancel_job(&mut self, id: JobId) {
        let found = self.jobs.iter().find(|(_, p)| p.id == id).map(|(s, _)| *s);
        let pending = if let Some(seq) = found {
            let before = self.timers.len();
            self.timers
                .retain(|Reverse((_, t))| !matches!(t, Timer::Retry(s) if *s == seq));
            if self.timers.len() < before {
                self.retry_waiting -= 1;
            } else {
                self.queued -= 1;
                self.ready.retain(|r| r.seq != seq);
                for h in &mut self.hosts {
                    h.parked.retain(|r| r.seq != seq);
                }
            }
            *self.jobs.remove(&seq).expect("found")
        } else {
            let found = self
                .blocked
                .iter()
                .find(|(_, b)| b.pending.id == id)
                .map(|(s, _)| *s);
            match found.and_then(|seq| self.release(seq)) {
                Some(b) => b.pending,
                None => {
                    if id.0 < self.next_arrival && !self.running.contains(&id) {
                        self.job_cancels.take(id);
                    }
                    return;
                }
            }
        };
        self.job_cancels.take(id);
        let mut p = pending;
        let e = Error::Cancelled {
            reason: CANCELLED_BY_ID.into(),
        };
        let outcome = if p.attempts > 0 {
            p.take_failure(Status::Cancelled, e)
        } else {
            Outcome::not_started(p.id, &p.job, Status::Cancelled, e)
        };
        let name = p.job.id.take();
        self.finish(outcome, name);
    }

    /// Starts no new job; ends every job not in flight as cancelled.
    fn stop(&mut self, reason: &'static str) {
        if self.stopping.is_some() {
            return;
        }
        log::info!("stopping: {reason}");
        self.stopping = Some(reason);
        self.ready.clear();
        for h in &mut self.hosts {
            h.parked.clear();
        }
        self.timers.clear();
        self.retry_waiting = 0;
        self.queued = 0;
        let mut left: Vec<Pending> = self.jobs.drain().map(|(_, p)| *p).collect();
        left.extend(self.blocked.drain().map(|(_, b)| b.pending));
        self.held.store(0, Ordering::SeqCst);
        left.sort_by_key(|p| p.seq);
        for mut p in left {
            let e = Error::Cancelled {
                reason: reason.into(),
            };
            let status = Status::Cancelled;
            let outcome = if p.attempts > 0 {
                p.take_failure(status, e)
            } else {
                Outcome::not_started(p.id, &p.job, status, e)
            };
            let name = p.job.id.take();
            self.finish(outcome, name);
        }
    }

    /// At the end of input, jobs still blocked wait for ids that never came.
    fn cancel_orphans(&mut self) {
        let mut left: Vec<Blocked> = self.blocked.drain().map(|(_, b)| b).collect();
        self.held.store(0, Ordering::SeqCst);
        left.sort_by_key(|b| b.pending.seq);
        for b in left {
            let missing = b
                .pending
                .job
                .after
                .iter()
                .find(|d| !self.results.contains_key(*d))
                .cloned()
                .unwrap_or_default();
            self.finish_unstarted(
                b.pending,
                Status::Cancelled,
                Error::Dependency { id: missing },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crossbeam_channel::{bounded, unbounded};

    use super::*;
    use crate::error::ErrorKind;
    use crate::fetch::{Failure, Success};

    /// A scheduler driven by hand: no threads, no network; the test plays the workers.
    struct Harness {
        s: Scheduler,
        work: Receiver<Work>,
        events: Receiver<Event>,
        running: HashMap<String, Box<Pending>>,
        next_id: u64,
        held: Arc<AtomicU64>,
        _senders: (Sender<Batch>, Sender<Ctl>, Sender<Back>),
    }

    fn harness(cfg: Config) -> Harness {
        let (input_tx, input_rx) = bounded(16);
        let (ctl_tx, ctl_rx) = unbounded();
        let (work_tx, work_rx) = unbounded();
        let (done_tx, done_rx) = unbounded();
        let (event_tx, event_rx) = unbounded();
        let held = Arc::new(AtomicU64::new(0));
        let links = Links {
            input: input_rx,
            ctl: ctl_rx,
            work: work_tx,
            done: done_rx,
            events: event_tx,
            job_cancels: Arc::default(),
        };
        let s = Scheduler::new(
            Arc::new(cfg),
            links,
            Arc::new(AtomicBool::new(false)),
            Arc::clone(&held),
        );
        Harness {
            s,
            work: work_rx,
            events: event_rx,
            running: HashMap::new(),
            next_id: 0,
            held,
            _senders: (input_tx, ctl_tx, done_tx),
        }
    }

    fn job(path: &str) -> Job {
        let (host, rest) = path.split_once('/').unwrap_or(("h", path));
        Job::new(format!("http://{host}/{rest}")).to_memory()
    }

    impl Harness {
        fn submit(&mut self, job: Job) {
            self.s.accept(JobId(self.next_id), job);
            self.next_id += 1;
        }

        /// Lets the scheduler hand out work; returns the URL paths started, in order.
        fn dispatch(&mut self) -> Vec<String> {
            self.s.fire_timers();
            self.s.dispatch();
            let mut started = Vec::new();
            for work in self.work.try_iter() {
                let Work::Attempt(task) = work else {
                    panic!("no file is split here")
                };
                let url = task.pending.job.url.clone();
                let path = url.trim_start_matches("http://").to_string();
                started.push(path.clone());
                self.running.insert(path, task.pending);
            }
            started
        }

        fn answer(&mut self, path: &str, result: Result<Success, Failure>) {
            let pending = self.running.remove(path).expect("the job is running");
            self.s.on_done(Done { pending, result });
        }

        fn succeed(&mut self, path: &str) {
            let ok = Success {
                http_status: Some(200),
                bytes: 0,
                sha256: None,
                verified: None,
                resumed_from: None,
                redirects: Vec::new(),
                body: Some(Vec::new()),
                skipped: false,
                headers: Vec::new(),
                placed_at: None,
                connections: 1,
            };
            self.answer(path, Ok(ok));
        }

        fn fail(&mut self, path: &str, code: u16, retry_after: Option<Duration>) {
            let failure = Failure {
                error: Error::Status { code, retry_after },
                http_status: Some(code),
                redirects: Vec::new(),
                partial: None,
                grew: false,
                headers: Box::default(),
            };
            self.answer(path, Err(failure));
        }

        /// A connection that broke mid-body with the part on disk `grown` to `kept` bytes.
        fn cut(&mut self, path: &str, kept: u64, grown: bool) {
            let failure = Failure {
                error: Error::Network {
                    message: "connection reset".into(),
                    source: None,
                },
                http_status: Some(200),
                redirects: Vec::new(),
                partial: Some(kept),
                grew: grown,
                headers: Box::default(),
            };
            self.answer(path, Err(failure));
        }

        /// Outcomes reported since the last call: path, status, error kind, attempts.
        fn finished(&self) -> Vec<(String, Status, Option<ErrorKind>, u32)> {
            self.events
                .try_iter()
                .filter_map(|note| match note {
                    Event::Finished(o) => Some((
                        o.url.trim_start_matches("http://").to_string(),
                        o.status,
                        o.error.as_ref().map(Error::kind),
                        o.attempts,
                    )),
                    _ => None,
                })
                .collect()
        }
    }

    #[test]
    fn a_429_halves_a_host_rate_which_grows_back_a_quarter_every_5_s() {
        let t0 = Instant::now();
        let mut host = Host::default();
        host.slow_down(Some(20.0), t0);
        assert_eq!(host.rate(Some(20.0), t0), Some(10.0));
        // A second 429 right after answers a request sent before the cut.
        host.slow_down(Some(20.0), t0 + Duration::from_millis(500));
        assert_eq!(host.rate(Some(20.0), t0), Some(10.0));
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(host.rate(Some(20.0), at(5)), Some(12.5));
        assert_eq!(host.rate(Some(20.0), at(15)), Some(19.53125));
        assert_eq!(host.rate(Some(20.0), at(20)), Some(20.0));
        assert!(host.slow.is_none());
        // Without a configured rate: half the measured rate, over after twice that.
        let mut host = Host::default();
        for i in 0..11 {
            host.starts.push_back(t0 + Duration::from_millis(100 * i));
        }
        let now = t0 + Duration::from_secs(1);
        host.slow_down(None, now);
        let rate = host.rate(None, now).unwrap();
        assert!((rate - 5.0).abs() < 1e-9, "{rate}");
        assert!(host.rate(None, now + Duration::from_secs(30)).is_some());
        assert_eq!(host.rate(None, now + Duration::from_secs(35)), None);
    }

    #[test]
    fn a_job_cancelled_by_id_while_waiting_ends_at_once_and_the_counts_stay_right() {
        let mut h = harness(Config {
            workers: 2,
            per_host: 1,
            retry_base_delay: Duration::from_secs(60),
            retry_max_delay: Duration::from_secs(60),
            ..Config::default()
        });
        h.submit(job("a/1"));
        h.submit(job("a/2"));
        h.submit(job("b/1").id("b"));
        h.submit(job("c/1").after("b"));
        assert_eq!(h.dispatch(), ["a/1", "b/1"]);
        h.fail("b/1", 503, None);
        // a/2 is parked behind a/1, b/1 waits to retry, c/1 is held for b.
        for id in [1, 2] {
            h.s.cancel_job(JobId(id));
        }
        let cancelled = Some(ErrorKind::Cancelled);
        assert_eq!(
            h.finished(),
            [
                ("a/2".into(), Status::Cancelled, cancelled, 0),
                ("b/1".into(), Status::Cancelled, cancelled, 1),
                (
                    "c/1".into(),
                    Status::Cancelled,
                    Some(ErrorKind::Dependency),
                    0
                ),
            ]
        );
        assert_eq!(h.held.load(Ordering::SeqCst), 0);
        h.succeed("a/1");
        assert_eq!(h.dispatch(), Vec::<String>::new());
        assert!(h.s.is_idle());
        assert!(!h.s.job_cancels.contains(JobId(1)));
    }

    #[test]
    fn a_cancel_request_outlives_no_job() {
        let mut h = harness(Config::default());
        // Asked before its job arrives: the job ends cancelled when it does.
        h.s.job_cancels.request(JobId(0));
        h.s.cancel_job(JobId(0));
        h.submit(job("a"));
        let cancelled = Some(ErrorKind::Cancelled);
        assert_eq!(
            h.finished(),
            [("h/a".into(), Status::Cancelled, cancelled, 0)]
        );
        // Asked while running: it stays for the attempt to see.
        h.submit(job("b"));
        assert_eq!(h.dispatch(), ["h/b"]);
        h.s.job_cancels.request(JobId(1));
        h.s.cancel_job(JobId(1));
        assert!(h.s.job_cancels.contains(JobId(1)));
        h.succeed("h/b");
        // Asked after it ended: dropped, so attempts stop checking for it.
        h.s.job_cancels.request(JobId(1));
        h.s.cancel_job(JobId(1));
        assert!(!h.s.job_cancels.contains(JobId(1)));
        assert_eq!(h.finished(), [("h/b".into(), Status::Ok, None, 1)]);
    }

    #[test]
    fn a_full_host_parks_its_jobs_without_blocking_other_hosts() {
        let mut h = harness(Config {
            workers: 4,
            per_host: 1,
            ..Config::default()
        });
        for p in ["a/1", "a/2", "a/3", "b/1"] {
            h.submit(job(p));
        }
        assert_eq!(h.dispatch(), ["a/1", "b/1"]);
        assert_eq!(h.dispatch(), Vec::<String>::new());
        h.succeed("a/1");
        assert_eq!(h.dispatch(), ["a/2"]);
        h.succeed("b/1");
        assert_eq!(h.dispatch(), Vec::<String>::new());
        h.succeed("a/2");
        assert_eq!(h.dispatch(), ["a/3"]);
    }

    #[test]
    fn ready_jobs_start_by_priority_then_submission_order() {
        let mut h = harness(Config {
            workers: 1,
            ..Config::default()
        });
        h.submit(job("x"));
        h.submit(job("y").priority(5));
        h.submit(job("z"));
        h.submit(job("w").priority(9));
        h.submit(job("v").priority(-1));
        let mut order = Vec::new();
        for _ in 0..5 {
            let started = h.dispatch();
            assert_eq!(started.len(), 1);
            h.succeed(&started[0]);
            order.push(started[0].clone());
        }
        assert_eq!(order, ["h/w", "h/y", "h/x", "h/z", "h/v"]);
    }

    #[test]
    fn serial_waits_for_a_retry_and_ignores_priority() {
        let mut h = harness(Config {
            workers: 1,
            serial: true,
            retry_base_delay: Duration::ZERO,
            ..Config::default()
        });
        h.submit(job("first"));
        h.submit(job("second").priority(9));
        assert_eq!(h.dispatch(), ["h/first"]);
        h.fail("h/first", 503, None);
        // The retry is due at once, but until it runs nothing else may start.
        h.s.dispatch();
        assert!(h.work.is_empty());
        assert_eq!(h.dispatch(), ["h/first"]);
        h.succeed("h/first");
        assert_eq!(h.dispatch(), ["h/second"]);
    }

    /// A server restarting mid-body: the attempt that grew the part does not use up a
    /// retry, and the job's cancelled or failed line reports the bytes kept.
    #[test]
    fn an_attempt_that_grew_the_part_does_not_use_up_a_retry() {
        let mut h = harness(Config {
            workers: 1,
            retries: 1,
            retry_base_delay: Duration::ZERO,
            ..Config::default()
        });
        h.submit(job("f"));
        assert_eq!(h.dispatch(), ["h/f"]);
        h.cut("h/f", 1000, true);
        assert_eq!(h.dispatch(), ["h/f"]);
        h.cut("h/f", 2000, true);
        // Progress refunds at most `retries` attempts: 1 + 1 + 1 here.
        assert_eq!(h.dispatch(), ["h/f"]);
        h.cut("h/f", 2000, false);
        let done: Vec<_> = h.events.try_iter().collect();
        let outcome = done
            .iter()
            .find_map(|n| match n {
                Event::Finished(o) => Some(o),
                _ => None,
            })
            .expect("the job ended");
        assert_eq!(outcome.status, Status::Failed);
        assert_eq!(outcome.attempts, 3);
        assert_eq!(outcome.bytes, 2000, "the bytes kept in the part");
    }

    #[test]
    fn serial_does_not_pass_a_job_whose_host_is_paused() {
        let mut h = harness(Config {
            workers: 1,
            serial: true,
            retries: 0,
            ..Config::default()
        });
        h.submit(job("a/1"));
        h.submit(job("a/2"));
        h.submit(job("b/1"));
        assert_eq!(h.dispatch(), ["a/1"]);
        h.fail("a/1", 503, Some(Duration::from_secs(60)));
        assert_eq!(
            h.finished(),
            [("a/1".into(), Status::Failed, Some(ErrorKind::Http), 1)]
        );
        assert_eq!(h.dispatch(), Vec::<String>::new(), "b/1 must not pass a/2");
    }

    #[test]
    fn a_failed_dependency_cancels_its_dependents_transitively() {
        let mut h = harness(Config::default());
        h.submit(job("a").id("a"));
        h.submit(job("b").id("b").after("a"));
        h.submit(job("c").id("c").after("b"));
        h.submit(job("free"));
        assert_eq!(h.held.load(Ordering::SeqCst), 2);
        assert_eq!(h.dispatch(), ["h/a", "h/free"]);
        h.fail("h/a", 404, None);
        let dep = Some(ErrorKind::Dependency);
        assert_eq!(
            h.finished(),
            [
                ("h/a".into(), Status::Failed, Some(ErrorKind::Http), 1),
                ("h/b".into(), Status::Cancelled, dep, 0),
                ("h/c".into(), Status::Cancelled, dep, 0),
            ]
        );
        assert_eq!(h.held.load(Ordering::SeqCst), 0);
        // A job naming a cancelled one, submitted later, ends at once.
        h.submit(job("d").after("c"));
        assert_eq!(h.finished(), [("h/d".into(), Status::Cancelled, dep, 0)]);
        assert_eq!(h.dispatch(), Vec::<String>::new());
    }

    #[test]
    fn dependents_start_only_after_every_named_job_succeeded() {
        let mut h = harness(Config::default());
        h.submit(job("both").after("x").after("y"));
        h.submit(job("x").id("x"));
        h.submit(job("y").id("y"));
        assert_eq!(h.dispatch(), ["h/x", "h/y"]);
        h.succeed("h/x");
        assert_eq!(h.dispatch(), Vec::<String>::new());
        h.succeed("h/y");
        assert_eq!(h.held.load(Ordering::SeqCst), 0);
        assert_eq!(h.dispatch(), ["h/both"]);
    }

    #[test]
    fn fail_fast_cancels_queued_retrying_and_later_jobs() {
        let mut h = harness(Config {
            workers: 3,
            fail_fast: true,
            retry_base_delay: Duration::from_secs(60),
            retry_max_delay: Duration::from_secs(60),
            ..Config::default()
        });
        h.submit(job("flaky"));
        h.submit(job("bad").id("bad"));
        h.submit(job("slow"));
        h.submit(job("after-bad").after("bad"));
        h.submit(job("queued"));
        assert_eq!(h.dispatch(), ["h/flaky", "h/bad", "h/slow"]);
        h.fail("h/flaky", 503, Some(Duration::from_secs(60)));
        assert_eq!(h.dispatch(), Vec::<String>::new(), "host h is paused");
        h.fail("h/bad", 404, None);
        let cancelled = Some(ErrorKind::Cancelled);
        assert_eq!(
            h.finished(),
            [
                ("h/bad".into(), Status::Failed, Some(ErrorKind::Http), 1),
                (
                    "h/after-bad".into(),
                    Status::Cancelled,
                    Some(ErrorKind::Dependency),
                    0
                ),
                ("h/flaky".into(), Status::Cancelled, cancelled, 1),
                ("h/queued".into(), Status::Cancelled, cancelled, 0),
            ]
        );
        h.submit(job("late"));
        assert_eq!(
            h.finished(),
            [("h/late".into(), Status::Cancelled, cancelled, 0)]
        );
        assert_eq!(h.dispatch(), Vec::<String>::new());
        // The job in flight finishes on its own.
        h.succeed("h/slow");
        assert_eq!(h.finished(), [("h/slow".into(), Status::Ok, None, 1)]);
        assert!(h.s.is_idle());
    }
}
