//! A run: the two-pass check of the job lists, the selection, the pool's observer loop
//! and the report file, down to the exit code.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fetchpool::{ErrorKind, Event, Pool, PoolBuilder};

use super::args::RunArgs;
use super::checksums::ChecksumWriter;
use super::select::{self, Checked, RetrySet, Selection, describe_selection};
use super::sources::{Source, sources};
use super::{EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK};
use super::{credentials, dry_run, hints, interrupt, progress, responses, summary, sync};

/// Longest a finished job's report line waits in the buffer before it is written.
const REPORT_FLUSH: Duration = Duration::from_millis(100);

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
        .per_host(args.per_host.unwrap_or(args.workers))
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
        .request_rate(args.rate)
        .per_host_request_rate(args.per_host_rate)
        .min_rate(args.min_rate)
        .min_rate_window(args.min_rate_window)
        .split(args.split)
        .segment_size(args.segment_size)
        .output_dir(&args.output_dir)
        .memory_limit(args.memory_limit)
        .content_disposition(args.content_disposition)
        .remote_time(args.remote_time)
        .etag_md5(args.etag_md5)
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
    b = b.system_roots(!args.no_ca_native);
    if let Some(cert) = &args.cert {
        b = b.client_cert(cert, args.key.clone());
    }
    let mut authorization_header = false;
    for h in &args.headers {
        if let Some(file) = h.strip_prefix('@') {
            for (k, v) in credentials::header_file(file)? {
                authorization_header |= k.eq_ignore_ascii_case("authorization");
                b = b.header(k, v);
            }
            continue;
        }
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
        authorization_header |= k.eq_ignore_ascii_case("authorization");
        b = b.header(k, v);
    }
    for name in &args.save_header {
        fetchpool::check_header(name, "").map_err(|_| {
            anyhow::anyhow!(
                "--save-header '{}' is not a header name (letters, digits and \
                 !#$%&'*+-.^_`|~ only); give one like --save-header ETag",
                fetchpool::redact::clip(name, 60)
            )
        })?;
    }
    b = b.keep_headers(args.save_header.iter().cloned());
    if let Some(user) = &args.user {
        if authorization_header {
            anyhow::bail!(
                "-u and an Authorization header (-H) both give credentials; keep one of them"
            );
        }
        let password = std::env::var(credentials::PASSWORD_VAR).ok();
        b = b.header("Authorization", credentials::from_user_arg(user, password)?);
    }
    Ok(b)
}

pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    let selection = Selection {
        shard: select::shard(&args)?,
        retry: (!args.retry_failed.is_empty())
            .then(|| RetrySet::read(&args.retry_failed))
            .transpose()?,
    };
    if !args.retry_failed.is_empty() && args.input.is_empty() && args.urls.is_empty() {
        anyhow::bail!(
            "--retry-failed needs the job list the report came from: give the same -i FILE or \
             URLs again (the report names the jobs; the list says how to check them)"
        );
    }
    if args.json && args.responses.as_deref() == Some(Path::new("-")) {
        anyhow::bail!(
            "--responses - and --json both write to stdout; give --responses a FILE, or drop \
             --json (the summary then goes to stderr)"
        );
    }
    let sources = sources(&args)?;
    let progress_mode = args
        .progress
        .resolve(args.quiet || args.dry_run, io::stderr().is_terminal());
    let show_bar = progress_mode == progress::Mode::Bar;
    // Progress is the only consumer of progress events; without it the workers skip them.
    let pool = builder(&args)?
        .progress_events(progress_mode != progress::Mode::None)
        .build()?;
    let netrc = match (&args.netrc_file, args.netrc) {
        (Some(path), _) => Some(credentials::Netrc::read(path)?),
        (None, true) => Some(credentials::Netrc::read(
            &credentials::Netrc::default_path()?,
        )?),
        (None, false) => None,
    };
    // -u or -H gives every job its credentials; a .netrc entry only jobs that have none.
    let global_auth = pool
        .config()
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
    let netrc = netrc.filter(|_| !global_auth);

    let checked = match check(
        &sources,
        &selection,
        &args.output_dir,
        args.delete_extraneous,
    )? {
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
                retry.names(),
                shown.join(", "),
                if left.len() > SHOWN { ", …" } else { "" }
            );
            return Ok(EXIT_CONFIG);
        }
    }
    // Refused over --max-delete now, before any request; deleted only after the run.
    let keep = args
        .delete_extraneous
        .then(|| sync::keep_set(&args, checked.paths.clone()));
    let extraneous = match &keep {
        Some(keep) => match sync::find(&args, keep) {
            Ok(extra) => Some(extra),
            Err(e) => {
                eprintln!("fetchpool: {e:#}");
                return Ok(EXIT_CONFIG);
            }
        },
        None => None,
    };
    if args.dry_run {
        dry_run::print_plan(&args, &sources, &selection, &checked, extraneous.as_ref());
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
    // `verify` only read, so they take no lock, nor does a run of memory jobs only.
    // The shards of one list may run at once into one directory (one lock each); shard
    // 1/1 (a Slurm array of one task) is the whole list.
    let lock = (checked.file_jobs > 0).then(|| match selection.shard {
        Some(shard) if shard.count() > 1 => pool.lock_output_shard(shard),
        _ => pool.lock_output(),
    });
    let _lock = match lock.transpose() {
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
    let mut responses = args
        .responses
        .as_deref()
        .map(responses::Responses::create)
        .transpose()?;
    let mut placed: Vec<std::path::PathBuf> = Vec::new();
    let mut sums = match &args.write_checksums {
        Some(path) => Some(ChecksumWriter::create(path, &args.output_dir)?),
        None => None,
    };
    let mut bar = show_bar.then(|| progress::Progress::new(checked.plan.jobs));

    let reread_errors = AtomicUsize::new(0);
    let jobs = super::sources::jobs(&sources, &checked.names).filter_map(|j| match j {
        Ok(job) => selection.takes(&job).then_some(job),
        Err(e) => {
            // The list changed between the check and the run; say so, never skip silently.
            log::error!("{e}");
            reread_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    });
    let netrc = netrc.as_ref();
    let jobs = jobs.map(move |mut job| {
        if let Some(netrc) = netrc
            && !job
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            && let Some(value) = netrc.authorization(&job.url)
        {
            job.headers.push(("Authorization".to_string(), value));
        }
        job
    });
    let mut report_error: Option<io::Error> = None;
    let mut last_flush = Instant::now();
    let mut first_failures: BTreeMap<ErrorKind, (String, fetchpool::Error)> = BTreeMap::new();
    let interrupt = interrupt::install();
    let status_lines = matches!(progress_mode, progress::Mode::Lines | progress::Mode::Json);
    let tally = std::sync::Arc::new(progress::Tally::default());
    let mut counter = status_lines.then(|| progress::Counter::new(tally.clone()));
    let (stop_lines, lines_stopped) = crossbeam_channel::bounded::<()>(1);
    let summary = std::thread::scope(|scope| {
        if status_lines {
            let (tally, total) = (&tally, checked.plan.jobs);
            let interval = args.progress_interval.max(Duration::from_millis(100));
            let stopped = &lines_stopped;
            scope.spawn(move || {
                progress::report_every(progress_mode, interval, total, tally, stopped)
            });
        }
        let summary = pool.run_with_cancel(
            jobs,
            |h| interrupt.arm(h),
            |event, _| {
                if let Some(bar) = bar.as_mut() {
                    bar.observe(event);
                }
                if let Some(counter) = counter.as_mut() {
                    counter.observe(event);
                }
                if let Event::Finished(outcome) = event {
                    if let Some(r) = responses.as_mut() {
                        r.record(outcome, outcome.path.is_none());
                    }
                    if let Some(sums) = sums.as_mut() {
                        sums.observe(outcome);
                    }
                    // A file placed under another name (Content-Disposition) is the run's.
                    if let (Some(keep), Some(path)) = (&keep, &outcome.path)
                        && outcome.status.is_success()
                        && !keep.contains(path)
                    {
                        placed.push(path.clone());
                    }
                    if let Some(w) = report.as_mut()
                        && report_error.is_none()
                    {
                        // Lines reach the file within REPORT_FLUSH of their job's end, in
                        // one write per interval rather than one per job.
                        let mut line = outcome.to_json();
                        // The message in the command line's terms: the flag that changes it.
                        if let Some(e) = &outcome.error {
                            line["error"]["message"] = hints::message(e).into();
                        }
                        // When it ended (Unix ms): `fetchpool report` gives the span of
                        // several shards' runs from it, and takes the latest of a job's lines.
                        line["finished_at_ms"] = unix_ms().into();
                        // Whole into the buffer: a line is never split across two writes.
                        let line = line.to_string();
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
                            .or_insert_with(|| (url.to_string(), e.clone()));
                        let e = hints::message(e);
                        match &bar {
                            Some(bar) => bar.println(format!("{} {url}: {e}", outcome.status)),
                            None => log::warn!("{} {url}: {e}", outcome.status),
                        }
                    }
                }
            },
        );
        drop(stop_lines);
        summary
    });
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
    let mut sync_failed = false;
    if let Some(mut keep) = keep {
        keep.extend(placed);
        if summary.all_succeeded()
            && !summary.interrupted
            && reread_errors.load(Ordering::Relaxed) == 0
        {
            // Found again: the run may have changed the tree.
            let done = sync::find(&args, &keep)
                .and_then(|extra| sync::delete(&args.output_dir, &extra, args.quiet));
            if let Err(e) = done {
                let _ = writeln!(err, "fetchpool: {e:#}");
                sync_failed = true;
            }
        } else {
            let _ = writeln!(
                err,
                "fetchpool: --delete-extraneous deleted nothing: not every job succeeded"
            );
        }
    }
    let responses_error = responses.and_then(responses::Responses::finish);
    if let Some(e) = &responses_error {
        let _ = writeln!(err, "fetchpool: writing the responses failed: {e}");
    }
    let mut sums_failed = false;
    if let Some(sums) = sums
        && let Err(e) = sums.finish()
    {
        let _ = writeln!(err, "fetchpool: {e:#}");
        sums_failed = true;
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
    } else if sync_failed {
        EXIT_CONFIG
    } else if summary.all_succeeded() && !sums_failed {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// Now in milliseconds since the Unix epoch (0 for a clock set before it).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// First pass: checks every line and the whole selection before any request. Every
/// line is validated, even those of other shards, so every machine of a sharded run
/// rejects a broken list alike; the whole-list checks (duplicate paths, dependencies)
/// apply to the jobs this run takes.
fn check(
    sources: &[Source],
    selection: &Selection,
    output_dir: &Path,
    want_paths: bool,
) -> anyhow::Result<Result<Checked, Problems>> {
    let names = super::sources::name_all(sources)?;
    let mut paths = std::collections::HashSet::new();
    let mut checker = fetchpool::PlanChecker::new();
    let mut errors = Problems::default();
    let mut listed = 0;
    let mut retry_matched = std::collections::HashSet::new();
    let mut file_jobs = 0;
    for job in super::sources::jobs(sources, &names) {
        match job {
            Ok(job) => {
                listed += 1;
                if want_paths && let Some(p) = job.path() {
                    paths.insert(p.to_path_buf());
                }
                if let Some(key) = selection.retry.as_ref().and_then(|r| r.matching(&job)) {
                    retry_matched.insert(key);
                }
                if let Err(e) = fetchpool::PlanChecker::check(&job, output_dir) {
                    let line = job.origin.as_ref().map(|o| format!("{o}: "));
                    errors.push(format!("{}{e}", line.unwrap_or_default()));
                } else if selection.takes(&job) {
                    file_jobs += u64::from(job.path().is_some());
                    checker.add(&job);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let list_names: Vec<&str> = sources.iter().map(Source::name).collect();
    // Read again only when a path may repeat; a list that cannot be reopened now was
    // readable a moment ago, and the run itself will say so if it stays unreadable.
    let finished = checker.finish(&list_names.join(", "), |visit| {
        super::sources::jobs(sources, &names)
            .flatten()
            .filter(|job| selection.takes(job))
            .for_each(|job| visit(&job))
    });
    Ok(match finished {
        Ok(plan) if errors.count == 0 => Ok(Checked {
            plan,
            listed,
            retry_matched,
            file_jobs,
            names,
            paths,
        }),
        Ok(_) => Err(errors),
        Err(more) => {
            more.iter().for_each(|e| errors.push(e));
            Err(errors)
        }
    })
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
