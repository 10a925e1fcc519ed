//! `--dry-run`: the plan of a checked list, printed without a single request.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::cli::RunArgs;
use crate::select::Selection;
use crate::{Checked, Source, describe_selection};

/// `--dry-run`: what the run would do, with no request. Files already up to date are
/// counted by hashing them (in parallel), as the run's pre-check would.
pub fn print_plan(args: &RunArgs, sources: &[Source], selection: &Selection, checked: &Checked) {
    let up_to_date = count_up_to_date(sources, selection, &args.output_dir);
    let plan = &checked.plan;
    if args.json {
        let hosts: serde_json::Map<String, serde_json::Value> = plan
            .hosts
            .iter()
            .map(|(h, n)| (h.clone(), serde_json::json!(n)))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "listed": checked.listed,
                "jobs": plan.jobs,
                "shard": selection.shard.map(|s| s.to_string()),
                "retry_failed": selection.retry.as_ref().map(|r| r.report.display().to_string()),
                "hosts": hosts,
                "up_to_date": up_to_date,
                "to_fetch": plan.jobs - up_to_date,
                "output_dir": args.output_dir.display().to_string(),
            })
        );
        return;
    }
    let selected = if selection.is_all() {
        String::new()
    } else {
        format!(" — {}", describe_selection(selection, checked))
    };
    println!(
        "dry run: {} jobs to {} host(s), output in {}{selected}",
        plan.jobs,
        plan.hosts.len(),
        args.output_dir.display()
    );
    for (host, n) in &plan.hosts {
        println!("  {host}\t{n} jobs");
    }
    println!("  already up to date (sha256 matches): {up_to_date}");
    println!("  to fetch: {}", plan.jobs - up_to_date);
    println!("no request was made");
}

/// Counts selected jobs whose file already exists with the listed sha256 (and size).
///
/// A seam: the run's own up-to-date check (issue 5) should replace this once it lands,
/// so that `--dry-run` and the run can never disagree.
fn count_up_to_date(sources: &[Source], selection: &Selection, dir: &Path) -> u64 {
    use rayon::prelude::*;
    let candidates = sources
        .iter()
        .filter_map(|s| s.open().ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|job| selection.takes(job))
        .filter_map(|job| {
            let path = dir.join(job.path()?);
            let sha = job.sha256.clone()?;
            let len = std::fs::metadata(&path).ok()?.len();
            job.size.is_none_or(|s| s == len).then_some((path, sha))
        });
    // Batches keep memory flat on long lists while rayon hashes a batch in parallel.
    let mut count = 0;
    let mut batch = Vec::with_capacity(256);
    let mut flush = |batch: &mut Vec<(PathBuf, String)>| {
        count += batch
            .par_iter()
            .filter(|(path, sha)| sha256_file(path).is_some_and(|h| h == *sha))
            .count() as u64;
        batch.clear();
    };
    for c in candidates {
        batch.push(c);
        if batch.len() == 256 {
            flush(&mut batch);
        }
    }
    flush(&mut batch);
    count
}

fn sha256_file(path: &Path) -> Option<String> {
    use sha2::Digest;
    let mut file = File::open(path).ok()?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0; 256 * 1024];
    loop {
        match io::Read::read(&mut file, &mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}
