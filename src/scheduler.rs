//! The scheduler: one thread that owns every scheduling decision.
//!
//! It reads submitted jobs (never more than `lookahead` queued at once, so memory stays
//! flat however long the list), holds jobs whose dependencies have not finished, hands a
//! worker only a job whose host has room (so a saturated host never blocks others), times
//! retries and per-host back-off, and turns attempt results into outcomes. Workers never
//! wait for a slot and never decide anything.
//!
//! Ordering: among ready jobs, higher priority first, then submission order. Serial mode
//! is the same loop with one worker and one more rule: nothing starts while a job is in
//! flight or waiting to retry.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, never, select};

use crate::config::Config;
use crate::error::Error;
use crate::event::Event;
use crate::job::{Job, JobId};
use crate::plan::host_key;
use crate::report::{Outcome, Status};
use crate::retry;
use crate::worker::{Done, Pending, Task};

/// What travels on the event channel: events for observers, and internal notes.
pub(crate) enum Note {
    Event(Event),
    /// The feeder of [`crate::Pool::run_with`] has submitted its last job.
    FeederDone,
}

/// Control messages from the session.
pub(crate) enum Ctl {
    Cancel,
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
    /// Jobs popped while the host was full or paused, in the order they were popped.
    parked: VecDeque<Ready>,
    paused_until: Option<Instant>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Retry(u64),
    Unpause(usize),
}

/// A job held until the jobs it names have finished.
struct Blocked {
    pending: Pending,
    remaining: usize,
}

pub(crate) struct Scheduler {
    cfg: Arc<Config>,
    input: Receiver<(JobId, Job)>,
    input_open: bool,
    ctl: Receiver<Ctl>,
    work: Sender<Task>,
    done: Receiver<Done>,
    events: Sender<Note>,
    cancelled: Arc<AtomicBool>,
    seq: u64,
    host_ids: HashMap<String, usize>,
    hosts: Vec<Host>,
    ready: BinaryHeap<Ready>,
    /// Jobs that are ready, parked or waiting to retry, by sequence number.
    jobs: HashMap<u64, Pending>,
    queued: usize,
    in_flight: usize,
    retry_waiting: usize,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    blocked: HashMap<u64, Blocked>,
    waiters: HashMap<String, Vec<u64>>,
    /// Whether each named job succeeded, kept for jobs that may still name it.
    results: HashMap<String, bool>,
    stopping: Option<&'static str>,
    rng: retry::Jitter,
}

impl Scheduler {
    pub(crate) fn new(
        cfg: Arc<Config>,
        input: Receiver<(JobId, Job)>,
        ctl: Receiver<Ctl>,
        work: Sender<Task>,
        done: Receiver<Done>,
        events: Sender<Note>,
        cancelled: Arc<AtomicBool>,
    ) -> Self {
        Scheduler {
            cfg,
            input,
            input_open: true,
            ctl,
            work,
            done,
            events,
            cancelled,
            seq: 0,
            host_ids: HashMap::new(),
            hosts: Vec::new(),
            ready: BinaryHeap::new(),
            jobs: HashMap::new(),
            queued: 0,
            in_flight: 0,
            retry_waiting: 0,
            timers: BinaryHeap::new(),
            blocked: HashMap::new(),
            waiters: HashMap::new(),
            results: HashMap::new(),
            stopping: None,
            rng: retry::Jitter::seeded(),
        }
    }

    pub(crate) fn run(mut self) {
        let never_input = never::<(JobId, Job)>();
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
                    Ok((id, job)) => self.accept(id, job),
                    Err(_) => self.input_open = false,
                },
                recv(self.done) -> msg => {
                    if let Ok(done) = msg {
                        self.on_done(done);
                    }
                }
                recv(ctl) -> msg => match msg {
                    Ok(Ctl::Cancel) => self.stop("interrupted"),
                    Err(_) => ctl_open = false,
                },
                default(wait) => {}
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.queued == 0 && self.in_flight == 0 && self.retry_waiting == 0
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(Note::Event(event));
    }

    fn host_index(&mut self, url: &str) -> usize {
        let key = host_key(url);
        if let Some(&i) = self.host_ids.get(&key) {
            return i;
        }
        self.hosts.push(Host::default());
        self.host_ids.insert(key, self.hosts.len() - 1);
        self.hosts.len() - 1
    }

    fn accept(&mut self, id: JobId, job: Job) {
        self.emit(Event::Queued {
            id,
            url: job.url.clone(),
        });
        if let Err(e) = job.check() {
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
            self.blocked.insert(seq, Blocked { pending, remaining });
        } else {
            self.enqueue(pending);
        }
    }

    fn enqueue(&mut self, pending: Pending) {
        self.ready.push(Ready {
            priority: pending.job.priority,
            seq: pending.seq,
        });
        self.jobs.insert(pending.seq, pending);
        self.queued += 1;
    }

    fn dispatch(&mut self) {
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
                host.parked.push_back(next);
                continue;
            }
            host.in_flight += 1;
            let mut pending = self.jobs.remove(&next.seq).expect("queued job is stored");
            self.queued -= 1;
            pending.attempts += 1;
            let first = *pending.first_start.get_or_insert(now);
            let deadline = self.cfg.max_time.map(|t| first + t);
            self.emit(Event::Started {
                id: pending.id,
                attempt: pending.attempts,
            });
            self.in_flight += 1;
            if let Err(err) = self.work.send(Task { pending, deadline }) {
                // Workers are gone only if they panicked; end the job rather than lose it.
                let pending = err.into_inner().pending;
                self.in_flight -= 1;
                self.hosts[host_idx].in_flight -= 1;
                let e = Error::Cancelled {
                    reason: "worker threads stopped".into(),
                };
                self.finish_unstarted(pending, Status::Failed, e);
            }
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
        self.hosts[pending.host].in_flight -= 1;
        self.unpark(pending.host, 1);
        match result {
            Ok(success) => {
                let outcome = pending.outcome_success(success);
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
                    let outcome = pending.outcome_failure(Status::Cancelled, e);
                    let name = pending.job.id.take();
                    self.finish(outcome, name);
                    return;
                }
                let deadline = self
                    .cfg
                    .max_time
                    .zip(pending.first_start)
                    .map(|(t, s)| s + t);
                let retryable = failure.error.is_transient()
                    && pending.attempts <= self.cfg.retries
                    && self.stopping.is_none();
                let delay = retry::delay(
                    &self.cfg,
                    pending.attempts,
                    failure.error.retry_after(),
                    &mut self.rng,
                );
                let fits = deadline.is_none_or(|d| now + delay < d);
                if let Some(ra) = failure.error.retry_after()
                    && matches!(failure.error.http_status(), Some(429 | 503))
                {
                    self.pause_host(pending.host, now + ra.min(self.cfg.retry_max_delay));
                }
                pending.absorb(&failure);
                if retryable && fits {
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
                    let outcome = pending.outcome_failure(Status::Failed, failure.error);
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
                        self.ready.push(Ready {
                            priority: p.job.priority,
                            seq,
                        });
                        self.queued += 1;
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
        self.emit(Event::Finished(Box::new(outcome)));
        if failed && self.cfg.fail_fast {
            self.stop("fail-fast: an earlier job failed");
        }
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
                            let b = self.blocked.remove(&seq).expect("present");
                            self.enqueue(b.pending);
                        }
                    }
                } else if let Some(mut b) = self.blocked.remove(&seq) {
                    let e = Error::Dependency { id: name.clone() };
                    let outcome =
                        Outcome::not_started(b.pending.id, &b.pending.job, Status::Cancelled, e);
                    self.emit(Event::Finished(Box::new(outcome)));
                    if let Some(n) = b.pending.job.id.take() {
                        settled.push((n, false));
                    }
                }
            }
        }
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
        let mut left: Vec<Pending> = self.jobs.drain().map(|(_, p)| p).collect();
        left.extend(self.blocked.drain().map(|(_, b)| b.pending));
        left.sort_by_key(|p| p.seq);
        for mut p in left {
            let e = Error::Cancelled {
                reason: reason.into(),
            };
            let status = Status::Cancelled;
            let outcome = if p.attempts > 0 {
                p.outcome_failure(status, e)
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
