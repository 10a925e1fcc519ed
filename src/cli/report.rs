//! `fetchpool report`: one summary over the reports several runs left behind (the
//! shards of one list, a run and its retries), and, given the list, which of its jobs no
//! report has.
//!
//! The reports are read twice, so memory stays under 100 bytes per job however long
//! they are: the first pass finds each job's latest line (a job is keyed as
//! `--retry-failed` keys it: output path and the URL's host and path), the second counts
//! those lines into the library's [`fetchpool::Summary`], the one a run prints.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use fetchpool::{ErrorKind, ManifestReader, Status, Summary};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::args::ReportArgs;
use super::select::key;
use super::{EXIT_FAILED, EXIT_OK, glob, summary};

/// How many jobs each problem (duplicated, missing, unlisted) names.
const SHOWN: usize = 5;

/// A job's key, hashed: 16 bytes per job instead of its URL and path.
type Hash = [u8; 16];

/// Where a line is: its report's place on the command line and its 1-based line.
type Place = (usize, u64);

/// The line that stands for one job, and how many lines named it.
struct Latest {
    /// `finished_at_ms` (0 for a line without it), then the line's place: the latest wins.
    order: (u64, Place),
    lines: u32,
    listed: bool,
}

/// One report line, as much of it as the summary needs.
struct Line {
    url: String,
    path: Option<String>,
    status: Status,
    bytes: u64,
    kind: Option<ErrorKind>,
    elapsed_ms: u64,
    finished_at_ms: Option<u64>,
}

/// Jobs a problem is about: how many, and the first few by name.
#[derive(Default)]
struct Named {
    count: u64,
    names: Vec<String>,
}

impl Named {
    fn push(&mut self, name: impl FnOnce() -> String) {
        self.count += 1;
        if self.names.len() < SHOWN {
            self.names.push(name());
        }
    }

    fn to_json(&self) -> Value {
        json!({"count": self.count, "examples": self.names})
    }

    fn shown(&self) -> String {
        let more = if self.count > self.names.len() as u64 {
            ", …"
        } else {
            ""
        };
        format!("{}{more}", self.names.join(", "))
    }
}

pub fn report(args: ReportArgs) -> anyhow::Result<u8> {
    let reports = glob::expand(&args.reports)?;

    // Pass 1: each job's latest line.
    let mut latest: HashMap<Hash, Latest> = HashMap::new();
    for_each_line(&reports, |place, line| {
        let order = (line.finished_at_ms.unwrap_or(0), place);
        let e = latest
            .entry(hash(&line.url, line.path.clone()))
            .or_insert(Latest {
                order,
                lines: 0,
                listed: false,
            });
        e.lines += 1;
        e.order = e.order.max(order);
        Ok(())
    })?;

    // The list: which of its jobs have no line.
    let mut missing = Named::default();
    let listed = !args.input.is_empty();
    for input in &args.input {
        let file = File::open(input)
            .with_context(|| format!("cannot open job list '{}'", input.display()))?;
        let reader = BufReader::with_capacity(64 * 1024, file);
        for job in ManifestReader::new(input.display().to_string(), reader) {
            let job = job.map_err(|e| anyhow::anyhow!("{e}"))?;
            let path = job.path().map(|p| p.to_string_lossy().into_owned());
            match latest.get_mut(&hash(&job.url, path.clone())) {
                Some(e) => e.listed = true,
                None => missing.push(|| path.unwrap_or_else(|| job.url.clone())),
            }
        }
    }

    // Pass 2: the latest lines, counted.
    let mut s = Summary::default();
    let (mut duplicated, mut unlisted) = (Named::default(), Named::default());
    let (mut first_start, mut last_end) = (u64::MAX, 0u64);
    let mut timed = true;
    for_each_line(&reports, |place, line| {
        // A line written since the first pass (a shard still running) is left for the
        // next look.
        let Some(e) = latest.get(&hash(&line.url, line.path.clone())) else {
            return Ok(());
        };
        if e.order.1 != place {
            return Ok(());
        }
        let name = || line.path.clone().unwrap_or_else(|| line.url.clone());
        if e.lines > 1 {
            duplicated.push(|| format!("{} ({} lines)", name(), e.lines));
        }
        if listed && !e.listed {
            unlisted.push(name);
        }
        match line.finished_at_ms {
            Some(end) => {
                first_start = first_start.min(end.saturating_sub(line.elapsed_ms));
                last_end = last_end.max(end);
            }
            None => timed = false,
        }
        s.count(line.status, line.bytes, line.kind, &line.url);
        Ok(())
    })?;
    // The span from the first job's start to the last one's end, over every report.
    if timed && last_end > 0 {
        s.elapsed = Duration::from_millis(last_end - first_start);
    }

    if args.json {
        let mut v = s.to_json();
        v["reports"] = json!(reports.len());
        v["span_known"] = json!(timed);
        v["duplicated"] = duplicated.to_json();
        if listed {
            v["missing"] = missing.to_json();
            v["unlisted"] = unlisted.to_json();
        }
        let _ = writeln!(io::stdout(), "{v}");
    }
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "{} reports: {}",
        reports.len(),
        summary::counts_line(&s)
    );
    if !timed {
        let _ = writeln!(
            err,
            "  (time span unknown: some lines have no finished_at_ms, written before it existed)"
        );
    }
    for (kind, (n, urls)) in &s.failures {
        let _ = writeln!(err, "  {kind}: {n} (e.g. {})", urls.join(", "));
    }
    if duplicated.count > 0 {
        let _ = writeln!(
            err,
            "  {} job(s) appear in more than one report, counted once by their latest line: {}",
            duplicated.count,
            duplicated.shown()
        );
    }
    if missing.count > 0 {
        let _ = writeln!(
            err,
            "  {} listed job(s) have no line in any report: {}",
            missing.count,
            missing.shown()
        );
    }
    if unlisted.count > 0 {
        let _ = writeln!(
            err,
            "  {} reported job(s) are not in the list: {}",
            unlisted.count,
            unlisted.shown()
        );
    }
    Ok(if s.all_succeeded() && missing.count == 0 {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// A job's key, hashed.
fn hash(url: &str, path: Option<String>) -> Hash {
    let (url, path) = key(url, path);
    let mut h = Sha256::new();
    h.update(url.as_bytes());
    // A separator no URL holds, then the path: ("a", "b/c") and ("a/b", "c") differ.
    h.update([0u8, path.is_some() as u8]);
    h.update(path.unwrap_or_default().as_bytes());
    h.finalize()[..16].try_into().expect("16 of 32 bytes")
}

/// Calls `f` with every line of every report and its place.
fn for_each_line(
    reports: &[PathBuf],
    mut f: impl FnMut(Place, &Line) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for (i, path) in reports.iter().enumerate() {
        let file =
            File::open(path).with_context(|| format!("cannot open report '{}'", path.display()))?;
        for (n, text) in BufReader::with_capacity(64 * 1024, file)
            .lines()
            .enumerate()
        {
            let text = text.with_context(|| format!("cannot read '{}'", path.display()))?;
            if text.trim().is_empty() {
                continue;
            }
            let line = parse(path, n as u64 + 1, &text)?;
            f((i, n as u64 + 1), &line)?;
        }
    }
    Ok(())
}

fn parse(path: &Path, n: u64, text: &str) -> anyhow::Result<Line> {
    let bad = |what: &str| {
        anyhow::anyhow!(
            "{}:{n}: {what}; fetchpool report reads files written by --report",
            path.display()
        )
    };
    let v: Value = serde_json::from_str(text).map_err(|_| bad("not a report line (JSON)"))?;
    let url = v["url"].as_str().ok_or_else(|| bad("no \"url\""))?;
    let status = v["status"].as_str().ok_or_else(|| bad("no \"status\""))?;
    let status =
        Status::from_name(status).ok_or_else(|| bad(&format!("unknown status '{status}'")))?;
    let kind = match v["error"]["kind"].as_str() {
        None => None,
        Some(k) => {
            Some(ErrorKind::from_name(k).ok_or_else(|| bad(&format!("unknown error kind '{k}'")))?)
        }
    };
    Ok(Line {
        url: url.to_string(),
        path: v["path"].as_str().map(str::to_string),
        status,
        bytes: v["bytes"].as_u64().unwrap_or(0),
        kind,
        elapsed_ms: v["elapsed_ms"].as_u64().unwrap_or(0),
        finished_at_ms: v["finished_at_ms"].as_u64(),
    })
}
