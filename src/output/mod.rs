//! Files on disk: where a body is written until it is verified, how an unfinished one is
//! kept for a resume, and when a file already there is the one a job wants.
//!
//! [`names`] says where each file lives; [`part::Sink`] writes a body and moves it into
//! place ([`unnamed`] for small ones); [`sidecar`] keeps and judges a resumable part;
//! [`validators`] remembers what a finished file was for conditional requests; [`check`]
//! is the one "already right" rule (hash, pre-check, verify); [`nofollow`] makes sure no
//! write follows a link; [`extraneous`] finds and removes what a list no longer names.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) mod check;
pub(crate) mod cursor;
pub(crate) mod extraneous;
pub(crate) mod names;
pub(crate) mod nofollow;
pub(crate) mod part;
pub(crate) mod place;
pub(crate) mod sidecar;
pub(crate) mod unnamed;
pub(crate) mod validators;

/// What one pool has learned about its output directory's filesystem, shared by its
/// workers: two pools never share it.
#[derive(Debug)]
pub(crate) struct Disk {
    /// Whether unnamed files (`O_TMPFILE` and a link by descriptor) work here: true until
    /// the first sign that they do not.
    unnamed: AtomicBool,
    /// Whether an unnamed file can be linked by its descriptor alone (`AT_EMPTY_PATH`):
    /// true until the kernel refuses it, then the link goes through `/proc/self/fd`.
    by_descriptor: AtomicBool,
}

impl Default for Disk {
    fn default() -> Self {
        Disk {
            unnamed: AtomicBool::new(cfg!(target_os = "linux")),
            by_descriptor: AtomicBool::new(cfg!(target_os = "linux")),
        }
    }
}

impl Disk {
    /// Whether unnamed files may still be tried.
    pub(crate) fn unnamed_usable(&self) -> bool {
        self.unnamed.load(Ordering::Relaxed)
    }

    /// Turns unnamed files off for the rest of this pool's run.
    pub(crate) fn unnamed_unusable(&self) {
        self.unnamed.store(false, Ordering::Relaxed);
    }

    /// Whether linking by descriptor may still be tried.
    pub(crate) fn by_descriptor(&self) -> bool {
        self.by_descriptor.load(Ordering::Relaxed)
    }

    /// Links go through `/proc/self/fd` for the rest of this pool's run.
    pub(crate) fn not_by_descriptor(&self) {
        self.by_descriptor.store(false, Ordering::Relaxed);
    }

    /// A disk on which unnamed files are never tried: every body takes the `.part` path.
    #[cfg(test)]
    pub(crate) fn without_unnamed() -> Disk {
        Disk {
            unnamed: AtomicBool::new(false),
            by_descriptor: AtomicBool::new(false),
        }
    }
}

/// Directories one worker created or checked lately, newest last: most jobs of a list
/// share a few folders, and each check costs syscalls even when the folder is fine. A few
/// suffice; a set of every folder seen would grow with the list.
#[derive(Default)]
pub(crate) struct RecentDirs(Vec<PathBuf>);

impl RecentDirs {
    /// How many directories are remembered.
    const REMEMBERED: usize = 16;

    /// Whether `dir` was noted lately.
    pub(crate) fn holds(&self, dir: &Path) -> bool {
        self.0.iter().rev().any(|d| d == dir)
    }

    /// Notes `dir`, forgetting the oldest one when full.
    pub(crate) fn note(&mut self, dir: &Path) {
        if self.0.len() >= Self::REMEMBERED {
            self.0.remove(0);
        }
        self.0.push(dir.to_path_buf());
    }
}
