//! `--dry-run`: the plan of a checked list, printed without a single request.

use std::path::Path;

use crate::cli::args::RunArgs;
use crate::cli::select::{Checked, Selection, describe_selection};
use crate::cli::sources::Source;

/// `--dry-run`: what the run would do, with no request. Files already up to date are
/// counted by hashing them (in parallel), as the run's pre-check would.
pub fn print_plan(
    args: &RunArgs,
    sources: &[Source],
    selection: &Selection,
    checked: &Checked,
    extraneous: Option<&fetchpool::Extraneous>,
) {
    let up_to_date = count_up_to_date(sources, selection, &checked.names, &args.output_dir);
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
                "retry_failed": selection.retry.as_ref().map(|r| r.names()),
                "hosts": hosts,
                "up_to_date": up_to_date,
                "to_fetch": plan.jobs - up_to_date,
                "output_dir": args.output_dir.display().to_string(),
                "would_delete": extraneous.map(|e| e.files.iter()
                    .map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>()),
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
    println!("  already up to date (checksum matches): {up_to_date}");
    println!("  to fetch: {}", plan.jobs - up_to_date);
    if let Some(extra) = extraneous {
        println!(
            "  would delete (not in the list): {}{}",
            extra.files.len(),
            crate::cli::sync::links_note(extra)
        );
        for path in &extra.files {
            println!("    {}", path.display());
        }
    }
    println!("no request was made");
}

/// Counts selected jobs the run would skip without a request: a file job with a sha256
/// whose file already has it (and the listed size). It asks the library's `verify` about
/// exactly those jobs, which hashes them in parallel and applies the same rule as the
/// run's pre-check, so `--dry-run` and the run agree.
fn count_up_to_date(
    sources: &[Source],
    selection: &Selection,
    names: &fetchpool::Names,
    dir: &Path,
) -> u64 {
    let jobs = super::sources::jobs(sources, names)
        .flatten()
        .filter(|job| job.checksum.is_some() && job.path().is_some() && selection.takes(job));
    fetchpool::count_verified(dir, jobs)
}
