//! `--delete-extraneous`: after a run that succeeded, remove the files under the output
//! directory that the job list does not name (the library's [`Extraneous`]), within
//! `--max-delete`; with `--dry-run`, list them.
//!
//! What the list names is gathered by the check pass, from every line of every list (all
//! shards, not only this run's selection), and the run's own files that lie in the output
//! directory (the job lists, `--report`, `--write-checksums`) are kept too.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use fetchpool::Extraneous;

use super::args::RunArgs;

/// The paths to keep: the listed ones and the run's own files inside the output directory.
pub fn keep_set(args: &RunArgs, mut listed: HashSet<PathBuf>) -> HashSet<PathBuf> {
    let Ok(out) = std::path::absolute(&args.output_dir) else {
        return listed;
    };
    let mut own: Vec<PathBuf> = args.input.clone();
    own.extend(args.report.clone());
    if let Some(sums) = &args.write_checksums {
        own.push(sums.clone());
        let mut partial = sums.as_os_str().to_owned();
        partial.push(".partial");
        own.push(partial.into());
    }
    for file in own {
        if let Ok(abs) = std::path::absolute(&file)
            && let Ok(rel) = abs.strip_prefix(&out)
        {
            listed.insert(rel.to_path_buf());
        }
    }
    listed
}

/// The extraneous files, refused (`Err` with the message) when more than `--max-delete`.
pub fn find(args: &RunArgs, keep: &HashSet<PathBuf>) -> anyhow::Result<Extraneous> {
    let extra = Extraneous::find(&args.output_dir, keep)?;
    if let Some(max) = args.max_delete
        && extra.files.len() as u64 > max
    {
        anyhow::bail!(
            "--delete-extraneous would delete {} files under {}, more than --max-delete {max}; \
             nothing was deleted (check that the job list is complete, or raise --max-delete)",
            extra.files.len(),
            args.output_dir.display()
        );
    }
    Ok(extra)
}

/// Deletes them and says what went.
pub fn delete(dir: &Path, extra: &Extraneous, quiet: bool) -> anyhow::Result<u64> {
    let removed = extra.delete(dir)?;
    for path in &extra.files {
        log::info!("deleted {}", path.display());
    }
    if !quiet {
        eprintln!(
            "fetchpool: deleted {removed} file(s) not in the job list{}",
            links_note(extra)
        );
    }
    Ok(removed)
}

/// A note on the links kept, for messages.
pub fn links_note(extra: &Extraneous) -> String {
    match extra.links.len() {
        0 => String::new(),
        n => format!(
            "; kept {n} symbolic link(s) not in the list (links are never followed or deleted)"
        ),
    }
}
