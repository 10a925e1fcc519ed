//! A running pool's handles: the [`Session`] that streams events, the [`Submitter`]s
//! that feed it, and the [`CancelHandle`] that stops it or one of its jobs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::error::Error;
use crate::event::Event;
use crate::fetch::JobCancels;
use crate::job::{Job, JobId};
use crate::lock;
use crate::output::check::Precheck;
use crate::pool::messages::{Batch, Ctl};
use crate::report::Summary;

/// What the handles of one session count together.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) submitted: AtomicU64,
    /// Jobs the scheduler holds for their dependencies.
    pub(super) held: Arc<AtomicU64>,
}

/// Submits jobs to a running [`Session`]. Cloneable; the session's input stays open while
/// any clone is alive, until the session is cancelled or shut down.
///
/// ```no_run
/// use fetchpool::{Job, Pool};
/// let pool = Pool::builder().build()?;
/// let mut session = pool.start();
/// let submitter = session.submitter();
/// session.close(); // the producer's submitter is the input now
/// let producer = std::thread::spawn(move || {
///     for n in 0..10 {
///         submitter.submit(Job::new(format!("http://127.0.0.1:8080/f/{n}")))?;
///     }
///     Ok::<(), fetchpool::Error>(()) // dropping the submitter lets the run end
/// });
/// let summary = session.wait();
/// producer.join().unwrap()?;
/// # Ok::<(), fetchpool::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Submitter {
    /// `None` for the stand-in a closed session hands its observer.
    pub(super) gate: Option<Arc<Gate>>,
    /// The session's cancel handle: whether it was cancelled, and per-job cancels.
    pub(super) cancel: CancelHandle,
    pub(super) counters: Arc<Counters>,
}

/// The session's input, shared by every [`Submitter`]: dropped with the last of them
/// (the run may end), or emptied by a cancel or a shutdown while some are alive, so that
/// the scheduler sees the input end however many submitters live, and a submit after it
/// is refused rather than lost. A submit holds the lock while it sends, so a batch is
/// either in the channel before the input is emptied or refused after.
#[derive(Debug)]
pub(super) struct Gate(pub(super) Mutex<Option<Sender<Batch>>>);

impl Gate {
    /// Ends the input: the scheduler reads what was sent and then sees it end.
    fn shut(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

impl Submitter {
    /// Queues `job` and returns its id. Blocks while the queue is full. Fails with
    /// [`Error::Cancelled`] once the session is cancelled, and with
    /// [`Error::SessionClosed`] once it is closed, shut down or over.
    pub fn submit(&self, job: Job) -> Result<JobId, Error> {
        let first = self.submit_all(vec![job])?;
        Ok(first)
    }

    /// Queues `jobs` as one batch, which costs the scheduler one wake-up instead of one
    /// per job; returns the id of the first (the others follow in order).
    pub fn submit_all(&self, jobs: Vec<Job>) -> Result<JobId, Error> {
        let refused = || {
            if self.cancel.cancelled.load(Ordering::SeqCst) {
                Error::Cancelled {
                    reason: "the session was cancelled".into(),
                }
            } else {
                closed()
            }
        };
        let gate = self.gate.as_ref().ok_or_else(refused)?;
        let input = gate.0.lock().unwrap_or_else(PoisonError::into_inner);
        let input = input.as_ref().ok_or_else(refused)?;
        let n = jobs.len() as u64;
        let first = self.counters.submitted.fetch_add(n, Ordering::SeqCst);
        let batch = jobs
            .into_iter()
            .zip(first..)
            .map(|(job, id)| (JobId(id), job))
            .collect();
        input.send(batch).map_err(|_| {
            self.counters.submitted.fetch_sub(n, Ordering::SeqCst);
            refused()
        })?;
        Ok(JobId(first))
    }

    /// Ends job `id` `cancelled`; see [`Session::cancel_job`].
    pub fn cancel_job(&self, id: JobId) {
        self.cancel.cancel_job(id);
    }
}

fn closed() -> Error {
    Error::SessionClosed
}

/// A running pool: submit jobs, read [`Event`]s, cancel. Dropping it cancels what is left
/// and joins the threads.
///
/// ```no_run
/// use fetchpool::{Event, Job, Pool};
/// let pool = Pool::builder().build()?;
/// let mut session = pool.start();
/// session.submit(Job::new("http://127.0.0.1:8080/api/items").to_memory())?;
/// session.close();
/// for event in &mut session {
///     if let Event::Finished(outcome) = event {
///         println!("{} {}", outcome.status, outcome.url);
///     }
/// }
/// let summary = session.wait();
/// # Ok::<(), fetchpool::Error>(())
/// ```
pub struct Session {
    pub(super) own: Option<Submitter>,
    pub(super) detached: Submitter,
    /// Cancels the session or one job, and ends the input every submitter shares.
    pub(super) handle: CancelHandle,
    pub(super) events: Receiver<Event>,
    /// The scheduler thread, which hands back the run's summary.
    pub(super) scheduler: Option<JoinHandle<Summary>>,
    /// The worker threads.
    pub(super) threads: Vec<JoinHandle<()>>,
    pub(super) counters: Arc<Counters>,
    pub(super) cancelled: Arc<AtomicBool>,
    pub(super) precheck: Arc<Precheck>,
    /// Held to the session's end, once a file job took it.
    pub(super) _output_lock: Arc<lock::Lazy>,
    /// Whether the events were seen to end.
    pub(super) over: bool,
    pub(super) started: Instant,
}

impl Session {
    /// Queues `job`; see [`Submitter::submit`].
    pub fn submit(&self, job: Job) -> Result<JobId, Error> {
        self.own.as_ref().ok_or_else(closed)?.submit(job)
    }

    /// A submitter for other threads or for follow-up jobs. The run cannot end while it
    /// is alive: drop it when done.
    pub fn submitter(&self) -> Submitter {
        self.own.clone().unwrap_or_else(|| self.detached.clone())
    }

    /// Announces that this session will submit nothing more. The run ends once every
    /// other [`Submitter`] is dropped and every job has finished.
    pub fn close(&mut self) {
        self.own = None;
    }

    /// Stops the run: no new job starts, transfers in flight are interrupted (partial
    /// files stay for a later resume), and every job not finished ends `cancelled`. The
    /// session ends even while other [`Submitter`]s are alive: their submits fail with
    /// [`Error::Cancelled`] from now on. Safe to call from any thread through a
    /// [`CancelHandle`].
    pub fn cancel(&self) {
        self.cancel_handle().cancel();
    }

    /// A handle that cancels this session, or one of its jobs, from another thread (a
    /// signal handler, a user interface).
    pub fn cancel_handle(&self) -> CancelHandle {
        self.handle.clone()
    }

    /// Ends job `id` `cancelled`, leaving the session and its other jobs alone. A job
    /// that waits (queued, for its host, for a retry, for its dependencies) ends at once;
    /// one in flight stops at its next read (a server that sends nothing is noticed at the
    /// job's stall limit), keeps what it received in `PATH.part` for a later resume, and
    /// reports those bytes in [`Outcome::bytes`](crate::Outcome::bytes). Its dependents
    /// end `cancelled` with kind `dependency`. A job that already ended is not changed.
    ///
    /// ```no_run
    /// use fetchpool::{Event, Job, Pool};
    /// let pool = Pool::builder().output_dir("out").build()?;
    /// let mut session = pool.start();
    /// let big = session.submit(Job::new("http://127.0.0.1:8080/big.iso"))?;
    /// session.submit(Job::new("http://127.0.0.1:8080/small.txt"))?;
    /// session.close();
    /// while let Some(event) = session.next_event() {
    ///     if let Event::Progress { id, bytes, .. } = event
    ///         && id == big
    ///         && bytes > 1 << 20
    ///     {
    ///         session.cancel_job(big); // enough of that one
    ///     }
    /// }
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn cancel_job(&self, id: JobId) {
        self.handle.cancel_job(id);
    }

    /// Stops taking jobs, from this session and from every [`Submitter`] (their submits
    /// fail with [`Error::SessionClosed`] from now on), lets every job already submitted
    /// run to its end, and returns the summary: a draining [`Session::close`] that does
    /// not wait for other submitters to be dropped.
    pub fn shutdown(mut self) -> Summary {
        if let Some(gate) = self.handle.gate.upgrade() {
            gate.shut();
        }
        self.close();
        while self.next_event().is_some() {}
        self.finish_summary()
    }

    /// Whether every submitted job has finished (`finished` of them, as the caller saw)
    /// or waits for a dependency that nothing running can satisfy any more (an id never
    /// submitted, or a cycle): either way no event will come unless new jobs are
    /// submitted. `held` is read first, so a job moving from held to finished is never
    /// missed; a job in transit counts in `submitted` and neither other count.
    pub(super) fn is_settled(&self, finished: u64) -> bool {
        let held = self.counters.held.load(Ordering::SeqCst);
        finished + held == self.counters.submitted.load(Ordering::SeqCst)
    }

    /// The next event; `None` once the run is over. Blocks.
    pub fn next_event(&mut self) -> Option<Event> {
        let event = self.events.recv().ok();
        self.over |= event.is_none();
        event
    }

    /// The next event if one is ready, without waiting; `None` when none is, or when
    /// the run is over ([`Session::is_over`] tells which).
    ///
    /// ```no_run
    /// # let pool = fetchpool::Pool::builder().build()?;
    /// let mut session = pool.start();
    /// session.submit(fetchpool::Job::new("http://127.0.0.1:8080/a.bin"))?;
    /// session.close();
    /// while !session.is_over() {
    ///     while let Some(event) = session.try_next_event() {
    ///         println!("{event:?}");
    ///     }
    ///     // ... the caller's own work between looks ...
    /// #   std::thread::yield_now();
    /// }
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn try_next_event(&mut self) -> Option<Event> {
        match self.events.try_recv() {
            Ok(event) => Some(event),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.over = true;
                None
            }
        }
    }

    /// The next event, waiting at most `timeout`; `None` when none came in that time, or
    /// when the run is over ([`Session::is_over`] tells which). What a status line that
    /// is redrawn once a second needs, on the caller's thread.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use fetchpool::{Event, Job, Pool};
    /// let pool = Pool::builder().build()?;
    /// let mut session = pool.start();
    /// session.submit(Job::new("http://127.0.0.1:8080/a.bin"))?;
    /// session.close();
    /// let mut done = 0;
    /// loop {
    ///     match session.next_event_timeout(Duration::from_secs(1)) {
    ///         Some(Event::Finished(_)) => done += 1,
    ///         Some(_) => {}
    ///         None if session.is_over() => break,
    ///         None => eprintln!("{done} done"),
    ///     }
    /// }
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn next_event_timeout(&mut self, timeout: Duration) -> Option<Event> {
        match self.events.recv_timeout(timeout) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.over = true;
                None
            }
        }
    }

    /// Whether the run is over: every event was read and no more will come. Known once a
    /// read found the events ended.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// The channel the events arrive on, for `crossbeam_channel::select!` beside the
    /// caller's own channels. Receiving from it is reading the session's events (as
    /// [`Session::next_event`] does, and nothing is counted twice or lost); it reports
    /// disconnected once the run is over.
    ///
    /// ```no_run
    /// use crossbeam_channel::{select, tick};
    /// use std::time::Duration;
    /// # let pool = fetchpool::Pool::builder().build()?;
    /// let mut session = pool.start();
    /// session.submit(fetchpool::Job::new("http://127.0.0.1:8080/a.bin"))?;
    /// session.close();
    /// let events = session.events().clone();
    /// let ticks = tick(Duration::from_secs(1));
    /// loop {
    ///     select! {
    ///         recv(events) -> event => match event {
    ///             Ok(event) => println!("{event:?}"),
    ///             Err(_) => break, // the run is over
    ///         },
    ///         recv(ticks) -> _ => eprintln!("still running"),
    ///     }
    /// }
    /// let summary = session.wait();
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Reads the remaining events, joins the threads and returns the summary.
    pub fn wait(mut self) -> Summary {
        self.close();
        while self.next_event().is_some() {}
        self.finish_summary()
    }

    pub(super) fn finish_summary(&mut self) -> Summary {
        let mut summary = self.join();
        summary.elapsed = self.started.elapsed();
        summary.interrupted = self.cancelled.load(Ordering::SeqCst);
        summary
    }

    /// Joins the threads; the scheduler's summary, or an empty one if it stopped early.
    fn join(&mut self) -> Summary {
        self.own = None;
        let summary = self
            .scheduler
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        summary
    }
}

impl Iterator for Session {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.next_event()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.scheduler.is_some() {
            self.cancel();
            self.own = None;
            while self.next_event().is_some() {}
            self.join();
        }
    }
}

/// Cancels a running session, or one of its jobs, from any thread; see
/// [`Session::cancel`] and [`Session::cancel_job`].
///
/// ```no_run
/// use fetchpool::{Job, Pool};
/// let pool = Pool::builder().build()?;
/// let session = pool.start();
/// let handle = session.cancel_handle();
/// let id = session.submit(Job::new("http://127.0.0.1:8080/big.iso"))?;
/// std::thread::spawn(move || {
///     // ... when the user asks for it:
///     handle.cancel_job(id); // or handle.cancel() to stop everything
/// });
/// let summary = session.wait();
/// # Ok::<(), fetchpool::Error>(())
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    pub(super) cancelled: Arc<AtomicBool>,
    pub(super) ctl: Sender<Ctl>,
    /// The session's own agent, shut down on cancel; `None` when it shares the pool's.
    pub(super) agent: Option<ureq::Agent>,
    pub(super) gate: Weak<Gate>,
    pub(super) jobs: Arc<JobCancels>,
}

impl std::fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelHandle")
            .field("cancelled", &self.cancelled.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CancelHandle {
    /// Ends job `id` `cancelled`; see [`Session::cancel_job`].
    pub fn cancel_job(&self, id: JobId) {
        self.jobs.request(id);
        let _ = self.ctl.send(Ctl::CancelJob(id));
    }

    /// Cancels the session. Idempotent.
    pub fn cancel(&self) {
        if !self.cancelled.swap(true, Ordering::SeqCst) {
            let _ = self.ctl.send(Ctl::Cancel);
            // Interrupts blocked reads and writes on every pooled connection.
            if let Some(agent) = &self.agent {
                agent.clone().shutdown();
            }
            // After the scheduler heard of the cancel: it takes input while stopping, so
            // a submitter blocked on a full queue (holding the gate) gets through.
            if let Some(gate) = self.gate.upgrade() {
                gate.shut();
            }
        }
    }
}
