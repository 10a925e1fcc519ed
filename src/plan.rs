//! Checks a whole job list before any request: what one line alone cannot show.
//!
//! Two jobs writing one file, a dependency on an id that no job has, two jobs with one
//! id, and dependency cycles are configuration errors, reported with line numbers before
//! the first request. The check keeps 16 bytes per job (a path hash and a line number)
//! plus the jobs that carry ids, never the jobs themselves.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::error::Error;
use crate::job::{Destination, Job, normalize};

/// What a checked list holds, for `--dry-run` and for the scheduler.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// Number of jobs.
    pub jobs: u64,
    /// Number of jobs per host (`scheme://host:port`), sorted by host.
    pub hosts: Vec<(String, u64)>,
    /// Ids that some job depends on. The scheduler remembers only these outcomes.
    pub depended_on: HashSet<String>,
}

/// Collects the facts of a job list one job at a time; [`PlanChecker::finish`] reports
/// every problem found.
#[derive(Default)]
pub struct PlanChecker {
    paths: Vec<(u64, u64)>,
    ids: HashMap<String, (u64, Vec<String>)>,
    hosts: HashMap<String, u64>,
    errors: Vec<Error>,
    jobs: u64,
}

impl PlanChecker {
    /// An empty checker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one job; `line` is its 1-based line (or its position for library jobs).
    pub fn add(&mut self, job: &Job) {
        self.jobs += 1;
        let line = job.origin.as_ref().map(|o| o.line).unwrap_or(self.jobs);
        if let Destination::File(path) = &job.dest {
            let mut h = DefaultHasher::new();
            normalize(path).hash(&mut h);
            self.paths.push((h.finish(), line));
        }
        if let Some(id) = &job.id {
            if let Some((first, _)) = self.ids.get(id) {
                self.errors.push(Error::config(format!(
                    "lines {first} and {line} both have id '{id}'; give every job its own id"
                )));
            } else {
                self.ids.insert(id.clone(), (line, job.after.clone()));
            }
        } else if !job.after.is_empty() {
            // Jobs without ids can depend on others; record them under a name no id can take.
            self.ids
                .insert(format!("\0line{line}"), (line, job.after.clone()));
        }
        *self.hosts.entry(host_key(&job.url)).or_default() += 1;
    }

    /// Reports every problem found, or the plan. `source` names the list in messages.
    pub fn finish(mut self, source: &str) -> Result<Plan, Vec<Error>> {
        self.paths.sort_unstable();
        for pair in self.paths.windows(2) {
            if pair[0].0 == pair[1].0 {
                self.errors.push(Error::config(format!(
                    "{source}: lines {} and {} write the same file; give each job its own path",
                    pair[0].1, pair[1].1
                )));
            }
        }
        self.check_dependencies(source);
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
        self.errors.extend(unknown);
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

/// The host part a per-host limit applies to: `scheme://host:port`, lowercase.
pub(crate) fn host_key(url: &str) -> String {
    match url.parse::<ureq::http::Uri>() {
        Ok(uri) => {
            let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
            let default = if scheme == "https" { 443 } else { 80 };
            let host = uri.host().unwrap_or("").to_ascii_lowercase();
            format!("{scheme}://{host}:{}", uri.port_u16().unwrap_or(default))
        }
        Err(_) => url.to_string(),
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
    fn duplicate_paths_name_both_lines() {
        let mut c = PlanChecker::new();
        c.add(&job("http://h/a", "x/a", 1));
        c.add(&job("http://h/b", "b", 2));
        c.add(&job("http://h/c", "x/./y/../a", 3));
        let errs = c.finish("l").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("lines 1 and 3"), "{}", errs[0]);
    }

    #[test]
    fn unknown_ids_and_cycles_are_errors() {
        let mut c = PlanChecker::new();
        c.add(&job("http://h/a", "a", 1).id("a").after("c"));
        c.add(&job("http://h/b", "b", 2).id("b").after("a"));
        c.add(&job("http://h/c", "c", 3).id("c").after("b"));
        c.add(&job("http://h/d", "d", 4).after("zzz"));
        let errs: Vec<String> = c
            .finish("l")
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
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
        let mut c = PlanChecker::new();
        c.add(&job("http://H:80/a", "a", 1));
        c.add(&job("http://h/b", "b", 2).id("b"));
        c.add(&job("https://h/c", "c", 3).after("b"));
        let plan = c.finish("l").unwrap();
        assert_eq!(plan.jobs, 3);
        assert_eq!(
            plan.hosts,
            vec![("http://h:80".into(), 2), ("https://h:443".into(), 1)]
        );
        assert!(plan.depended_on.contains("b"));
    }
}
