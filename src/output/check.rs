//! `fetchpool verify`: checks files on disk against a job list's sha256, in parallel, with
//! no network.
//!
//! Jobs are read as a stream and handed to rayon's pool (one thread per core) as threads
//! come free, so a list of any length costs the memory of the jobs in flight plus the
//! problems found.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::{Value, json};

use crate::error::Error;
use crate::job::{Destination, Job};
use crate::resume::hash_file;

/// What is wrong with one listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// No file at the path.
    Missing,
    /// The file exists but its sha256 (or size) differs.
    Mismatch {
        /// What the list expects: a sha256, or a size in bytes.
        expected: String,
        /// What the file has.
        actual: String,
    },
    /// The file could not be read.
    Unreadable {
        /// The operating system's error.
        message: String,
    },
}

/// The result of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// Files whose sha256 (or size, when that is all the list gives) matched.
    pub ok: u64,
    /// Listed files that exist but for which the list gives neither sha256 nor size.
    pub unchecked: u64,
    /// Bytes hashed.
    pub bytes: u64,
    /// Every file with a problem, by path relative to the directory, in list order.
    pub problems: Vec<(PathBuf, Problem)>,
}

impl Verification {
    /// Whether every listed file is present and right.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The result as one JSON object.
    pub fn to_json(&self) -> Value {
        let list = |want: fn(&Problem) -> bool| -> Vec<Value> {
            self.problems
                .iter()
                .filter(|(_, p)| want(p))
                .map(|(path, p)| match p {
                    Problem::Missing => json!({"path": path.to_string_lossy()}),
                    Problem::Mismatch { expected, actual } => json!({
                        "path": path.to_string_lossy(), "expected": expected, "actual": actual}),
                    Problem::Unreadable { message } => {
                        json!({"path": path.to_string_lossy(), "error": message})
                    }
                })
                .collect()
        };
        json!({
            "ok": self.ok,
            "unchecked": self.unchecked,
            "bytes": self.bytes,
            "missing": list(|p| matches!(p, Problem::Missing)),
            "mismatched": list(|p| matches!(p, Problem::Mismatch { .. })),
            "unreadable": list(|p| matches!(p, Problem::Unreadable { .. })),
        })
    }
}

pub(crate) enum Verdict {
    Ok(u64),
    Unchecked,
    Bad(PathBuf, Problem),
}

/// Checks every file job of `jobs` against the files under `dir`, hashing in parallel.
/// Memory jobs are ignored. The first invalid job (a bad line) ends the check with its
/// error.
///
/// ```no_run
/// use fetchpool::{Job, verify};
/// let jobs = vec![Job::new("http://h/a.bin").sha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")];
/// let result = verify("mirror", jobs.into_iter().map(Ok))?;
/// assert!(result.is_clean());
/// # Ok::<(), fetchpool::Error>(())
/// ```
pub fn verify(
    dir: impl AsRef<Path>,
    jobs: impl IntoIterator<Item = Result<Job, Error>, IntoIter: Send>,
) -> Result<Verification, Error> {
    let dir = dir.as_ref();
    // `par_bridge` hands jobs to idle threads as they come: no batch waits for its largest
    // file, and only the jobs in flight are held.
    let verdicts = jobs
        .into_iter()
        .enumerate()
        .par_bridge()
        .map(|(n, job)| {
            let job = job?;
            Ok(match &job.dest {
                Destination::File(rel) => Some((n, check(dir, rel, &job))),
                Destination::Memory => None,
            })
        })
        .try_fold(Tally::default, |mut t, v: Result<_, Error>| {
            if let Some((n, verdict)) = v? {
                t.add(n, verdict);
            }
            Ok::<_, Error>(t)
        })
        .try_reduce(Tally::default, |mut a, b| {
            a.merge(b);
            Ok(a)
        })?;
    Ok(verdicts.finish())
}

/// How many of `jobs` already have their file, with the listed sha256 (and size), under
/// `dir`: what [`verify`] counts as ok, without keeping the others. For a plan over a list
/// of any length.
pub fn count_verified(
    dir: impl AsRef<Path>,
    jobs: impl IntoIterator<Item = Job, IntoIter: Send>,
) -> u64 {
    let dir = dir.as_ref();
    jobs.into_iter()
        .par_bridge()
        .filter(|job| match &job.dest {
            Destination::File(rel) => matches!(check(dir, rel, job), Verdict::Ok(_)),
            Destination::Memory => false,
        })
        .count() as u64
}

/// One thread's share of the result; problems keep their list position for sorting.
#[derive(Default)]
struct Tally {
    out: Verification,
    problems: Vec<(usize, PathBuf, Problem)>,
}

impl Tally {
    fn add(&mut self, n: usize, verdict: Verdict) {
        match verdict {
            Verdict::Ok(bytes) => {
                self.out.ok += 1;
                self.out.bytes += bytes;
            }
            Verdict::Unchecked => self.out.unchecked += 1,
            Verdict::Bad(path, problem) => self.problems.push((n, path, problem)),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.out.ok += other.out.ok;
        self.out.bytes += other.out.bytes;
        self.out.unchecked += other.out.unchecked;
        self.problems.extend(other.problems);
    }

    fn finish(mut self) -> Verification {
        self.problems.sort_by_key(|(n, _, _)| *n);
        self.out.problems = self.problems.into_iter().map(|(_, p, e)| (p, e)).collect();
        self.out
    }
}

/// The one rule for "this file is already right": present, the listed size, the listed
/// sha256 (the size is compared first, so a wrong-size file is never hashed). The run's
/// skip check, `verify` and `--dry-run` all ask it.
pub(crate) fn check(dir: &Path, rel: &Path, job: &Job) -> Verdict {
    let path = dir.join(rel);
    let bad = |p| Verdict::Bad(rel.to_path_buf(), p);
    let meta = match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => m,
        _ => return bad(Problem::Missing),
    };
    if let Some(size) = job.size
        && size != meta.len()
    {
        return bad(Problem::Mismatch {
            expected: format!("{size} bytes"),
            actual: format!("{} bytes", meta.len()),
        });
    }
    let Some(want) = &job.sha256 else {
        return if job.size.is_some() {
            Verdict::Ok(0)
        } else {
            Verdict::Unchecked
        };
    };
    match hash_file(&path) {
        Ok((got, len)) if got == *want => Verdict::Ok(len),
        Ok((got, _)) => bad(Problem::Mismatch {
            expected: want.clone(),
            actual: got,
        }),
        Err(e) => bad(Problem::Unreadable {
            message: e.to_string(),
        }),
    }
}
