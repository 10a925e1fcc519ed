//! `--write-checksums FILE`: a `sha256sum -c` file of every file the run holds, downloaded
//! or already up to date, its paths relative to the output directory.
//!
//! Lines are written as jobs finish (no list of the run is kept), into `FILE.partial`,
//! renamed to `FILE` once whole. A job skipped on a `304` has no sha256 in its outcome
//! (its body was not read): those files are hashed at the end, in parallel.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use fetchpool::{Algorithm, Checksum, Outcome, checksum_file_line};
use rayon::prelude::*;

pub struct ChecksumWriter {
    dest: PathBuf,
    partial: PathBuf,
    out: BufWriter<File>,
    output_dir: PathBuf,
    /// Paths to hash at the end: their outcome carries no sha256.
    later: Vec<PathBuf>,
    lines: u64,
    error: Option<io::Error>,
}

impl ChecksumWriter {
    /// Creates `dest.partial` now, so that an unwritable place fails before any request.
    pub fn create(dest: &Path, output_dir: &Path) -> anyhow::Result<ChecksumWriter> {
        let mut partial = dest.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = File::create(&partial)
            .with_context(|| format!("--write-checksums: cannot create '{}'", partial.display()))?;
        Ok(ChecksumWriter {
            dest: dest.to_path_buf(),
            partial,
            out: BufWriter::new(file),
            output_dir: output_dir.to_path_buf(),
            later: Vec::new(),
            lines: 0,
            error: None,
        })
    }

    /// Notes a finished job: a line for a file the run holds.
    pub fn observe(&mut self, outcome: &Outcome) {
        let Some(path) = &outcome.path else { return };
        if !outcome.status.is_success() || self.error.is_some() {
            return;
        }
        match &outcome.sha256 {
            Some(sha) => self.line(sha, path),
            None => self.later.push(path.clone()),
        }
    }

    fn line(&mut self, sha256: &str, path: &Path) {
        if let Err(e) = self
            .out
            .write_all(checksum_file_line(sha256, path).as_bytes())
        {
            self.error = Some(e);
        }
        self.lines += 1;
    }

    /// Hashes what is left, writes it, and puts the file in place; returns its line count.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        let dir = self.output_dir.clone();
        let hashed: Vec<(PathBuf, io::Result<Checksum>)> = std::mem::take(&mut self.later)
            .into_par_iter()
            .map(|rel| {
                let sum = Checksum::of_file(dir.join(&rel), Algorithm::Sha256);
                (rel, sum)
            })
            .collect();
        for (rel, sum) in hashed {
            match sum {
                Ok(sum) => self.line(&sum.hex, &rel),
                Err(e) => log::warn!(
                    "--write-checksums: cannot hash '{}': {e}; left out",
                    rel.display()
                ),
            }
        }
        if let Some(e) = self.error.take() {
            anyhow::bail!(
                "--write-checksums: writing '{}' failed: {e}",
                self.partial.display()
            );
        }
        let file = self
            .out
            .into_inner()
            .map_err(|e| anyhow::anyhow!("--write-checksums: writing failed: {}", e.error()))?;
        file.sync_all().ok();
        std::fs::rename(&self.partial, &self.dest).with_context(|| {
            format!(
                "--write-checksums: cannot rename to '{}'",
                self.dest.display()
            )
        })?;
        Ok(self.lines)
    }
}
