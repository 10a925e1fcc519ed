//! The one "already right" rule: a file is the one its job wants when it has the job's
//! checksum (and size). [`checksum::hash_file`] computes it; the up-to-date [`Precheck`] applies it
//! before any request so that such a job is skipped; [`verify`] applies it to a whole
//! list on disk, with no network.
//!
//! [`Precheck`] hashes existing files in parallel with rayon, a batch at a time as jobs
//! stream, so memory stays flat.
//!
//! Jobs are read as a stream and handed to rayon's pool (one thread per core) as threads
//! come free, so a list of any length costs the memory of the jobs in flight plus the
//! problems found.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde_json::{Value, json};

use crate::checksum::{self, Algorithm, DigestSource, Verified};
use crate::error::Error;
use crate::job::{Destination, Job, STATE_DIR};

/// What is wrong with one listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// No file at the path.
    Missing,
    /// The file exists but its checksum (or size) differs.
    Mismatch {
        /// What the list expects: a sha256 (bare hex), another digest (`ALGO:HEX`), or a
        /// size in bytes.
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
#[non_exhaustive]
pub struct Verification {
    /// Files whose checksum (or size, when that is all the list gives) matched.
    pub ok: u64,
    /// Listed files that exist but for which the list gives neither checksum nor size.
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
    /// Right: its length, and its sha256 when it was hashed.
    Ok(u64, Option<String>),
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
            Destination::File(rel) => matches!(check(dir, rel, job), Verdict::Ok(..)),
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
            Verdict::Ok(bytes, _) => {
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
/// checksum (the size is compared first, so a wrong-size file is never hashed). The run's
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
    let Some(want) = &job.checksum else {
        return if job.size.is_some() {
            Verdict::Ok(0, None)
        } else {
            Verdict::Unchecked
        };
    };
    match checksum::hash_file(&path, [want.algorithm]) {
        Ok((digests, len)) => {
            let got = digests.get(want.algorithm).unwrap_or_default();
            if got == want.hex {
                Verdict::Ok(len, Some(digests.sha256()))
            } else if want.algorithm == Algorithm::Sha256 {
                bad(Problem::Mismatch {
                    expected: want.hex.clone(),
                    actual: got.to_string(),
                })
            } else {
                bad(Problem::Mismatch {
                    expected: want.to_string(),
                    actual: format!("{}:{got}", want.algorithm),
                })
            }
        }
        Err(e) => bad(Problem::Unreadable {
            message: e.to_string(),
        }),
    }
}

/// How many jobs the pre-check hashes at once. Large enough to keep every core busy,
/// small enough that the first downloads start at once.
const PRECHECK_BATCH: usize = 64;

/// An existing file that already has the job's checksum (and size, when given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpToDate {
    pub(crate) len: u64,
    /// The file's sha256, for the report.
    pub(crate) sha256: Option<String>,
    /// What it was checked against: the job's checksum.
    pub(crate) verified: Option<Verified>,
    /// Where it is when an earlier run moved it to its `Content-Disposition` name.
    pub(crate) placed: Option<PathBuf>,
}

/// Hashes `PATH` when the job names a checksum and the file exists (at `PATH`, or where
/// an earlier run moved it, which the validator store in `store` says): `None` when there
/// is nothing to hash, else whether the file is right (by [`verify`]'s rule).
fn check_file(output_dir: &Path, store: Option<&Path>, job: &Job) -> Option<Option<UpToDate>> {
    let (Destination::File(rel), Some(want)) = (&job.dest, &job.checksum) else {
        return None;
    };
    let (verdict, placed) = match check(output_dir, rel, job) {
        Verdict::Bad(_, Problem::Missing) if job.named_from_url => {
            let placed = store.and_then(|s| super::validators::placed(s, rel, &job.url))?;
            (check(output_dir, &placed, job), Some(placed))
        }
        verdict => (verdict, None),
    };
    match verdict {
        Verdict::Bad(_, Problem::Missing) => None,
        Verdict::Ok(len, sha256) => Some(Some(UpToDate {
            len,
            sha256,
            verified: Some(Verified {
                algorithm: want.algorithm,
                source: DigestSource::List,
            }),
            placed,
        })),
        _ => Some(None),
    }
}

/// Verdicts of the pre-check, waiting for their jobs to reach a worker. An entry lives from
/// its batch's hashing to its job's attempt, so the map holds at most what the scheduler
/// and the submission channel hold: bounded, however long the list.
#[derive(Debug, Default)]
pub(crate) struct Precheck {
    verdicts: Mutex<HashMap<PathBuf, Option<UpToDate>>>,
    /// The output directory was empty when the run started: no file can be up to date
    /// and no part can be resumed, so no job pays a lookup to find that out.
    fresh: bool,
    /// The state directory, where the validator store says which files earlier runs
    /// moved to their `Content-Disposition` names.
    store: Option<PathBuf>,
}

impl Precheck {
    /// The pre-check for a run writing into `output_dir`.
    pub(crate) fn for_output(output_dir: &Path, state_dir: Option<&Path>) -> Precheck {
        // The state directory does not count: no job's file or part can be inside it.
        let fresh = fs::read_dir(output_dir)
            .is_ok_and(|mut entries| entries.all(|e| e.is_ok_and(|e| e.file_name() == STATE_DIR)));
        Precheck {
            verdicts: Mutex::default(),
            fresh,
            store: state_dir.map(Path::to_path_buf),
        }
    }

    /// Whether the output directory was empty when the run started.
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Whether the job's file is already right: the pre-check's verdict when it made one,
    /// else hashed now (jobs submitted one by one through a `Session`).
    pub(crate) fn up_to_date(&self, output_dir: &Path, job: &Job) -> Option<UpToDate> {
        let Destination::File(rel) = &job.dest else {
            return None;
        };
        job.checksum.as_ref()?;
        if self.fresh {
            return None;
        }
        let known = self
            .verdicts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(rel);
        match known {
            Some(verdict) => verdict,
            None => check_file(output_dir, self.store.as_deref(), job).flatten(),
        }
    }

    /// Wraps a job stream: each batch of jobs is checked in parallel before it is handed on.
    /// Once `cancelled` is set, jobs pass unchecked (they are about to be cancelled).
    pub(crate) fn stream<'a, I>(
        &'a self,
        output_dir: &'a Path,
        cancelled: &'a AtomicBool,
        jobs: I,
    ) -> impl Iterator<Item = Job> + Send + 'a
    where
        I: Iterator<Item = Job> + Send + 'a,
    {
        let mut jobs = jobs.fuse();
        let mut batch: std::vec::IntoIter<Job> = Vec::new().into_iter();
        std::iter::from_fn(move || {
            if batch.len() == 0 {
                let next: Vec<Job> = jobs.by_ref().take(PRECHECK_BATCH).collect();
                if self.fresh || cancelled.load(Ordering::Relaxed) {
                    batch = next.into_iter();
                    return batch.next();
                }
                let verdicts: Vec<(PathBuf, Option<UpToDate>)> = next
                    .par_iter()
                    .filter_map(|job| {
                        let v = check_file(output_dir, self.store.as_deref(), job)?;
                        Some((job.path()?.to_path_buf(), v))
                    })
                    .collect();
                if !verdicts.is_empty() {
                    self.verdicts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(verdicts);
                }
                batch = next.into_iter();
            }
            batch.next()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_holding_only_the_state_directory_is_fresh() {
        let dir = std::env::temp_dir().join(format!("fetchpool-fresh-{}", std::process::id()));
        fs::create_dir_all(dir.join(STATE_DIR)).unwrap();
        fs::write(dir.join(STATE_DIR).join("lock"), b"1\n").unwrap();
        assert!(Precheck::for_output(&dir, None).is_fresh());
        fs::write(dir.join("a.bin.part"), b"x").unwrap();
        assert!(!Precheck::for_output(&dir, None).is_fresh());
        fs::remove_dir_all(&dir).unwrap();
    }
}
