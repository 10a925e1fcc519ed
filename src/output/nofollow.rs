//! No write leaves the output tree through a link fetchpool did not make.
//!
//! fetchpool never creates a symbolic link, so a link among its working files (`PATH.part`,
//! the sidecar, the validator store, the run lock) or in a directory of the output tree was
//! put there by someone else. Working files are opened with `O_NOFOLLOW`; a link found
//! where a working file belongs is removed (the link, never what it points to) and the file
//! made anew, exclusively. The final step (`rename`, `linkat`) never follows a link at its
//! destination, so a link at `PATH` is replaced, not written through.
//!
//! Directories are checked once per worker and directory, before the job's request: a
//! link between the output directory and the job's file fails the job (kind `io`) rather
//! than place its bytes wherever the link points. The output directory itself may be a
//! link: the user named it. A link swapped in for a directory while the run already writes
//! into it is not noticed; that needs write access to the tree during the run.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use super::RecentDirs;
use crate::error::Error;

/// Open options that refuse a link as the last component (`ELOOP`).
pub(crate) fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    o
}

/// Whether `e` says the last component was a link.
fn is_link_error(e: &io::Error, path: &Path) -> bool {
    #[cfg(target_os = "linux")]
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return true;
    }
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Creates (or truncates) the working file at `path` for writing, and reading when
/// `read`. A link there is removed and the file created exclusively in its place.
pub(crate) fn create(path: &Path, read: bool) -> io::Result<File> {
    match options()
        .read(read)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
    {
        Err(e) if is_link_error(&e, path) => {
            log::warn!(
                "{}: replacing a symbolic link fetchpool did not make",
                path.display()
            );
            fs::remove_file(path)?;
            options().read(read).write(true).create_new(true).open(path)
        }
        result => result,
    }
}

/// Writes `bytes` to the working file at `path`, as [`create`] opens it.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create(path, false)?.write_all(bytes)
}

/// Reads the working file at `path`; a link there reads as an error.
pub(crate) fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = options().read(true).open(path)?;
    let mut out = Vec::new();
    io::Read::read_to_end(&mut file, &mut out)?;
    Ok(out)
}

/// Fails when a directory between `root` and `root/rel`'s file is a symbolic link.
/// Components that do not exist yet pass: fetchpool creates them as real directories.
/// `checked` holds the directories this worker found free of links lately.
pub(crate) fn check_dirs(root: &Path, rel: &Path, checked: &mut RecentDirs) -> Result<(), Error> {
    let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    if checked.holds(parent) {
        return Ok(());
    }
    if let Some(link) = find_link(root, parent) {
        return Err(link_error(&link));
    }
    checked.note(parent);
    Ok(())
}

/// The first directory from `root/rel`'s first component down to `root/rel` that is a
/// symbolic link; components that do not exist end the search.
pub(crate) fn find_link(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut dir = root.to_path_buf();
    for component in rel.components() {
        match component {
            Component::Normal(c) => dir.push(c),
            Component::ParentDir => {
                dir.pop();
                continue;
            }
            _ => continue,
        }
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => return Some(dir),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    None
}

/// The error for a job whose directory `dir` is a link.
pub(crate) fn link_error(dir: &Path) -> Error {
    Error::io(
        dir,
        io::Error::other(
            "is a symbolic link, which fetchpool did not make; it writes only into real \
             directories inside the output directory (replace the link with a directory, or \
             make that directory the output directory of a run of its own)",
        ),
    )
}
