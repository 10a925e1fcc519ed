//! Mirror sync: the files under an output directory that a job list does not name, and
//! their removal ([`Extraneous`]).
//!
//! The walk never follows a symbolic link and never removes one (fetchpool makes none, so
//! a link in the tree was put there on purpose, often to hold part of a tree elsewhere):
//! a link is reported as kept, and nothing outside the tree is ever touched. The state
//! directory (`.fetchpool` at the top) is never entered, and a listed file's working files
//! (`PATH.part`, `PATH.part.meta`) are kept with it; an unlisted file's are extraneous.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::job::{STATE_DIR, normalize};

/// What is under an output directory that the list does not name.
///
/// ```no_run
/// use std::collections::HashSet;
/// use std::path::PathBuf;
/// let listed: HashSet<PathBuf> = ["a.bin", "d/b.bin"].iter().map(PathBuf::from).collect();
/// let extra = fetchpool::Extraneous::find("mirror", &listed)?;
/// for path in &extra.files {
///     println!("would delete {}", path.display());
/// }
/// extra.delete("mirror")?;
/// # Ok::<(), fetchpool::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extraneous {
    /// Files (and folders' worth of files) to remove, relative to the directory, sorted.
    pub files: Vec<PathBuf>,
    /// Symbolic links the list does not name, relative to the directory: never followed,
    /// never removed.
    pub links: Vec<PathBuf>,
    /// Every folder under the directory: removed by [`Extraneous::delete`] once empty.
    dirs: Vec<PathBuf>,
}

impl Extraneous {
    /// Walks `dir` and collects every file whose path (relative to `dir`) is not in
    /// `listed`. Listed paths are compared normalized (`a/./b` is `a/b`). A missing
    /// directory has nothing extraneous.
    pub fn find(dir: impl AsRef<Path>, listed: &HashSet<PathBuf>) -> Result<Extraneous, Error> {
        let dir = dir.as_ref();
        let listed: HashSet<PathBuf> = listed.iter().map(|p| normalize(p)).collect();
        let mut out = Extraneous::default();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let entries = match fs::read_dir(dir.join(&rel)) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound && rel.as_os_str().is_empty() => {
                    return Ok(out);
                }
                Err(e) => return Err(Error::io(dir.join(&rel), e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(dir.join(&rel), e))?;
                let path = rel.join(entry.file_name());
                if rel.as_os_str().is_empty() && entry.file_name() == STATE_DIR {
                    continue;
                }
                // The entry's own type: a link is a link, whatever it points to.
                let kind = entry
                    .file_type()
                    .map_err(|e| Error::io(dir.join(&path), e))?;
                if kind.is_symlink() {
                    if !listed.contains(&path) {
                        out.links.push(path);
                    }
                } else if kind.is_dir() {
                    out.dirs.push(path.clone());
                    stack.push(path);
                } else if !listed.contains(&path) && !is_working_file_of(&path, &listed) {
                    out.files.push(path);
                }
            }
        }
        out.files.sort();
        out.links.sort();
        Ok(out)
    }

    /// Removes [`Extraneous::files`] under `dir`, then every folder left empty (never
    /// `dir` itself, never one holding a link); returns how many files went. A file already gone counts as removed;
    /// an entry that became a link or a folder since [`Extraneous::find`] is left alone.
    pub fn delete(&self, dir: impl AsRef<Path>) -> Result<u64, Error> {
        let dir = dir.as_ref();
        let mut removed = 0;
        for rel in &self.files {
            let path = dir.join(rel);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() || (!m.is_dir() && !m.file_type().is_symlink()) => {}
                Ok(_) => {
                    log::warn!("{}: no longer a plain file; left alone", path.display());
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    removed += 1;
                    continue;
                }
                Err(e) => return Err(Error::io(path, e)),
            }
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => removed += 1,
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        // Deepest first, so a folder is tried after the folders in it.
        let mut dirs = self.dirs.clone();
        dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in dirs {
            // Fails (and is left) when not empty: a listed file, a link, a kept part.
            let _ = fs::remove_dir(dir.join(p));
        }
        Ok(removed)
    }
}

/// Whether `path` is `PATH.part` or `PATH.part.meta` of a listed `PATH`.
fn is_working_file_of(path: &Path, listed: &HashSet<PathBuf>) -> bool {
    // Listed paths come from UTF-8 lists: a name that is not UTF-8 is no one's part.
    let Some(text) = path.to_str() else {
        return false;
    };
    [".part", ".part.meta"].iter().any(|suffix| {
        text.strip_suffix(suffix)
            .is_some_and(|base| !base.is_empty() && listed.contains(Path::new(base)))
    })
}
