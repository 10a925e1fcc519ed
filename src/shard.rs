//! Sharding: a stable share of a job list, so N machines split one list with no
//! coordination (`--shard K/N`, `--shard auto`).
//!
//! A job belongs to shard `(first 8 bytes of sha256(path), big-endian) mod N`, where
//! `path` is its normalized output path with `/` separators (its URL for memory jobs).
//! sha256 is fixed by a standard, so the assignment is the same on every machine, OS and
//! release (std's `DefaultHasher` promises none of that), and it spreads similar names
//! evenly. A job's shard depends only on its own path, never on the list's order or
//! length, so a list that grows moves no existing job to another shard.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::error::Setting;
use crate::job::{Destination, Job, normalize};

/// One shard of N: `index` is 0-based (the text `1/3` is index 0 of 3). A job belongs
/// to one shard by its output path, the same on every machine.
///
/// ```
/// use fetchpool::{Job, Shard};
/// let shards: Vec<Shard> = (1..=3).map(|k| Shard::parse(&format!("{k}/3")).unwrap()).collect();
/// let job = Job::new("http://127.0.0.1:8080/a.bin");
/// assert_eq!(shards.iter().filter(|s| s.contains(&job)).count(), 1);
/// assert_eq!((shards[0].index(), shards[0].count()), (0, 3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// Shard `index` (0-based) of `count`. Fails unless `index < count`.
    pub fn new(index: u64, count: u64) -> Result<Shard, Error> {
        if count == 0 || index >= count {
            return Err(Error::config(format!(
                "shard {} of {count} does not exist; shards are numbered 1 to {count}",
                index + 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// Parses `K/N`, 1-based as people count: `1/3`, `2/3`, `3/3`.
    pub fn parse(s: &str) -> Result<Shard, Error> {
        let bad = || {
            Error::setting(
                Setting::Shard,
                format!("'{s}': write K/N with 1 ≤ K ≤ N (for example 2/8), or 'auto'"),
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: u64 = k.trim().parse().map_err(|_| bad())?;
        let n: u64 = n.trim().parse().map_err(|_| bad())?;
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Shard::new(k - 1, n)
    }

    /// Reads the shard from a batch system's environment, through `var` (pass
    /// `|k| std::env::var(k).ok()`; the library reads nothing by itself):
    ///
    /// - Kubernetes Indexed Job: `JOB_COMPLETION_INDEX` (0-based) with the count from
    ///   `count` (`--shard-count`) or `FETCHPOOL_SHARD_COUNT` (set it to the Job's
    ///   `completions`).
    /// - Slurm job array: `SLURM_ARRAY_TASK_ID` minus `SLURM_ARRAY_TASK_MIN` (divided by
    ///   `SLURM_ARRAY_TASK_STEP` when set), of `SLURM_ARRAY_TASK_COUNT` (or `count`).
    ///
    /// ```
    /// use fetchpool::Shard;
    /// let env = |k: &str| match k {
    ///     "SLURM_ARRAY_TASK_ID" => Some("7".to_string()),
    ///     "SLURM_ARRAY_TASK_MIN" => Some("5".to_string()),
    ///     "SLURM_ARRAY_TASK_COUNT" => Some("4".to_string()),
    ///     _ => None,
    /// };
    /// assert_eq!(Shard::from_env(env, None)?, Shard::new(2, 4)?);
    /// # Ok::<(), fetchpool::Error>(())
    /// ```
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        count: Option<u64>,
    ) -> Result<Shard, Error> {
        let num = |name: &str| -> Result<Option<u64>, Error> {
            match var(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| Error::config(format!("{name}='{v}' is not a whole number"))),
            }
        };
        if let Some(index) = num("JOB_COMPLETION_INDEX")? {
            let count = match count {
                Some(n) => n,
                None => num("FETCHPOOL_SHARD_COUNT")?.ok_or_else(|| {
                    Error::setting(
                        Setting::ShardCount,
                        "found JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) but no count: give \
                         the shard count or set FETCHPOOL_SHARD_COUNT to the Job's completions",
                    )
                })?,
            };
            return Shard::new(index, count);
        }
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            let count = match count {
                Some(n) => n,
                None => num("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                    Error::setting(
                        Setting::ShardCount,
                        "found SLURM_ARRAY_TASK_ID but not SLURM_ARRAY_TASK_COUNT; give the shard \
                         count",
                    )
                })?,
            };
            let index = id.checked_sub(min).ok_or_else(|| {
                Error::config(format!(
                    "SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"
                ))
            })? / step;
            return Shard::new(index, count);
        }
        Err(Error::setting(
            Setting::Shard,
            "reading the shard from the environment needs JOB_COMPLETION_INDEX (Kubernetes \
             Indexed Job) or SLURM_ARRAY_TASK_ID (Slurm job array); elsewhere give K/N",
        ))
    }

    /// The 0-based index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The number of shards.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether `job` belongs to this shard.
    pub fn contains(&self, job: &Job) -> bool {
        shard_of(job, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// The 0-based shard of `count` that `job` belongs to.
pub fn shard_of(job: &Job, count: u64) -> u64 {
    let digest = match &job.dest {
        Destination::File(path) => Sha256::digest(key(path).as_bytes()),
        Destination::Memory => Sha256::digest(job.url.as_bytes()),
    };
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(prefix) % count.max(1)
}

/// The normalized path with `/` between components, whatever the OS.
fn key(path: &Path) -> String {
    let normal = normalize(path);
    let parts: Vec<String> = normal
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_one_based() {
        assert_eq!(Shard::parse("1/3").unwrap(), Shard::new(0, 3).unwrap());
        assert_eq!(Shard::parse("3/3").unwrap().to_string(), "3/3");
        for bad in ["0/3", "4/3", "1/0", "1", "a/b", "-1/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn assignment_is_pinned_by_sha256_of_the_normalized_path() {
        // `printf a/b.bin | sha256sum` starts with cdfd966c004eb82a; these shards must
        // never change, or machines on different releases would split a list differently.
        let job = Job::new("http://h/x").to_file("a/./c/../b.bin");
        let pinned = [(2, 0), (3, 0), (7, 2), (1000, 170)];
        for (n, want) in pinned {
            assert_eq!(shard_of(&job, n), want, "of {n}");
            assert_eq!(0xcdfd_966c_004e_b82a_u64 % n, want);
        }
        let same_path = Job::new("http://other/y").to_file("a/b.bin");
        assert_eq!(shard_of(&same_path, 7), 2, "the URL plays no part");
    }

    #[test]
    fn kubernetes_needs_a_count() {
        let env = |k: &str| (k == "JOB_COMPLETION_INDEX").then(|| "2".to_string());
        assert!(Shard::from_env(env, None).is_err());
        assert_eq!(
            Shard::from_env(env, Some(5)).unwrap(),
            Shard::new(2, 5).unwrap()
        );
        assert!(Shard::from_env(env, Some(2)).is_err());
        assert!(Shard::from_env(|_| None, None).is_err());
    }
}
