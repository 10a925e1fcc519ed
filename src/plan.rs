//! Checks a whole job list before any request: what one line alone cannot show; and
//! makes the names that jobs derive from their URLs unique across the list ([`Namer`]).
//!
//! Two jobs writing one file, a dependency on an id that no job has, two jobs with one
//! id, and dependency cycles are configuration errors, reported with line numbers before
//! the first request.
//!
//! Memory stays small however long the list: paths go into a growing Bloom filter (about
//! 2.5 bytes per job), and only the few that might repeat one seen before are checked
//! exactly, in a second reading of the list that happens only when there are such paths.
//! Jobs that carry ids are kept by id; the jobs themselves never are.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::job::{Destination, Job, has_dot_dot, normalize};
use crate::url::write_host_key;

/// What a checked list holds: what a dry run shows.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct Plan {
    /// Number of jobs.
    pub jobs: u64,
    /// Number of jobs per host (`scheme://host:port`), sorted by host.
    pub hosts: Vec<(String, u64)>,
    /// Ids that some job depends on. The scheduler remembers only these outcomes.
    pub depended_on: HashSet<String>,
}

/// Collects the facts of a job list one job at a time; [`PlanChecker::finish`] reports
/// every problem found. For a list in memory, [`PlanChecker::check_all`] (or
/// [`Pool::check`](crate::Pool::check)) does it all.
///
/// ```
/// use fetchpool::{Job, PlanChecker};
/// let jobs = [
///     Job::new("http://127.0.0.1:8080/a").id("a"),
///     Job::new("http://127.0.0.1:8080/b").after("a"),
/// ];
/// let mut checker = PlanChecker::new();
/// for job in &jobs {
///     PlanChecker::check(job, "out".as_ref()).unwrap();
///     checker.add(job);
/// }
/// let plan = checker.finish("jobs", |visit| jobs.iter().for_each(visit)).unwrap();
/// assert_eq!(plan.jobs, 2);
/// assert!(plan.depended_on.contains("a"));
/// ```
#[derive(Default)]
pub struct PlanChecker {
    seen: SeenPaths,
    /// Hashes of paths that may have been seen before: checked exactly on a second reading.
    suspects: HashSet<u64>,
    ids: HashMap<String, (u64, Vec<String>)>,
    hosts: HashMap<String, u64>,
    /// The first [`MAX_ERRORS`] problems; `unlisted` counts the rest.
    errors: Vec<Error>,
    unlisted: u64,
    jobs: u64,
    /// Scratch space for host keys, so a known host costs no allocation.
    key: String,
}

impl PlanChecker {
    /// An empty checker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks one job on its own, before it is [added](PlanChecker::add): its URL, headers
    /// and path ([`Job::check`]), and that a file job's path stays inside `output_dir`
    /// once links are followed ([`Job::check_within`]). This is the line-level half of
    /// the check a run makes; [`PlanChecker::finish`] is the whole-list half.
    pub fn check(job: &Job, output_dir: &Path) -> Result<(), Error> {
        job.check()?;
        job.check_within(output_dir)
    }

    /// Records one job; `line` is its 1-based line (or its position for library jobs).
    pub fn add(&mut self, job: &Job) {
        self.jobs += 1;
        let line = job.origin.as_ref().map(|o| o.line).unwrap_or(self.jobs);
        if let Some(h) = path_hash(job)
            && self.seen.check_and_insert(h)
        {
            self.suspects.insert(h);
        }
        if let Some(id) = &job.id {
            if let Some((first, _)) = self.ids.get(id) {
                let e = Error::config(format!(
                    "lines {first} and {line} both have id '{id}'; give every job its own id"
                ));
                note(&mut self.errors, &mut self.unlisted, e);
            } else {
                self.ids.insert(id.clone(), (line, job.after.clone()));
            }
        } else if !job.after.is_empty() {
            // Jobs without ids can depend on others; record them under a name no id can take.
            self.ids
                .insert(format!("\0line{line}"), (line, job.after.clone()));
        }
        write_host_key(&job.url, &mut self.key);
        match self.hosts.get_mut(self.key.as_str()) {
            Some(n) => *n += 1,
            None => {
                self.hosts.insert(self.key.clone(), 1);
            }
        }
    }

    /// Reports the problems found, or the plan. `source` names the list in messages. At
    /// most the first 1000 problems are kept, and then a last one says how many more
    /// there were.
    ///
    /// `replay` is called at most once, only when some path may repeat, to read the list
    /// again: it must hand every job given to [`PlanChecker::add`] to the visitor, in the
    /// same order.
    pub fn finish(
        mut self,
        source: &str,
        replay: impl FnOnce(&mut dyn FnMut(&Job)),
    ) -> Result<Plan, Vec<Error>> {
        if !self.suspects.is_empty() {
            let mut first: HashMap<u64, (u64, PathBuf)> = HashMap::new();
            let mut position = 0;
            let suspects = std::mem::take(&mut self.suspects);
            let (errors, unlisted) = (&mut self.errors, &mut self.unlisted);
            replay(&mut |job: &Job| {
                position += 1;
                let Some(h) = path_hash(job).filter(|h| suspects.contains(h)) else {
                    return;
                };
                let line = job.origin.as_ref().map(|o| o.line).unwrap_or(position);
                let path = job.path().map(normalize).unwrap_or_default();
                match first.get(&h) {
                    Some((earlier, p)) if *p == path => note(
                        errors,
                        unlisted,
                        Error::config(format!(
                            "{source}: lines {earlier} and {line} write the same file; give each job its own path"
                        )),
                    ),
                    Some(_) => {}
                    None => {
                        first.insert(h, (line, path));
                    }
                }
            });
        }
        self.check_dependencies(source);
        if self.unlisted > 0 {
            self.errors.push(Error::config(format!(
                "{source}: {} more problems of these kinds, not listed",
                self.unlisted
            )));
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        let depended_on = self
            .ids
            .values()
            .flat_map(|(_, after)| after.iter().cloned())
            .collect();
        let mut hosts: Vec<(String, u64)> = self.hosts.into_iter().collect();
        hosts.sort();
        Ok(Plan {
            jobs: self.jobs,
            hosts,
            depended_on,
        })
    }

    /// Checks a list held in memory, each job and the whole: the check
    /// [`Pool::run`](crate::Pool::run) makes before any request. Every problem is one line
    /// of the returned [`Error::Config`]; a job that fails on its own is reported alone.
    pub fn check_all(jobs: &[Job], output_dir: &Path) -> Result<Plan, Error> {
        let mut checker = PlanChecker::new();
        for job in jobs {
            PlanChecker::check(job, output_dir)?;
            checker.add(job);
        }
        checker
            .finish("jobs", |visit| jobs.iter().for_each(visit))
            .map_err(|errors| {
                let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                Error::config(lines.join("\n"))
            })
    }

    fn check_dependencies(&mut self, source: &str) {
        let mut unknown = Vec::new();
        for (line, after) in self.ids.values() {
            for dep in after {
                if !self.ids.contains_key(dep) || dep.starts_with('\0') {
                    unknown.push(Error::config(format!(
                        "{source}:{line}: depends on id '{dep}', which no job in the list has; fix the id or add that job"
                    )));
                }
            }
        }
        unknown.sort_by_key(|e| e.to_string());
        for e in unknown {
            note(&mut self.errors, &mut self.unlisted, e);
        }
        // Depth-first search with colours; the first cycle found is reported with its lines.
        let mut state: HashMap<&str, u8> = HashMap::new();
        let mut names: Vec<&String> = self.ids.keys().collect();
        names.sort_by_key(|n| self.ids[*n].0);
        for start in names {
            if state.get(start.as_str()).copied().unwrap_or(0) != 0 {
                continue;
            }
            let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
            state.insert(start.as_str(), 1);
            while let Some((node, next)) = stack.last().copied() {
                let after = &self.ids[node].1;
                if next < after.len() {
                    stack.last_mut().unwrap().1 += 1;
                    let dep = after[next].as_str();
                    if !self.ids.contains_key(dep) {
                        continue;
                    }
                    match state.get(dep).copied().unwrap_or(0) {
                        0 => {
                            state.insert(dep, 1);
                            stack.push((dep, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                            let lines: Vec<String> = stack[from..]
                                .iter()
                                .map(|(n, _)| self.ids[*n].0.to_string())
                                .collect();
                            self.errors.push(Error::config(format!(
                                "{source}: dependency cycle through lines {}; remove one of the 'after' links",
                                lines.join(" → ")
                            )));
                            return;
                        }
                        _ => {}
                    }
                } else {
                    state.insert(node, 2);
                    stack.pop();
                }
            }
        }
    }
}

/// What the jobs of one session have claimed so far: their ids and the files they write.
/// The scheduler asks it of every job it accepts, after [`PlanChecker::check`], so that a
/// session, [`Pool::run_with`](crate::Pool::run_with) and follow-up jobs refuse what
/// [`PlanChecker::check_all`] refuses in a list: two jobs writing one file, two jobs with
/// one id. A claim lasts the session's life, as a line's does in a list.
///
/// A path is kept as 16 bytes of its normalized form's sha256, not as text: a session
/// of a million file jobs costs about 30 MB here rather than the paths' length, and two
/// different paths meet by chance about once in 10^38 pairs.
#[derive(Default)]
pub(crate) struct Claims {
    ids: HashSet<String>,
    paths: HashSet<u128>,
}

impl Claims {
    /// Whether a job of the session has claimed `id`.
    pub(crate) fn has_id(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Claims `job`'s id and path, or says which one another job of the session has.
    pub(crate) fn claim(&mut self, job: &Job) -> Result<(), Error> {
        if let Some(id) = &job.id
            && self.ids.contains(id)
        {
            return Err(Error::config(format!(
                "another job of this run already has id '{}'; give every job its own id",
                crate::redact::clip(id, crate::redact::SHOWN_CHARS)
            )));
        }
        let digest = path_digest(job);
        if let Some(d) = digest
            && self.paths.contains(&d)
        {
            let path = job.path().unwrap_or(Path::new("")).to_string_lossy();
            return Err(Error::config(format!(
                "another job of this run already writes '{}'; give each job its own path",
                crate::redact::clip(&path, crate::redact::SHOWN_CHARS)
            )));
        }
        if let Some(id) = &job.id {
            self.ids.insert(id.clone());
        }
        if let Some(d) = digest {
            self.paths.insert(d);
        }
        Ok(())
    }
}

/// The first 16 bytes of the sha256 of a file job's normalized destination, component by
/// component (so `a//b`, `a/./b` and `x/../a/b` are `a/b`).
fn path_digest(job: &Job) -> Option<u128> {
    use sha2::{Digest, Sha256};
    let path = job.path()?;
    let bytes = path.as_os_str().as_encoded_bytes();
    let normalized;
    let path = if bytes.starts_with(b".") || has_dot_dot(bytes) {
        normalized = normalize(path);
        normalized.as_path()
    } else {
        path
    };
    let mut h = Sha256::new();
    for c in path.components() {
        h.update(c.as_os_str().as_encoded_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    Some(u128::from_le_bytes(d[..16].try_into().expect("16 bytes")))
}

/// The most problems a check keeps: a list of a million bad lines costs this many
/// messages, and a count.
const MAX_ERRORS: usize = 1000;

/// Keeps `e` among the first [`MAX_ERRORS`], or counts it.
fn note(errors: &mut Vec<Error>, unlisted: &mut u64, e: Error) {
    if errors.len() < MAX_ERRORS {
        errors.push(e);
    } else {
        *unlisted += 1;
    }
}

/// Makes the URL-derived file names of a whole list unique, before it is checked: a
/// job whose name came from its URL ([`Job::new`], a list line without a path) and
/// that another job of the list would also write is given a new name instead, the
/// name's stem, `-`, the first 8 hex digits of the sha256 of its URL (without user info
/// and fragment) and the extension (`items?page=2` → `items-` and 8 hex digits,
/// `a/index.json` → `index-` and 8 hex digits `.json`). The same list always gets the
/// same names. Paths that were given are never renamed; two jobs that still write one
/// file after this (one path given twice, one URL listed twice) are left for
/// [`PlanChecker`] to report.
///
/// Memory stays small as in [`PlanChecker`]: a Bloom filter of the paths, and a second
/// reading of the list only when some path may repeat.
///
/// ```
/// use fetchpool::{Job, Namer};
/// let jobs = vec![Job::new("http://h/items?page=1"), Job::new("http://h/items?page=2")];
/// let mut namer = Namer::new();
/// jobs.iter().for_each(|j| namer.add(j));
/// let names = namer.finish(|visit| jobs.iter().for_each(visit));
/// let first = names.renamed(1).unwrap().to_str().unwrap();
/// assert!(first.starts_with("items-") && first.len() == 14, "{first}");
/// assert_ne!(names.renamed(1), names.renamed(2));
/// ```
#[derive(Default)]
pub struct Namer {
    seen: SeenPaths,
    suspects: HashSet<u64>,
}

/// The new paths [`Namer`] gave, by the job's position in the list.
#[derive(Debug, Default, Clone)]
pub struct Names {
    renamed: HashMap<u64, PathBuf>,
}

impl Namer {
    /// An empty namer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the next job of the list.
    pub fn add(&mut self, job: &Job) {
        if let Some(h) = path_hash(job)
            && self.seen.check_and_insert(h)
        {
            self.suspects.insert(h);
        }
    }

    /// The new names. `replay` is called at most once, only when some path may repeat,
    /// to read the list again: it must hand every job given to [`Namer::add`] to the
    /// visitor, in the same order.
    pub fn finish(self, replay: impl FnOnce(&mut dyn FnMut(&Job))) -> Names {
        let mut renamed = HashMap::new();
        if self.suspects.is_empty() {
            return Names { renamed };
        }
        // Per exact path, in list order: (position, the URL when the name came from it).
        let mut groups: HashMap<PathBuf, Vec<(u64, Option<String>)>> = HashMap::new();
        let mut position = 0;
        replay(&mut |job: &Job| {
            position += 1;
            if path_hash(job).is_some_and(|h| self.suspects.contains(&h)) {
                let path = job.path().map(normalize).unwrap_or_default();
                let url = job.named_from_url.then(|| job.url.clone());
                groups.entry(path).or_default().push((position, url));
            }
        });
        for (path, members) in groups {
            if members.len() < 2 {
                continue;
            }
            for (position, url) in members {
                if let Some(url) = url {
                    renamed.insert(position, crate::job::disambiguated(&path, &url));
                }
            }
        }
        Names { renamed }
    }
}

impl Names {
    /// The new path of the job at `position` (1-based, in the order given to
    /// [`Namer::add`]), or `None` when it keeps its own.
    pub fn renamed(&self, position: u64) -> Option<&Path> {
        self.renamed.get(&position).map(PathBuf::as_path)
    }

    /// Gives the job at `position` its new path, if it has one; the path then counts as
    /// given, so a job that still shares it is an error of the list.
    pub fn rename(&self, position: u64, job: &mut Job) {
        if let Some(path) = self.renamed(position) {
            job.dest = Destination::File(path.to_path_buf());
            job.named_from_url = false;
        }
    }

    /// How many jobs were renamed.
    pub fn len(&self) -> usize {
        self.renamed.len()
    }

    /// Whether no job was renamed.
    pub fn is_empty(&self) -> bool {
        self.renamed.is_empty()
    }
}

/// The hash of a file job's normalized destination.
fn path_hash(job: &Job) -> Option<u64> {
    let Destination::File(path) = &job.dest else {
        return None;
    };
    let mut h = DefaultHasher::new();
    // A path hashes by its components, so inner `.` and doubled slashes hash as if
    // folded already; `..` and a leading `.` need the normalized copy.
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.starts_with(b".") || has_dot_dot(bytes) {
        normalize(path).hash(&mut h);
    } else {
        path.hash(&mut h);
    }
    Some(h.finish())
}

/// The paths seen so far, as a Bloom filter that grows: a new filter twice the size of
/// the last once it holds its capacity. Ten bits per path and seven probes give about one
/// false "seen" in a hundred, which costs only a second look at that path.
#[derive(Default)]
struct SeenPaths {
    filters: Vec<Filter>,
}

struct Filter {
    bits: Vec<u64>,
    /// Number of bits, `bits.len() * 64`.
    len: u64,
    items: usize,
    capacity: usize,
}

impl Filter {
    const PROBES: u64 = 7;
    const BITS_PER_ITEM: usize = 10;

    fn new(capacity: usize) -> Filter {
        let words = (capacity * Self::BITS_PER_ITEM).div_ceil(64);
        Filter {
            bits: vec![0; words],
            len: words as u64 * 64,
            items: 0,
            capacity,
        }
    }

    /// The bit positions of `h`: double hashing, each mapped onto the filter by a
    /// multiply-shift (no power-of-two size needed).
    fn probes(&self, h: u64) -> impl Iterator<Item = u64> + '_ {
        let step = h.rotate_left(32) | 1;
        (0..Self::PROBES).map(move |i| {
            let x = h.wrapping_add(i.wrapping_mul(step));
            ((x as u128 * self.len as u128) >> 64) as u64
        })
    }

    fn contains(&self, h: u64) -> bool {
        self.probes(h)
            .all(|b| self.bits[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }

    fn insert(&mut self, h: u64) {
        let positions: Vec<u64> = self.probes(h).collect();
        for b in positions {
            self.bits[(b / 64) as usize] |= 1 << (b % 64);
        }
        self.items += 1;
    }
}

impl SeenPaths {
    const FIRST_CAPACITY: usize = 1 << 14;

    /// Whether `h` may have been seen before; records it either way.
    fn check_and_insert(&mut self, h: u64) -> bool {
        if self.filters.iter().any(|f| f.contains(h)) {
            return true;
        }
        let full = self.filters.last().is_none_or(|f| f.items >= f.capacity);
        if full {
            let capacity = self
                .filters
                .last()
                .map_or(Self::FIRST_CAPACITY, |f| f.capacity * 2);
            self.filters.push(Filter::new(capacity));
        }
        self.filters.last_mut().expect("pushed above").insert(h);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Origin;

    fn job(url: &str, path: &str, line: u64) -> Job {
        let mut j = Job::new(url).to_file(path);
        j.origin = Some(Origin {
            source: "l".into(),
            line,
        });
        j
    }

    #[test]
    fn paths_hash_as_their_normalized_form() {
        let hash = |p: &str| path_hash(&Job::new("http://h/x").to_file(p)).unwrap();
        let plain = hash("a/b/c");
        for same in [
            "a/./b/c",
            "a//b/c",
            "./a/b/c",
            "a/b/c/",
            "a/x/../b/c",
            "a/b/../b/c",
        ] {
            assert_eq!(hash(same), plain, "{same}");
        }
        assert_ne!(hash("a/b/d"), plain);
    }

    /// Checks `jobs` the way the CLI does: one reading, and a second when asked.
    fn check(jobs: &[Job]) -> Result<Plan, Vec<String>> {
        let mut c = PlanChecker::new();
        for j in jobs {
            c.add(j);
        }
        c.finish("l", |visit| jobs.iter().for_each(visit))
            .map_err(|errs| errs.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn duplicate_paths_name_both_lines() {
        let errs = check(&[
            job("http://h/a", "x/a", 1),
            job("http://h/b", "b", 2),
            job("http://h/c", "x/./y/../a", 3),
        ])
        .unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("lines 1 and 3"), "{}", errs[0]);
    }

    #[test]
    fn a_hundred_thousand_distinct_paths_pass_and_one_repeat_is_found() {
        let mut jobs: Vec<Job> = (1..=100_000)
            .map(|i| job("http://h/x", &format!("d{}/f{i}", i % 97), i))
            .collect();
        assert!(
            check(&jobs).is_ok(),
            "Bloom false positives must never become errors"
        );
        jobs.push(job(
            "http://h/x",
            &format!("d{}/f77783", 77783 % 97),
            100_001,
        ));
        let errs = check(&jobs).unwrap_err();
        assert_eq!(
            errs,
            ["l: lines 77783 and 100001 write the same file; give each job its own path"]
        );
    }

    #[test]
    fn the_list_is_read_again_only_when_a_path_may_repeat() {
        let jobs = [job("http://h/a", "a", 1), job("http://h/b", "b", 2)];
        let mut c = PlanChecker::new();
        jobs.iter().for_each(|j| c.add(j));
        let mut replayed = false;
        assert!(c.finish("l", |_| replayed = true).is_ok());
        assert!(!replayed);
    }

    #[test]
    fn unknown_ids_and_cycles_are_errors() {
        let errs = check(&[
            job("http://h/a", "a", 1).id("a").after("c"),
            job("http://h/b", "b", 2).id("b").after("a"),
            job("http://h/c", "c", 3).id("c").after("b"),
            job("http://h/d", "d", 4).after("zzz"),
        ])
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("l:4") && e.contains("'zzz'")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("cycle") && e.contains("1 → 3 → 2")),
            "{errs:?}"
        );
    }

    #[test]
    fn plan_counts_hosts() {
        let plan = check(&[
            job("http://H:80/a", "a", 1),
            job("http://h/b", "b", 2).id("b"),
            job("https://h/c", "c", 3).after("b"),
        ])
        .unwrap();
        assert_eq!(plan.jobs, 3);
        assert_eq!(
            plan.hosts,
            vec![("http://h:80".into(), 2), ("https://h:443".into(), 1)]
        );
        assert!(plan.depended_on.contains("b"));
    }
}
