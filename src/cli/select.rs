//! Which jobs of the list this run takes: its shard (`--shard`) and, when retrying, only
//! the jobs an earlier report says did not succeed (`--retry-failed`).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use fetchpool::{Job, Shard};

use crate::cli::args::{RunArgs, ShardArg};

/// The shard this process takes, if any; `auto` reads the batch system's variables.
pub fn shard(args: &RunArgs) -> anyhow::Result<Option<Shard>> {
    Ok(match args.shard {
        None => {
            if args.shard_count.is_some() {
                anyhow::bail!("--shard-count only goes with --shard auto");
            }
            None
        }
        Some(ShardArg::Fixed(s)) => Some(s),
        Some(ShardArg::Auto) => Some(Shard::from_env(
            |k| std::env::var(k).ok(),
            args.shard_count,
        )?),
    })
}

/// The jobs earlier reports say did not succeed, keyed by output path and the URL's
/// host and path ([`fetchpool::resource_key`]: a re-signed URL's new query still matches);
/// a memory job, which has no path, by its whole URL with its secrets hidden, as the
/// report shows it ([`fetchpool::redact::url`], on both sides: a report written before
/// redaction matches as well).
///
/// Failed and cancelled jobs are both re-run: a cancelled job (interrupted, stopped by
/// `--fail-fast`, or waiting on a failed dependency) did not finish any more than a failed
/// one did. Jobs that ended ok or skipped are left alone, also when another of the
/// reports (an earlier attempt at the same shard) says they failed.
pub struct RetrySet {
    pub reports: Vec<PathBuf>,
    pub jobs: HashSet<RetryKey>,
}

/// How a report line and a listed job are matched.
pub type RetryKey = (String, Option<String>);

/// The key of a job or of a report line: its URL and path.
pub fn key(url: &str, path: Option<String>) -> RetryKey {
    match path {
        Some(p) => (fetchpool::resource_key(url), Some(p)),
        None => (fetchpool::redact::url(url).into_owned(), None),
    }
}

impl RetrySet {
    /// Reads the reports (file-name patterns expanded, see [`crate::cli::glob`]).
    pub fn read(paths: &[PathBuf]) -> anyhow::Result<RetrySet> {
        let reports = crate::cli::glob::expand(paths)?;
        let mut jobs = HashSet::new();
        let mut succeeded = HashSet::new();
        for path in &reports {
            read_one(path, &mut jobs, &mut succeeded)?;
        }
        jobs.retain(|k| !succeeded.contains(k));
        Ok(RetrySet { reports, jobs })
    }

    /// The reports' names, for messages.
    pub fn names(&self) -> String {
        let names: Vec<String> = self
            .reports
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        names.join(", ")
    }

    /// The key of `job` when the report says it did not succeed.
    pub fn matching(&self, job: &Job) -> Option<RetryKey> {
        // Borrowed lookups on a tuple key need an owned probe; failures are few.
        let path = job.path().map(|p| p.to_string_lossy().into_owned());
        Some(key(&job.url, path)).filter(|k| self.jobs.contains(k))
    }

    fn contains(&self, job: &Job) -> bool {
        self.matching(job).is_some()
    }

    /// The report's unfinished jobs that no listed job matched (`matched` holds the keys
    /// the listed jobs matched), their paths (or URLs) sorted.
    pub fn unmatched(&self, matched: &HashSet<RetryKey>) -> Vec<String> {
        let mut left: Vec<String> = self
            .jobs
            .difference(matched)
            .map(|(url, path)| path.clone().unwrap_or_else(|| url.clone()))
            .collect();
        left.sort();
        left
    }
}

/// Adds one report's failed or cancelled jobs to `failed`, its ok and skipped ones to
/// `succeeded`.
fn read_one(
    path: &Path,
    failed: &mut HashSet<RetryKey>,
    succeeded: &mut HashSet<RetryKey>,
) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| {
        format!(
            "cannot open the report '{}' for --retry-failed",
            path.display()
        )
    })?;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read '{}'", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}:{}: not a report line (JSON); --retry-failed takes a file written by --report",
                path.display(),
                n + 1
            )
        })?;
        let (Some(url), Some(status)) = (v["url"].as_str(), v["status"].as_str()) else {
            anyhow::bail!(
                "{}:{}: a report line needs \"url\" and \"status\"; --retry-failed takes a file written by --report",
                path.display(),
                n + 1
            );
        };
        let k = key(url, v["path"].as_str().map(str::to_string));
        if matches!(status, "failed" | "cancelled") {
            failed.insert(k);
        } else {
            succeeded.insert(k);
        }
    }
    Ok(())
}

/// Which listed jobs this run takes: its shard, and only earlier failures when retrying.
pub struct Selection {
    pub shard: Option<Shard>,
    pub retry: Option<RetrySet>,
}

impl Selection {
    pub fn takes(&self, job: &Job) -> bool {
        self.shard.is_none_or(|s| s.contains(job))
            && self.retry.as_ref().is_none_or(|r| r.contains(job))
    }

    pub fn is_all(&self) -> bool {
        self.shard.is_none() && self.retry.is_none()
    }
}

/// What the check pass learned: the plan of the selected jobs, and how many were listed.
pub struct Checked {
    pub plan: fetchpool::Plan,
    pub listed: u64,
    /// The `--retry-failed` keys some listed job matched.
    pub retry_matched: HashSet<RetryKey>,
    /// How many of the jobs this run takes write a file (the others are memory jobs).
    pub file_jobs: u64,
    /// The new names of URL-named jobs whose names repeat in the list.
    pub names: fetchpool::Names,
    /// Every file path the lists name (all shards), when `--delete-extraneous` needs them.
    pub paths: HashSet<PathBuf>,
}

/// The selection in words: "N of M listed jobs (shard K/N, failed in REPORT)".
pub fn describe_selection(selection: &Selection, checked: &Checked) -> String {
    let mut parts = Vec::new();
    if let Some(s) = selection.shard {
        parts.push(format!("shard {s}"));
    }
    if let Some(r) = &selection.retry {
        parts.push(format!("failed in {}", r.names()));
    }
    format!(
        "{} of {} listed jobs ({})",
        checked.plan.jobs,
        checked.listed,
        parts.join(", ")
    )
}
