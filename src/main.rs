//! The `fetchpool` binary: arguments → configuration and jobs → a run → an exit code.
//!
//! It uses only the library's public API. Job lists are read twice: once to check the
//! whole list (nothing is requested if any line is wrong), once to stream jobs into the
//! pool, so memory does not grow with the list. Standard input is spooled to a temporary
//! file so that it too can be read twice.

mod cli;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use clap::Parser;
use fetchpool::{Event, Job, ManifestReader, Pool, PoolBuilder, Summary};

use cli::{Cli, Command, RunArgs};

/// Exit codes, as documented in `--help`.
const EXIT_OK: u8 = 0;
const EXIT_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_INTERRUPTED: u8 = 130;

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
        .init();
}

/// A job list the user named: a file, stdin (spooled to a file) or the arguments.
enum Source {
    File { name: String, path: PathBuf },
    Args(Vec<String>),
}

impl Source {
    fn name(&self) -> &str {
        match self {
            Source::File { name, .. } => name,
            Source::Args(_) => "arguments",
        }
    }

    fn open(&self) -> anyhow::Result<ManifestReader<Box<dyn BufRead + Send>>> {
        let reader: Box<dyn BufRead + Send> = match self {
            Source::File { path, name } => Box::new(BufReader::with_capacity(
                64 * 1024,
                File::open(path).with_context(|| format!("cannot open job list '{name}'"))?,
            )),
            Source::Args(urls) => Box::new(io::Cursor::new(urls.join("\n").into_bytes())),
        };
        Ok(ManifestReader::new(self.name(), reader))
    }
}

/// Keeps the spooled copy of stdin alive for the run.
struct Spool(Option<PathBuf>);

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn sources(args: &RunArgs, spool: &mut Spool) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    for path in &args.input {
        if path == Path::new("-") {
            let tmp =
                std::env::temp_dir().join(format!("fetchpool-stdin-{}.list", std::process::id()));
            let mut file = File::create(&tmp).context("cannot spool stdin to a temporary file")?;
            io::copy(&mut io::stdin().lock(), &mut file)
                .context("cannot read the job list from stdin")?;
            spool.0 = Some(tmp.clone());
            out.push(Source::File {
                name: "-".into(),
                path: tmp,
            });
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
    let mut b = Pool::builder()
        .workers(args.workers)
        .per_host(args.per_host)
        .serial(args.serial)
        .fail_fast(args.fail_fast)
        .connect_timeout(args.connect_timeout)
        .idle_timeout(args.idle_timeout)
        .max_time(args.max_time)
        .retries(args.retries)
        .retry_max_delay(args.retry_max_delay)
        .max_redirects(args.max_redirects)
        .allow_downgrade(args.allow_downgrade)
        .proxy_from_env(!args.no_proxy_env)
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
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("header '{h}' has no ':'; write it as 'Name: value'"))?;
        b = b.header(k.trim(), v.trim());
    }
    Ok(b)
}

fn run(args: RunArgs) -> anyhow::Result<u8> {
    let mut spool = Spool(None);
    let sources = sources(&args, &mut spool)?;
    let pool = builder(&args)?.build()?;

    // First pass: check every line and the whole list before any request.
    let mut checker = fetchpool::PlanChecker::new();
    let mut errors = Vec::new();
    for source in &sources {
        let mut line_checker = std::mem::take(&mut checker);
        for job in source.open()? {
            match job {
                Ok(job) => line_checker.add(&job),
                Err(e) => errors.push(e.to_string()),
            }
        }
        checker = line_checker;
    }
    let names: Vec<&str> = sources.iter().map(Source::name).collect();
    let plan = match checker.finish(&names.join(", ")) {
        Ok(plan) if errors.is_empty() => plan,
        Ok(_) => return Ok(config_errors(&errors)),
        Err(more) => {
            errors.extend(more.iter().map(|e| e.to_string()));
            return Ok(config_errors(&errors));
        }
    };
    if args.dry_run {
        println!(
            "{} jobs to {} hosts, output in {}",
            plan.jobs,
            plan.hosts.len(),
            args.output_dir.display()
        );
        for (host, n) in &plan.hosts {
            println!("  {host}\t{n} jobs");
        }
        return Ok(EXIT_OK);
    }

    let mut report = match &args.report {
        Some(path) => Some(BufWriter::new(File::create(path).with_context(|| {
            format!("cannot create report file '{}'", path.display())
        })?)),
        None => None,
    };
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
        Ok(job) => Some(job),
        Err(e) => {
            // The list changed between the check and the run; say so, never skip silently.
            log::error!("{e}");
            reread_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    });
    let mut report_error: Option<io::Error> = None;
    let interrupt = interrupt::install();
    let summary = pool.run_with_cancel(
        jobs,
        |h| interrupt.arm(h),
        |event, _| {
            if let Event::Finished(outcome) = event {
                if let Some(w) = report.as_mut()
                    && report_error.is_none()
                {
                    let line = outcome.to_json().to_string();
                    if let Err(e) = writeln!(w, "{line}").and_then(|_| w.flush()) {
                        report_error = Some(e);
                    }
                }
                if !outcome.status.is_success() {
                    if let Some(e) = &outcome.error {
                        log::warn!("{} {}: {e}", outcome.status, outcome.url);
                    }
                }
            }
        },
    );
    if let Some(e) = report_error {
        eprintln!("fetchpool: writing the report failed: {e}");
    }
    print_summary(&args, &summary);
    if summary.interrupted {
        eprintln!(
            "fetchpool: interrupted; partial downloads are kept next to their files (.part). \
             Run the same command again to resume them."
        );
    }
    let reread = reread_errors.load(Ordering::Relaxed);
    Ok(if summary.interrupted {
        EXIT_INTERRUPTED
    } else if reread > 0 {
        eprintln!(
            "fetchpool: {reread} line(s) of the job list changed during the run and were not run"
        );
        EXIT_CONFIG
    } else if summary.all_succeeded() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

fn config_errors(errors: &[String]) -> u8 {
    const SHOWN: usize = 20;
    for e in errors.iter().take(SHOWN) {
        eprintln!("fetchpool: {e}");
    }
    if errors.len() > SHOWN {
        eprintln!("fetchpool: … and {} more problems", errors.len() - SHOWN);
    }
    eprintln!("fetchpool: nothing was downloaded; fix the job list and run again");
    EXIT_CONFIG
}

fn print_summary(args: &RunArgs, s: &Summary) {
    if args.json {
        println!("{}", s.to_json());
    }
    if args.quiet {
        return;
    }
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "{} jobs: {} ok, {} skipped, {} failed, {} cancelled; {} in {:.2} s ({}/s)",
        s.total(),
        s.ok,
        s.skipped,
        s.failed,
        s.cancelled,
        human_bytes(s.bytes),
        secs,
        human_bytes((s.bytes as f64 / secs) as u64)
    );
    for (kind, (n, urls)) in &s.failures {
        let _ = writeln!(err, "  {kind}: {n} (e.g. {})", urls.join(", "));
    }
    if let Some(r) = &args.report
        && !s.all_succeeded()
    {
        let _ = writeln!(err, "details per job in {}", r.display());
    }
    let _ = io::stderr().is_terminal();
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
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

/// Ctrl-C: the first cancels the run (in-flight transfers stop, partial files stay for a
/// resume, the report still gets a `cancelled` line per job); a second exits at once.
mod interrupt {
    use std::sync::{Arc, Mutex};

    use fetchpool::CancelHandle;

    #[derive(Clone, Default)]
    pub struct Interrupt(Arc<Mutex<State>>);

    #[derive(Default)]
    struct State {
        handle: Option<CancelHandle>,
        signals: u32,
    }

    /// Installs the handler; a failure to install only costs the graceful stop.
    pub fn install() -> Interrupt {
        let it = Interrupt::default();
        let shared = it.clone();
        let installed = ctrlc::set_handler(move || {
            let mut state = shared.0.lock().unwrap_or_else(|e| e.into_inner());
            state.signals += 1;
            if state.signals > 1 {
                eprintln!("fetchpool: interrupted again; exiting now");
                std::process::exit(i32::from(super::EXIT_INTERRUPTED));
            }
            eprintln!(
                "fetchpool: interrupting; keeping partial files for a resume (Ctrl-C again to quit at once)"
            );
            if let Some(h) = &state.handle {
                h.cancel();
            }
        });
        if let Err(e) = installed {
            log::warn!("cannot install the Ctrl-C handler: {e}");
        }
        it
    }

    impl Interrupt {
        /// Binds the handler to a run; a signal that came before cancels it at once.
        pub fn arm(&self, handle: CancelHandle) {
            let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if state.signals > 0 {
                handle.cancel();
            }
            state.handle = Some(handle);
        }
    }
}
