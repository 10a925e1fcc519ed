//! The public face of the machinery: a [`Pool`] runs jobs; a [`Session`] streams them.
//!
//! Threads are started in one place ([`Pool::start`]) and joined in one place
//! ([`Session`]'s drop): one scheduler thread and `workers` worker threads, joined by
//! bounded crossbeam channels. Everything blocks; nothing needs an async runtime.
//!
//! A run ends when no submitter is left and nothing is queued, waiting or in flight.
//! [`Pool::run_with`] handles that for you, follow-up jobs included.

pub(crate) mod messages;
pub(crate) mod retry;
pub(crate) mod scheduler;
mod session;
pub(crate) mod worker;

pub use session::{CancelHandle, Session, Submitter};
use session::{Counters, Gate};

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::{self};
use std::time::Instant;

use crossbeam_channel::{bounded, never, select, unbounded};

use crate::config::{Config, PoolBuilder};
use crate::error::Error;
use crate::event::Event;
use crate::fetch::{self, JobCancels};
use crate::job::{Job, JobId};
use crate::lock::{self, OutputLock};
use crate::net::ratelimit::RateLimiter;
use crate::net::{agent, reuse};
use crate::output::check::Precheck;
use crate::plan::PlanChecker;
use crate::pool::messages::{Back, Batch, Ctl, Pending, Work};
use crate::report::{Outcome, Report, Status, Summary};
use crate::shard::Shard;

/// A configured pool of workers. Cheap to keep; threads exist only while a run does.
///
/// ```no_run
/// use fetchpool::{Job, Pool};
/// let pool = Pool::builder().workers(4).output_dir("out").build()?;
/// let report = pool.run(vec![
///     Job::new("http://127.0.0.1:8080/a.bin"),
///     Job::new("http://127.0.0.1:8080/b.bin").to_file("sub/b.bin"),
/// ])?;
/// assert!(report.summary.all_succeeded());
/// # Ok::<(), fetchpool::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pool {
    config: Arc<Config>,
    /// The agent the pool was built with: it proves the settings at build time, and a
    /// session uses it only when it cannot build its own. Never shut down.
    agent: ureq::Agent,
    /// The agents' TLS side (roots, client certificate), read from its files once, at
    /// build: every session's agent shares it.
    tls: ureq::tls::TlsConfig,
    /// Which workers opened a connection for their current request (see
    /// [`reuse`](crate::net::reuse)), shared with the agent's connector chain.
    opened: Arc<reuse::Opened>,
    /// The output directory's lock, shared by clones and by every run of this pool.
    lock: Arc<lock::Shared>,
    /// The attempt path's state (hashing threads, what the disk supports), shared by
    /// clones and by every run of this pool.
    attempts: Arc<fetch::Shared>,
}

/// The parts of the configuration that shape the agent's connections.
fn agent_settings(config: &Config) -> agent::Settings<'_> {
    agent::Settings {
        workers: config.workers,
        ca_certs: &config.ca_certs,
        system_roots: config.system_roots,
        client_cert: config
            .client_cert
            .as_deref()
            .map(|c| (c, config.client_key.as_deref())),
        connect_timeout: config.connect_timeout,
        idle_timeout: config.idle_timeout,
        user_agent: &config.user_agent,
    }
}

impl PoolBuilder {
    /// Checks the configuration (limits, headers, proxy, CA files, output directory) and
    /// makes the pool. Fails with [`Error::Config`] or [`Error::Io`] before any request.
    pub fn build(self) -> Result<Pool, Error> {
        Pool::new(self.validate()?)
    }
}

impl Pool {
    /// A builder with every default.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    fn new(config: Config) -> Result<Pool, Error> {
        let opened = Arc::default();
        // Built here so that a bad CA or certificate file fails `build`, before any request.
        let tls = agent::tls_config(&agent_settings(&config))?;
        let agent = agent::build(&agent_settings(&config), &tls, &opened)?;
        Ok(Pool {
            config: Arc::new(config),
            agent,
            tls,
            opened,
            lock: Arc::default(),
            attempts: Arc::default(),
        })
    }

    /// Takes the output directory for this pool's runs, so that no other run (another
    /// process, or another pool) can write into it while the returned handle lives; runs
    /// of this pool and its clones go on under it. Fails with [`Error::OutputInUse`],
    /// naming the holder's pid, when another run has it.
    ///
    /// Runs take the lock themselves ([`Pool::run`] before its first request, a
    /// [`Session`] at its first file job); call this to learn of a busy directory before
    /// starting one, or to hold it across several. Memory jobs need no lock. The lock is
    /// an exclusive `flock` on `.fetchpool/lock` in the output directory, released when
    /// the last handle drops or the process dies (Linux; elsewhere runs are not locked).
    pub fn lock_output(&self) -> Result<OutputLock, Error> {
        self.lock.acquire(&self.config.output_dir, None)
    }

    /// [`Pool::lock_output`] for a run of one shard of a list: the shards of one list
    /// (each its own process or machine) write disjoint paths and may hold the directory
    /// at once, while a run of the whole list, or of the same shard, may not. A shared
    /// `flock` on `.fetchpool/lock` and an exclusive one on
    /// `.fetchpool/lock-shard-K-of-N`. Take it before the pool's first run: a run takes
    /// the lock this pool holds.
    pub fn lock_output_shard(&self, shard: Shard) -> Result<OutputLock, Error> {
        self.lock.acquire(&self.config.output_dir, Some(shard))
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs one job on the calling thread, retries included, and returns its outcome: the
    /// index file or API call before a run, without starting a scheduler or workers. The
    /// job is checked as [`Pool::run`] checks each one; it has the pool's settings and
    /// its own limits, a file job takes the output directory's lock for the call, and no
    /// events are sent. A retry's wait blocks the caller.
    ///
    /// ```no_run
    /// use fetchpool::{Job, Pool};
    /// let pool = Pool::builder().output_dir("mirror").build()?;
    /// let index = pool.fetch(Job::new("http://127.0.0.1:8080/index.json").to_memory());
    /// let names: Vec<String> = index.json().expect("the index lists file names");
    /// let report = pool.run(names.iter().map(|n| Job::new(format!("http://127.0.0.1:8080/{n}"))))?;
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn fetch(&self, job: Job) -> Outcome {
        let id = JobId(0);
        let cfg = &self.config;
        if let Err(e) = PlanChecker::check(&job, &cfg.output_dir) {
            return Outcome::not_started(id, &job, Status::Failed, e);
        }
        let cancelled = AtomicBool::new(false);
        let job_cancels = JobCancels::default();
        let precheck = Precheck::for_output(&cfg.output_dir, placed_store(cfg));
        let output_lock = lock::Lazy::new(Arc::clone(&self.lock), cfg.output_dir.clone());
        let limiter = cfg.limit_rate.map(RateLimiter::new);
        let env = fetch::Env {
            config: cfg,
            agent: &self.agent,
            opened: &self.opened,
            cancelled: &cancelled,
            job_cancels: &job_cancels,
            precheck: &precheck,
            output_lock: &output_lock,
            limiter: limiter.as_ref(),
            shared: &self.attempts,
            emit: &|_| {},
            // One request on the calling thread: a split file gets no helpers.
            offer: &|_| {},
        };
        let mut scratch = fetch::Scratch::new();
        let mut rng = retry::Jitter::seeded();
        let mut pending = Pending::new(id, 0, 0, job);
        loop {
            pending.attempts += 1;
            let now = Instant::now();
            pending.first_start.get_or_insert(now);
            let input = fetch::Input {
                id,
                job: &pending.job,
                attempt: pending.attempts,
                host: 0,
                deadline: pending.deadline(cfg),
            };
            match fetch::attempt(&env, &input, &mut scratch) {
                Ok(success) => return pending.take_success(success),
                Err(failure) => {
                    match pending.next_attempt(cfg, &failure, Instant::now(), &mut rng) {
                        Some(delay) => thread::sleep(delay),
                        None => return pending.take_failure(Status::Failed, failure.error),
                    }
                }
            }
        }
    }

    /// Checks `jobs` as [`Pool::run`] does before any request, without running them: each
    /// job on its own (URL, headers, path inside the output directory) and the list as a
    /// whole (two jobs writing one file, two jobs with one id, unknown dependency ids,
    /// cycles), after the renaming of URL-derived names that `run` makes
    /// ([`Namer`](crate::Namer)). Every problem is one line of the [`Error::Config`].
    ///
    /// ```
    /// use fetchpool::{Job, Pool};
    /// let dir = std::env::temp_dir().join("fetchpool-check-doc");
    /// let pool = Pool::builder().output_dir(&dir).build()?;
    /// let e = pool
    ///     .check(&[
    ///         Job::new("http://127.0.0.1:8080/a").to_file("x.bin"),
    ///         Job::new("http://127.0.0.1:8080/b").to_file("x.bin"),
    ///     ])
    ///     .unwrap_err();
    /// assert!(e.to_string().contains("write the same file"), "{e}");
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn check(&self, jobs: &[Job]) -> Result<crate::plan::Plan, Error> {
        match unique_names(jobs) {
            Some(renamed) => PlanChecker::check_all(&renamed, &self.config.output_dir),
            None => PlanChecker::check_all(jobs, &self.config.output_dir),
        }
    }

    /// Runs `jobs` to the end and returns every outcome.
    ///
    /// The whole list is checked first (two jobs writing one file, unknown dependency
    /// ids, cycles): a problem is an [`Error::Config`] naming the jobs, and nothing is
    /// requested. Jobs whose file names come from their URLs and would write one file
    /// are [renamed](crate::Namer) instead. Individual failures are outcomes, not errors.
    pub fn run(&self, jobs: impl IntoIterator<Item = Job>) -> Result<Report, Error> {
        let mut jobs: Vec<Job> = jobs.into_iter().collect();
        if let Some(renamed) = unique_names(&jobs) {
            jobs = renamed;
        }
        self.check(&jobs)?;
        let _lock = if jobs.iter().any(|j| j.path().is_some()) {
            Some(self.lock_output()?)
        } else {
            None
        };
        let mut outcomes = Vec::with_capacity(jobs.len());
        let summary = self.run_with_owned(jobs, |event, _| {
            if let Event::Finished(outcome) = event {
                outcomes.push(*outcome);
            }
        });
        Ok(Report { summary, outcomes })
    }

    /// Runs `jobs`, streamed from the iterator on a feeder thread, and calls `observer`
    /// with every event on the calling thread. The observer may submit follow-up jobs
    /// through the [`Submitter`] it is given; the run ends once the iterator is exhausted
    /// and every job, follow-ups included, has finished.
    ///
    /// Jobs are checked as they arrive, by the checks of [`Pool::check`] that one job at a
    /// time can make: a job that is invalid, or that writes a file or has an id that an
    /// earlier job of the run has, ends `failed` with kind `config` before any request
    /// (the earlier job runs). To refuse a whole list before the first request, call
    /// [`Pool::check`] first, as [`Pool::run`] does. Once nothing is
    /// left but jobs waiting for ids that no job in the run can supply (never submitted,
    /// or a cycle), and the observer submits nothing more, those jobs end `cancelled`
    /// with kind `dependency` rather than wait forever.
    pub fn run_with<I, F>(&self, jobs: I, observer: F) -> Summary
    where
        I: IntoIterator<Item = Job>,
        I::IntoIter: Send,
        F: FnMut(&Event, &Submitter),
    {
        self.run_with_cancel(jobs, |_| {}, observer)
    }

    /// [`Pool::run_with`], handing `on_start` a [`CancelHandle`] for this run before the
    /// first job is submitted: what a Ctrl-C handler needs.
    pub fn run_with_cancel<I, S, F>(&self, jobs: I, on_start: S, mut observer: F) -> Summary
    where
        I: IntoIterator<Item = Job>,
        I::IntoIter: Send,
        S: FnOnce(CancelHandle),
        F: FnMut(&Event, &Submitter),
    {
        self.run_owned(jobs, on_start, |event, submitter| {
            observer(&event, submitter)
        })
    }

    /// [`Pool::run_with`], handing the observer each event by value: an outcome's body
    /// moves out of it ([`Outcome::take_body`](crate::Outcome::take_body), or the whole
    /// outcome kept) without a copy.
    ///
    /// ```no_run
    /// use fetchpool::{Event, Job, Pool};
    /// let pool = Pool::builder().build()?;
    /// let mut bodies = Vec::new();
    /// pool.run_with_owned([Job::new("http://127.0.0.1:8080/api/a").to_memory()], |event, _| {
    ///     if let Event::Finished(mut outcome) = event {
    ///         bodies.extend(outcome.take_body());
    ///     }
    /// });
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn run_with_owned<I, F>(&self, jobs: I, observer: F) -> Summary
    where
        I: IntoIterator<Item = Job>,
        I::IntoIter: Send,
        F: FnMut(Event, &Submitter),
    {
        self.run_owned(jobs, |_| {}, observer)
    }

    /// The one streamed run behind `run`, `run_with`, `run_with_cancel` and
    /// `run_with_owned`.
    fn run_owned<I, S, F>(&self, jobs: I, on_start: S, mut observer: F) -> Summary
    where
        I: IntoIterator<Item = Job>,
        I::IntoIter: Send,
        S: FnOnce(CancelHandle),
        F: FnMut(Event, &Submitter),
    {
        let mut session = self.start();
        on_start(session.cancel_handle());
        let feeder = session.submitter();
        let precheck = Arc::clone(&session.precheck);
        let cancelled = Arc::clone(&session.cancelled);
        let output_dir = self.config.output_dir.clone();
        let jobs = jobs.into_iter();
        let (fed_tx, fed_rx) = bounded::<()>(1);
        let events = session.events.clone();
        thread::scope(|scope| {
            scope.spawn(move || {
                // Files already right are found a batch at a time, hashed in parallel.
                let mut jobs = precheck.stream(&output_dir, &cancelled, jobs);
                loop {
                    let batch: Vec<Job> = jobs.by_ref().take(FEED_BATCH).collect();
                    if batch.is_empty() || feeder.submit_all(batch).is_err() {
                        break;
                    }
                }
                drop(feeder);
                drop(fed_tx);
            });
            // Outcomes the observer has seen: the run may end only once it saw them all,
            // since a follow-up it submits for the last one must still be taken.
            let mut finished: u64 = 0;
            let never_fed = never::<()>();
            let mut fed = &fed_rx;
            loop {
                if fed.same_channel(&never_fed) && session.is_settled(finished) {
                    session.close();
                }
                select! {
                    recv(events) -> event => {
                        let Ok(event) = event else { break };
                        if let Event::Finished(_) = event {
                            finished += 1;
                        }
                        if let Some(own) = session.own.as_ref() {
                            observer(event, own);
                        } else {
                            observer(event, &session.detached);
                        }
                    }
                    recv(fed) -> _ => fed = &never_fed,
                }
            }
        });
        session.finish_summary()
    }

    /// Starts the threads and returns a [`Session`] to submit jobs to and read events
    /// from. Call [`Session::close`] when you will submit no more. Each submitted job is
    /// checked as [`Pool::run_with`] checks them, against the session's earlier jobs.
    pub fn start(&self) -> Session {
        let cfg = Arc::clone(&self.config);
        // Each session has an agent (a connection pool) of its own: cancelling shuts it
        // down to interrupt blocked reads, which must not reach another session or a
        // later run. Should rebuilding fail, the session shares the pool's agent and its
        // cancel only sets the flag, never shutting it.
        let (agent, own_agent) = match agent::build(&agent_settings(&cfg), &self.tls, &self.opened)
        {
            Ok(agent) => (agent, true),
            Err(e) => {
                log::warn!("{e}; this session shares the pool's connections");
                (self.agent.clone(), false)
            }
        };
        // Capacity in batches: the feeder sends up to 64 jobs per message.
        let (input_tx, input_rx) = bounded::<Batch>(16);
        let (work_tx, work_rx) = bounded::<Work>(cfg.workers);
        // A worker may offer a split file before its attempt's result: two each at most.
        let (done_tx, done_rx) = bounded::<Back>(2 * cfg.workers);
        let (event_tx, event_rx) = unbounded::<Event>();
        let (ctl_tx, ctl_rx) = unbounded::<Ctl>();
        let cancelled = Arc::new(AtomicBool::new(false));
        let job_cancels = Arc::new(JobCancels::default());
        let counters = Arc::new(Counters::default());
        let precheck = Arc::new(Precheck::for_output(&cfg.output_dir, placed_store(&cfg)));
        let output_lock = Arc::new(lock::Lazy::new(
            Arc::clone(&self.lock),
            cfg.output_dir.clone(),
        ));
        // One bucket per run, shared by every worker: the limit is overall, not per worker.
        let limiter = cfg.limit_rate.map(|r| Arc::new(RateLimiter::new(r)));

        let mut threads = Vec::with_capacity(cfg.workers);
        for n in 0..cfg.workers {
            let ctx = worker::Context {
                config: Arc::clone(&cfg),
                agent: agent.clone(),
                opened: Arc::clone(&self.opened),
                events: event_tx.clone(),
                cancelled: Arc::clone(&cancelled),
                job_cancels: Arc::clone(&job_cancels),
                precheck: Arc::clone(&precheck),
                output_lock: Arc::clone(&output_lock),
                limiter: limiter.clone(),
                shared: Arc::clone(&self.attempts),
            };
            let (rx, tx) = (work_rx.clone(), done_tx.clone());
            threads.push(
                thread::Builder::new()
                    .name(format!("fetchpool-worker-{n}"))
                    .spawn(move || worker::run(ctx, rx, tx))
                    .expect("spawning a worker thread"),
            );
        }
        drop((work_rx, done_tx));
        let links = scheduler::Links {
            input: input_rx,
            ctl: ctl_rx,
            work: work_tx,
            done: done_rx,
            events: event_tx,
            job_cancels: Arc::clone(&job_cancels),
        };
        let sched = scheduler::Scheduler::new(
            Arc::clone(&cfg),
            links,
            Arc::clone(&cancelled),
            Arc::clone(&counters.held),
        );
        let scheduler = thread::Builder::new()
            .name("fetchpool-scheduler".into())
            .spawn(move || sched.run())
            .expect("spawning the scheduler thread");
        let gate = Arc::new(Gate(Mutex::new(Some(input_tx))));
        let handle = CancelHandle {
            cancelled: Arc::clone(&cancelled),
            ctl: ctl_tx,
            agent: own_agent.then_some(agent),
            gate: Arc::downgrade(&gate),
            jobs: job_cancels,
        };
        let own = Submitter {
            gate: Some(Arc::clone(&gate)),
            cancel: handle.clone(),
            counters: Arc::clone(&counters),
        };
        Session {
            own: Some(own),
            detached: Submitter {
                gate: None,
                cancel: handle.clone(),
                counters: Arc::clone(&counters),
            },
            handle,
            events: event_rx,
            scheduler: Some(scheduler),
            threads,
            counters,
            cancelled,
            precheck,
            _output_lock: output_lock,
            over: false,
            started: Instant::now(),
        }
    }
}

/// The list with its URL-derived names made unique ([`crate::Namer`]), or `None` when no
/// name needs to change.
fn unique_names(jobs: &[Job]) -> Option<Vec<Job>> {
    let mut namer = crate::plan::Namer::new();
    jobs.iter().for_each(|j| namer.add(j));
    let names = namer.finish(|visit| jobs.iter().for_each(visit));
    if names.is_empty() {
        return None;
    }
    let mut jobs = jobs.to_vec();
    for (position, job) in (1..).zip(jobs.iter_mut()) {
        names.rename(position, job);
    }
    Some(jobs)
}

/// Jobs per message from the feeder thread to the scheduler.
const FEED_BATCH: usize = 64;

/// Where the pre-check learns which files earlier runs moved to their
/// `Content-Disposition` names: only runs that move files look, so that a missing file
/// costs no store lookup otherwise.
fn placed_store(cfg: &Config) -> Option<&std::path::Path> {
    cfg.state_dir.as_deref().filter(|_| cfg.content_disposition)
}
