//! Job lists and output paths: what a hostile or broken list can do.
//!
//! The first byte picks the check, the rest is its input:
//! - 0: a whole list (plain, TSV and JSON lines mixed) through `ManifestReader` and the
//!   plan check: every job accepted is valid, no accepted path leaves the output
//!   directory, errors name the list and a line, and two jobs writing one file are
//!   always caught by the plan.
//! - 1: one output path (raw bytes): an accepted path never escapes the output
//!   directory and normalizes to plain names only.
//! - 2: one URL's derived file name: a single safe component the path check accepts.
//! - 3: a shard spec `K/N`: parsed shards round-trip and own every job.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use fetchpool::fuzzing::{check_relative_path, normalize};
use fetchpool::fuzzing::{file_name_for, shard_of};
use fetchpool::{Destination, Job, ManifestReader, PlanChecker, Shard};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => list(rest),
        1 => path(Path::new(OsStr::from_bytes(rest))),
        2 => derived_name(&String::from_utf8_lossy(rest)),
        _ => shard(&String::from_utf8_lossy(rest)),
    }
});

fn list(text: &[u8]) {
    let mut jobs = Vec::new();
    let mut last_line = 0;
    let content_lines = text
        .split(|b| *b == b'\n')
        .filter(|l| match std::str::from_utf8(l) {
            Ok(l) => !l.trim().is_empty() && !l.trim_start().starts_with('#'),
            // The reader stops at a line that is not UTF-8, with one error.
            Err(_) => true,
        })
        .count();
    let mut results = 0;
    for result in ManifestReader::new("fuzz.list", text) {
        results += 1;
        match result {
            Ok(job) => {
                let line = job
                    .origin
                    .as_ref()
                    .expect("a listed job has an origin")
                    .line;
                assert!(
                    line > last_line,
                    "lines go forward: {line} after {last_line}"
                );
                last_line = line;
                accepted_job(&job);
                jobs.push(job);
            }
            Err(e) => {
                let msg = e.to_string();
                let line: u64 = msg
                    .strip_prefix("fuzz.list:")
                    .and_then(|m| m.split_once(": "))
                    .and_then(|(n, _)| n.parse().ok())
                    .unwrap_or_else(|| panic!("an error names the list and line: {msg}"));
                assert!(
                    line > last_line,
                    "lines go forward: {line} after {last_line}"
                );
                last_line = line;
            }
        }
    }
    assert!(
        results <= content_lines,
        "{results} results from {content_lines} lines"
    );
    // The plan: two file jobs with one normalized path are always refused.
    let mut checker = PlanChecker::new();
    for job in &jobs {
        checker.add(job);
    }
    let mut seen = std::collections::HashSet::new();
    let duplicate = jobs
        .iter()
        .filter_map(|j| j.path().map(normalize))
        .any(|p| !seen.insert(p));
    let plan = checker.finish("fuzz.list", |visit| {
        for job in &jobs {
            visit(job);
        }
    });
    match plan {
        Ok(plan) => {
            assert!(!duplicate, "the plan let two jobs write one file");
            assert_eq!(plan.jobs, jobs.len() as u64);
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            if duplicate {
                assert!(
                    errors
                        .iter()
                        .any(|e| e.to_string().contains("write the same file")),
                    "duplicate path not named: {errors:?}"
                );
            }
        }
    }
}

fn accepted_job(job: &Job) {
    assert!(job.check().is_ok());
    assert!(
        fetchpool::fuzzing::check_url(&job.url).is_ok(),
        "{}",
        job.url
    );
    if let Destination::File(p) = &job.dest {
        assert!(check_relative_path(p).is_ok());
        path(p);
    }
    if let Some(sum) = &job.checksum {
        let sha = &sum.hex;
        assert!(
            sha.len() == sum.algorithm.hex_len()
                && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{sha}"
        );
    }
    assert!(!job.method.is_empty() && job.method.bytes().all(|b| b.is_ascii_alphabetic()));
    if let Destination::File(p) = &job.dest {
        // Never one of fetchpool's working files, and within the file system's lengths.
        let n = normalize(p);
        let name = n
            .file_name()
            .unwrap()
            .as_encoded_bytes()
            .to_ascii_lowercase();
        for suffix in [&b".part"[..], b".part.meta"] {
            assert!(
                !(name.len() > suffix.len() && name.ends_with(suffix)),
                "{p:?} names a working file"
            );
        }
        let first = n
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .as_encoded_bytes();
        assert!(
            !first.eq_ignore_ascii_case(b".fetchpool"),
            "{p:?} is inside the state directory"
        );
        assert!(
            name.len() <= 245,
            "{p:?}: a file name of {} bytes",
            name.len()
        );
        for c in p.components() {
            assert!(
                c.as_os_str().len() <= 255,
                "{p:?}: a component over 255 bytes"
            );
        }
        assert!(p.as_os_str().len() <= 4096 - 10, "{p:?}: a path too long");
    }
}

/// An accepted path stays inside the output directory, whatever it holds.
fn path(p: &Path) {
    let accepted = check_relative_path(p).is_ok();
    // An independent walk: never above the start, ends below it.
    let mut depth: i64 = 0;
    let mut escapes = false;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                escapes |= depth < 0;
            }
            Component::RootDir | Component::Prefix(_) => escapes = true,
        }
    }
    assert_eq!(
        accepted,
        !escapes && depth > 0,
        "check and walk disagree on {p:?}"
    );
    if !accepted {
        return;
    }
    let n = normalize(p);
    assert!(!n.as_os_str().is_empty(), "{p:?} normalizes to nothing");
    assert!(
        n.components().all(|c| matches!(c, Component::Normal(_))),
        "{p:?} normalizes to {n:?}, which still has a '..', '.' or root"
    );
    assert_eq!(normalize(&n), n, "normalize is idempotent");
    let joined = normalize(&Path::new("out").join(p));
    assert!(
        joined.starts_with("out") && joined != Path::new("out"),
        "{p:?} → {joined:?}"
    );
}

fn derived_name(url: &str) {
    let name = file_name_for(url);
    assert!(!name.is_empty());
    assert!(
        !name.contains(['/', '\\', ':']) && !name.chars().any(char::is_control),
        "{url:?} → {name:?}"
    );
    assert!(!name.starts_with('.'), "{url:?} → {name:?}");
    let p = Path::new(&name);
    assert!(check_relative_path(p).is_ok(), "{url:?} → {name:?} refused");
    assert_eq!(p.components().count(), 1, "{url:?} → {name:?}");
    assert_eq!(Job::new(url).path(), Some(p));
    // Derived names are shortened to leave room for the `.part.meta` of working files.
    assert!(
        name.len() <= 245,
        "{url:?} → a name of {} bytes",
        name.len()
    );
}

fn shard(spec: &str) {
    let Ok(shard) = Shard::parse(spec) else {
        return;
    };
    assert!(shard.index() < shard.count());
    assert_eq!(Shard::parse(&shard.to_string()).ok(), Some(shard));
    let job = Job::new(format!("http://h/{spec}"));
    assert!(shard_of(&job, shard.count()) < shard.count());
}
