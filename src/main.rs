//! The `fetchpool` binary: arguments → configuration and jobs → a run → an exit code.
//!
//! It uses only the library's public API. Job lists are read twice: once to check the
//! whole list (nothing is requested if any line is wrong), once to stream jobs into the
//! pool, so memory does not grow with the list. Standard input is spooled to a temporary
//! file that has no name (see [`spool_stdin`]) so that it too can be read twice.

mod cli;
mod dry_run;
mod hints;
mod progress;
mod select;
mod summary;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use fetchpool::{ErrorKind, Event, Job, ManifestReader, Pool, PoolBuilder};

use cli::{Cli, Command, RunArgs};
use select::{RetrySet, Selection};
pub(crate) use summary::human_bytes;

/// Exit codes, as documented in `--help`.
/// Longest a finished job's report line waits in the buffer before it is written.
const REPORT_FLUSH: Duration = Duration::from_millis(100);

const EXIT_OK: u8 = 0;
const EXIT_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 2;
/// Stopped by a signal: 128 + its number, as a shell reports it.
const EXIT_INTERRUPTED: u8 = 130;
const EXIT_TERMINATED: u8 = 143;
const EXIT_HANGUP: u8 = 129;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.run.verbose, cli.run.quiet);
    let result = match cli.command {
        Some(Command::Verify(args)) => verify(args),
        None => run(cli.run),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("fetchpool: {e:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        // Through the bar when one is drawn, so log lines never tear it.
        .target(env_logger::Target::Pipe(Box::new(progress::LogWriter)))
        .init();
}

/// A job list the user named: a file, stdin (spooled to a file) or the arguments.
enum Source {
    File {
        name: String,
        path: PathBuf,
    },
    /// Standard input's copy, read from the start by every reader.
    Stdin(Arc<File>),
    Args(Vec<String>),
}

impl Source {
    fn name(&self) -> &str {
        match self {
            Source::File { name, .. } => name,
            Source::Stdin(_) => "-",
            Source::Args(_) => "arguments",
        }
    }

    fn open(&self) -> anyhow::Result<ManifestReader<Box<dyn BufRead + Send>>> {
        let reader: Box<dyn BufRead + Send> = match self {
            Source::File { path, name } => Box::new(BufReader::with_capacity(
                64 * 1024,
                File::open(path).with_context(|| format!("cannot open job list '{name}'"))?,
            )),
            Source::Stdin(file) => Box::new(BufReader::with_capacity(
                64 * 1024,
                SpoolReader {
                    file: file.clone(),
                    pos: 0,
                },
            )),
            Source::Args(urls) => Box::new(io::Cursor::new(urls.join("\n").into_bytes())),
        };
        Ok(ManifestReader::new(self.name(), reader))
    }
}

/// Reads the spooled stdin from the start, at its own offset: every reader of the one
/// file sees the whole list.
struct SpoolReader {
    file: Arc<File>,
    pos: u64,
}

impl io::Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_at(&self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}

/// Copies stdin to a temporary file that no other user can name: on Linux an unnamed
/// file (`O_TMPFILE`, mode 0600) in the temporary directory; elsewhere, or where the file
/// system lacks it, a new file under a random name, created only if nothing is there (a
/// planted file or link makes the creation fail rather than be followed) and removed at
/// once. Either way nothing is left behind, even after `kill -9`.
fn spool_stdin() -> anyhow::Result<File> {
    let dir = std::env::temp_dir();
    let mut file = unnamed_in(&dir)
        .or_else(|| exclusive_in(&dir))
        .with_context(|| {
            format!(
                "cannot spool stdin to a temporary file in {}; set TMPDIR to a writable directory",
                dir.display()
            )
        })?;
    io::copy(&mut io::stdin().lock(), &mut file).context("cannot read the job list from stdin")?;
    Ok(file)
}

#[cfg(target_os = "linux")]
fn unnamed_in(dir: &Path) -> Option<File> {
    use rustix::fs::{CWD, Mode, OFlags, openat};
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    openat(CWD, dir, flags, Mode::from_raw_mode(0o600))
        .ok()
        .map(File::from)
}

#[cfg(not(target_os = "linux"))]
fn unnamed_in(_dir: &Path) -> Option<File> {
    None
}

fn exclusive_in(dir: &Path) -> Option<File> {
    use std::hash::{BuildHasher, RandomState};
    for attempt in 0u32..16 {
        // RandomState's keys are random per process: the name cannot be guessed ahead.
        let token = RandomState::new().hash_one((std::process::id(), attempt, Instant::now()));
        let path = dir.join(format!(".fetchpool-stdin-{token:016x}"));
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(file) => {
                let _ = std::fs::remove_file(&path);
                return Some(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => return None,
        }
    }
    None
}

fn sources(args: &RunArgs) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    let mut stdin: Option<Arc<File>> = None;
    for path in &args.input {
        if path == Path::new("-") {
            // Read once; `-i -` given twice names the same list twice.
            let file = match &stdin {
                Some(f) => f.clone(),
                None => stdin.insert(Arc::new(spool_stdin()?)).clone(),
            };
            out.push(Source::Stdin(file));
        } else {
            out.push(Source::File {
                name: path.display().to_string(),
                path: path.clone(),
            });
        }
    }
    if !args.urls.is_empty() {
        out.push(Source::Args(args.urls.clone()));
    }
    if out.is_empty() {
        anyhow::bail!(
            "no jobs: give URLs as arguments or a job list with -i FILE (-i - for stdin); see --help"
        );
    }
    Ok(out)
}

fn builder(args: &RunArgs) -> anyhow::Result<PoolBuilder> {
    if let (Some(min), Some(limit)) = (args.min_rate, args.limit_rate)
        && min > limit
    {
        anyhow::bail!(
            "--min-rate {min} is above --limit-rate {limit} (bytes/s): every transfer would \
             fail it; lower --min-rate or raise --limit-rate"
        );
    }
    if args.min_rate.is_some() && args.min_rate_window.is_zero() {
        anyhow::bail!("--min-rate-window must be longer than 0 s; curl's default is 30");
    }
    let mut b = Pool::builder()
        .workers(args.workers)
        .per_host(args.per_host)
        .serial(args.serial)
        .fail_fast(args.fail_fast)
        .connect_timeout(args.connect_timeout)
        .idle_timeout(args.idle_timeout)
        .max_time(args.max_time)
        .retries(args.retries)
        .retry_base_delay(args.retry_base)
        .retry_max_delay(args.retry_max_delay)
        .max_redirects(args.max_redirects)
        .allow_downgrade(args.allow_downgrade)
        .proxy_from_env(!args.no_proxy_env)
        .limit_rate(args.limit_rate)
        .min_rate(args.min_rate)
        .min_rate_window(args.min_rate_window)
        .output_dir(&args.output_dir)
        .progress_events(false);
    if let Some(p) = &args.proxy {
        b = b.proxy(p);
    }
    if let Some(list) = &args.no_proxy {
        b = b.no_proxy(list);
    }
    for ca in &args.cacert {
        b = b.ca_cert(ca);
    }
    for h in &args.headers {
        // Named by its first word only: the rest may be a credential.
        let Some((k, v)) = h.split_once(':') else {
            let word: String = h
                .split_whitespace()
                .next()
                .unwrap_or("")
                .chars()
                .take(40)
                .collect();
            let more = if word.len() < h.trim().len() {
                " …"
            } else {
                ""
            };
            anyhow::bail!("-H '{word}{more}' has no ':'; write each header as -H 'Name: value'");
        };
        let (k, v) = (k.trim(), v.trim());
        fetchpool::check_header(k, v)
            .map_err(|e| anyhow::anyhow!("-H: {e}; write each header as -H 'Name: value'"))?;
        b = b.header(k, v);
    }
    Ok(b)
}

/// What the check pass learned: the plan of the selected jobs, and how many were listed.
struct Checked {
    plan: fetchpool::Plan,
    listed: u64,
    /// The `--retry-failed` keys some listed job matched.
    retry_matched: std::collections::HashSet<select::RetryKey>,
}

fn run(args: RunArgs) -> anyhow::Result<u8> {
    let selection = Selection {
        shard: select::shard(&args)?,
        retry: args
            .retry_failed
            .as_deref()
            .map(RetrySet::read)
            .transpose()?,
    };
    if args.retry_failed.is_some() && args.input.is_empty() && args.urls.is_empty() {
        anyhow::bail!(
            "--retry-failed needs the job list the report came from: give the same -i FILE or \
             URLs again (the report names the jobs; the list says how to check them)"
        );
    }
    let sources = sources(&args)?;
    // The bar is the only consumer of progress events; without it the workers skip them.
    let show_bar = !args.quiet && !args.dry_run && io::stderr().is_terminal();
    let pool = builder(&args)?.progress_events(show_bar).build()?;

    let checked = match check(&sources, &selection, &args.output_dir)? {
        Ok(checked) => checked,
        Err(errors) => return Ok(config_errors(&errors)),
    };
    if let Some(retry) = &selection.retry {
        // Checked against the whole list, every shard included: a failed job that no line
        // names would otherwise never run again, and a loop on the report would end "ok".
        let left = retry.unmatched(&checked.retry_matched);
        if !left.is_empty() {
            const SHOWN: usize = 5;
            let shown: Vec<&str> = left.iter().take(SHOWN).map(String::as_str).collect();
            eprintln!(
                "fetchpool: {} failed or cancelled job(s) in {} match no job of the list ({}{}); \
                 give the job list that report came from (jobs are matched by output path and \
                 the URL's host and path); nothing was downloaded",
                left.len(),
                retry.report.display(),
                shown.join(", "),
                if left.len() > SHOWN { ", …" } else { "" }
            );
            return Ok(EXIT_CONFIG);
        }
    }
    if args.dry_run {
        dry_run::print_plan(&args, &sources, &selection, &checked);
        return Ok(EXIT_OK);
    }
    if checked.plan.jobs == 0 && !selection.is_all() {
        if !args.quiet {
            eprintln!(
                "fetchpool: {} — nothing to do",
                describe_selection(&selection, &checked)
            );
        }
        return Ok(EXIT_OK);
    }

    // One run per output directory, held to the end of this function; a dry run and
    // `verify` only read, so they take no lock.
    let _lock = match pool.lock_output() {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("fetchpool: {e}");
            if let fetchpool::Error::OutputInUse { pid, .. } = &e {
                let stop = pid.map_or(String::new(), |p| {
                    format!(" (kill {p}; Ctrl-C in its terminal)")
                });
                eprintln!(
                    "fetchpool: nothing was downloaded; run again once it has ended, stop it{stop}, \
                     or give this run another -o DIR"
                );
            }
            return Ok(EXIT_CONFIG);
        }
    };
    let mut report = match &args.report {
        Some(path) => Some(BufWriter::new(File::create(path).with_context(|| {
            format!("cannot create report file '{}'", path.display())
        })?)),
        None => None,
    };
    let mut bar = show_bar.then(|| progress::Progress::new(checked.plan.jobs));

    let reread_errors = AtomicUsize::new(0);
    let jobs = sources.iter().flat_map(|s| match s.open() {
        Ok(reader) => {
            Box::new(reader) as Box<dyn Iterator<Item = Result<Job, fetchpool::Error>> + Send>
        }
        Err(e) => Box::new(std::iter::once(Err(fetchpool::Error::config(format!(
            "{e:#}"
        ))))),
    });
    let jobs = jobs.filter_map(|j| match j {
        Ok(job) => selection.takes(&job).then_some(job),
        Err(e) => {
            // The list changed between the check and the run; say so, never skip silently.
            log::error!("{e}");
            reread_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    });
    let mut report_error: Option<io::Error> = None;
    let mut last_flush = Instant::now();
    let mut first_failures: BTreeMap<ErrorKind, (String, String)> = BTreeMap::new();
    let interrupt = interrupt::install();
    let summary = pool.run_with_cancel(
        jobs,
        |h| interrupt.arm(h),
        |event, _| {
            if let Some(bar) = bar.as_mut() {
                bar.observe(event);
            }
            if let Event::Finished(outcome) = event {
                if let Some(w) = report.as_mut()
                    && report_error.is_none()
                {
                    // Lines reach the file within REPORT_FLUSH of their job's end, in
                    // one write per interval rather than one per job.
                    let line = outcome.to_json().to_string();
                    let mut written = writeln!(w, "{line}");
                    if written.is_ok() && last_flush.elapsed() >= REPORT_FLUSH {
                        written = w.flush();
                        last_flush = Instant::now();
                    }
                    if let Err(e) = written {
                        report_error = Some(e);
                    }
                }
                if !outcome.status.is_success()
                    && let Some(e) = &outcome.error
                {
                    let url = fetchpool::redact::url(&outcome.url);
                    first_failures
                        .entry(e.kind())
                        .or_insert_with(|| (url.to_string(), e.to_string()));
                    match &bar {
                        Some(bar) => bar.println(format!("{} {url}: {e}", outcome.status)),
                        None => log::warn!("{} {url}: {e}", outcome.status),
                    }
                }
            }
        },
    );
    if let Some(bar) = bar {
        bar.finish();
    }
    if let (Some(w), None) = (report.as_mut(), &report_error)
        && let Err(e) = w.flush()
    {
        report_error = Some(e);
    }
    // From here on stderr may be gone (SIGHUP from a closed terminal), and eprintln!
    // panics on a failed write: the exit code must still come out.
    let mut err = io::stderr();
    if let Some(e) = report_error {
        let _ = writeln!(err, "fetchpool: writing the report failed: {e}");
    }
    summary::print_summary(&args, &summary, &first_failures);
    if summary.interrupted {
        let _ = writeln!(
            err,
            "fetchpool: interrupted; partial downloads are kept next to their files (.part). \
             Run the same command again to resume them."
        );
    }
    let reread = reread_errors.load(Ordering::Relaxed);
    Ok(if summary.interrupted {
        interrupt
            .stopped_by()
            .map_or(EXIT_INTERRUPTED, interrupt::Stop::exit_code)
    } else if reread > 0 {
        let _ = writeln!(
            err,
            "fetchpool: {reread} line(s) of the job list changed during the run and were not run"
        );
        EXIT_CONFIG
    } else if summary.all_succeeded() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// First pass: checks every line and the whole selection before any request. Every
/// line is validated, even those of other shards, so every machine of a sharded run
/// rejects a broken list alike; the whole-list checks (duplicate paths, dependencies)
/// apply to the jobs this run takes.
fn check(
    sources: &[Source],
    selection: &Selection,
    output_dir: &Path,
) -> anyhow::Result<Result<Checked, Problems>> {
    let mut checker = fetchpool::PlanChecker::new();
    let mut errors = Problems::default();
    let mut listed = 0;
    let mut retry_matched = std::collections::HashSet::new();
    for source in sources {
        for job in source.open()? {
            match job {
                Ok(job) => {
                    listed += 1;
                    if let Some(key) = selection.retry.as_ref().and_then(|r| r.matching(&job)) {
                        retry_matched.insert(key);
                    }
                    if let Err(e) = job.check_within(output_dir) {
                        let line = job.origin.as_ref().map(|o| format!("{o}: "));
                        errors.push(format!("{}{e}", line.unwrap_or_default()));
                    } else if selection.takes(&job) {
                        checker.add(&job);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    let names: Vec<&str> = sources.iter().map(Source::name).collect();
    // Read again only when a path may repeat; a list that cannot be reopened now was
    // readable a moment ago, and the run itself will say so if it stays unreadable.
    let mut reread: anyhow::Result<()> = Ok(());
    let finished = checker.finish(&names.join(", "), |visit| {
        for source in sources {
            match source.open() {
                Ok(reader) => reader
                    .flatten()
                    .filter(|job| selection.takes(job))
                    .for_each(|job| visit(&job)),
                Err(e) => reread = Err(e),
            }
        }
    });
    reread?;
    Ok(match finished {
        Ok(plan) if errors.count == 0 => Ok(Checked {
            plan,
            listed,
            retry_matched,
        }),
        Ok(_) => Err(errors),
        Err(more) => {
            more.iter().for_each(|e| errors.push(e));
            Err(errors)
        }
    })
}

fn describe_selection(selection: &Selection, checked: &Checked) -> String {
    let mut parts = Vec::new();
    if let Some(s) = selection.shard {
        parts.push(format!("shard {s}"));
    }
    if let Some(r) = &selection.retry {
        parts.push(format!("failed in {}", r.report.display()));
    }
    format!(
        "{} of {} listed jobs ({})",
        checked.plan.jobs,
        checked.listed,
        parts.join(", ")
    )
}

/// The problems of a job list: the first [`Problems::SHOWN`] as they will be printed,
/// and how many there were. A list of a million bad lines costs twenty messages.
#[derive(Default)]
struct Problems {
    shown: Vec<String>,
    count: u64,
}

impl Problems {
    const SHOWN: usize = 20;

    fn push(&mut self, e: impl std::fmt::Display) {
        self.count += 1;
        if self.shown.len() < Self::SHOWN {
            self.shown.push(e.to_string());
        }
    }
}

fn config_errors(errors: &Problems) -> u8 {
    for e in &errors.shown {
        eprintln!("fetchpool: {e}");
    }
    let more = errors.count - errors.shown.len() as u64;
    if more > 0 {
        eprintln!("fetchpool: … and {more} more problems");
    }
    eprintln!("fetchpool: nothing was downloaded; fix the job list and run again");
    EXIT_CONFIG
}

/// `fetchpool verify`: hashes every listed file in parallel; no network.
fn verify(args: cli::VerifyArgs) -> anyhow::Result<u8> {
    let (name, reader): (String, Box<dyn BufRead + Send>) = if args.input == Path::new("-") {
        ("-".into(), Box::new(BufReader::new(io::stdin())))
    } else {
        let file = File::open(&args.input)
            .with_context(|| format!("cannot open job list '{}'", args.input.display()))?;
        (
            args.input.display().to_string(),
            Box::new(BufReader::with_capacity(64 * 1024, file)),
        )
    };
    let jobs = ManifestReader::new(name, reader);
    let result = match fetchpool::verify(&args.output_dir, jobs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fetchpool: {e}");
            return Ok(EXIT_CONFIG);
        }
    };
    if args.json {
        println!("{}", result.to_json());
    } else {
        for (path, problem) in &result.problems {
            match problem {
                fetchpool::Problem::Missing => println!("missing\t{}", path.display()),
                fetchpool::Problem::Mismatch { expected, actual } => println!(
                    "mismatch\t{}\texpected {expected}, found {actual}",
                    path.display()
                ),
                fetchpool::Problem::Unreadable { message } => {
                    println!("unreadable\t{}\t{message}", path.display())
                }
                _ => println!("problem\t{}", path.display()),
            }
        }
    }
    eprintln!(
        "{} files ok ({}), {} with problems{}",
        result.ok,
        human_bytes(result.bytes),
        result.problems.len(),
        if result.unchecked > 0 {
            format!(", {} present without sha256 or size", result.unchecked)
        } else {
            String::new()
        }
    );
    Ok(if result.is_clean() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// Ctrl-C (SIGINT), SIGTERM and SIGHUP: the first cancels the run (in-flight transfers
/// stop, partial files stay for a resume, the report still gets a `cancelled` line per
/// job) and sets the exit code, 128 + the signal's number as a shell reports a process
/// killed by it (130, 143, 129), so a supervisor that reads the code sees which signal
/// stopped the run. A second signal exits at once. SIGTERM matters as much as Ctrl-C:
/// `docker stop`, Kubernetes, systemd and Slurm stop a job with it.
mod interrupt {
    use std::io::Write as _;
    use std::sync::{Arc, Mutex};

    use fetchpool::CancelHandle;

    /// A signal that stops the run.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Stop {
        Interrupt,
        Terminate,
        Hangup,
    }

    impl Stop {
        /// The exit code of a run this signal stopped: 128 + its number on Linux.
        pub fn exit_code(self) -> u8 {
            match self {
                Stop::Interrupt => super::EXIT_INTERRUPTED,
                Stop::Terminate => super::EXIT_TERMINATED,
                Stop::Hangup => super::EXIT_HANGUP,
            }
        }

        fn name(self) -> &'static str {
            match self {
                Stop::Interrupt => "interrupted",
                Stop::Terminate => "SIGTERM",
                Stop::Hangup => "SIGHUP",
            }
        }
    }

    #[derive(Clone, Default)]
    pub struct Interrupt(Arc<Mutex<State>>);

    #[derive(Default)]
    struct State {
        handle: Option<CancelHandle>,
        first: Option<Stop>,
    }

    /// Installs the handler; a failure to install only costs the graceful stop.
    pub fn install() -> Interrupt {
        let it = Interrupt::default();
        let shared = it.clone();
        if let Err(e) = listen(move |stop| shared.on_signal(stop)) {
            log::warn!("cannot install the signal handler: {e}");
        }
        it
    }

    /// Runs `on` for every SIGINT, SIGTERM and SIGHUP, on a thread of its own (never in
    /// signal context, so it may lock and print).
    #[cfg(unix)]
    fn listen(on: impl Fn(Stop) + Send + 'static) -> std::io::Result<()> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    on(match sig {
                        SIGTERM => Stop::Terminate,
                        SIGHUP => Stop::Hangup,
                        _ => Stop::Interrupt,
                    });
                }
            })?;
        Ok(())
    }

    #[cfg(not(unix))]
    fn listen(on: impl Fn(Stop) + Send + 'static) -> std::io::Result<()> {
        ctrlc::set_handler(move || on(Stop::Interrupt)).map_err(std::io::Error::other)
    }

    impl Interrupt {
        fn on_signal(&self, stop: Stop) {
            let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Stderr may be gone (SIGHUP from a closed terminal): never panic on it.
            let mut err = std::io::stderr();
            if state.first.is_some() {
                let _ = writeln!(err, "fetchpool: {} again; exiting now", stop.name());
                std::process::exit(i32::from(stop.exit_code()));
            }
            state.first = Some(stop);
            let again = match stop {
                Stop::Interrupt => "Ctrl-C again",
                _ => "a second signal",
            };
            let _ = writeln!(
                err,
                "fetchpool: {}; stopping, keeping partial files for a resume ({again} quits at once)",
                stop.name()
            );
            if let Some(h) = &state.handle {
                h.cancel();
            }
        }

        /// Binds the handler to a run; a signal that came before cancels it at once.
        pub fn arm(&self, handle: CancelHandle) {
            let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if state.first.is_some() {
                handle.cancel();
            }
            state.handle = Some(handle);
        }

        /// The signal that stopped the run, if one did.
        pub fn stopped_by(&self) -> Option<Stop> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).first
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn the_spool_fallback_is_a_new_file_removed_at_once() {
        let dir = std::env::temp_dir().join(format!("fetchpool-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut file = exclusive_in(&dir).expect("a new file");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no name left");
        file.write_all(b"http://h/a\n").unwrap();
        file.rewind().unwrap();
        let file = Arc::new(file);
        let mut text = String::new();
        for _ in 0..2 {
            text.clear();
            SpoolReader {
                file: file.clone(),
                pos: 0,
            }
            .read_to_string(&mut text)
            .unwrap();
            assert_eq!(text, "http://h/a\n");
        }
        std::fs::remove_dir(&dir).unwrap();
    }
}
