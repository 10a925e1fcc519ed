//! Small bodies go to an unnamed file that is linked into place once verified.
//!
//! A body normally lives at `PATH.part` and is renamed to `PATH`: two directory
//! operations per file, each under the directory's lock, and creating a file also
//! allocates its inode while holding that lock. With twenty workers writing small files
//! into one folder of a real disk, the directory lock is where the time goes. Linux can
//! create a file with no name (`O_TMPFILE`, outside the directory lock) and give it one
//! later (`linkat`), so a small body costs one short directory operation, and still
//! appears at `PATH` only complete and verified: a crash leaves nothing, since an unnamed
//! file vanishes with its last descriptor.
//!
//! Only bodies that would not be resumed anyway use it (no early sidecar: see
//! [`super::sidecar::SIDECAR_THRESHOLD`]); one that breaks and is worth keeping is given
//! its `.part` name then. Where the filesystem or the system lacks the calls, the first
//! failure turns the feature off for the pool's run (in its [`Disk`]) and bodies take the
//! `.part` path.

use std::fs::File;
use std::io;
use std::path::Path;

use super::Disk;

/// An unnamed file in `dir`, or `None` where that is not possible (the caller then
/// creates `PATH.part`). An error here is never the caller's: anything that would also
/// fail for a named file shows up again when the caller creates one.
pub(crate) fn create(disk: &Disk, dir: &Path) -> Option<File> {
    if !disk.unnamed_usable() {
        return None;
    }
    match open_unnamed(dir) {
        Ok(file) => Some(file),
        Err(e) => {
            if unsupported(&e) {
                log::debug!("unnamed files unavailable in {}: {e}", dir.display());
                disk.unnamed_unusable();
            }
            None
        }
    }
}

/// Gives the unnamed `file` the name `to`; fails with `AlreadyExists` if `to` exists.
/// A failure that says linking cannot work here turns the feature off for the run.
pub(crate) fn link(disk: &Disk, file: &File, to: &Path) -> io::Result<()> {
    let result = link_fd(disk, file, to);
    if let Err(e) = &result
        && e.kind() != io::ErrorKind::AlreadyExists
    {
        disk.unnamed_unusable();
    }
    result
}

/// Errors that mean "no unnamed files on this system or filesystem".
#[cfg(target_os = "linux")]
fn unsupported(e: &io::Error) -> bool {
    use rustix::io::Errno;
    [Errno::OPNOTSUPP, Errno::ISDIR, Errno::INVAL]
        .iter()
        .any(|n| e.raw_os_error() == Some(n.raw_os_error()))
}

#[cfg(not(target_os = "linux"))]
fn unsupported(_: &io::Error) -> bool {
    true
}

#[cfg(target_os = "linux")]
fn open_unnamed(dir: &Path) -> io::Result<File> {
    use rustix::fs::{CWD, Mode, OFlags};
    // A link in the directory's place is never followed (see `super::nofollow`).
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = rustix::fs::openat(CWD, dir, flags, Mode::from_raw_mode(0o666))?;
    Ok(File::from(fd))
}

#[cfg(not(target_os = "linux"))]
fn open_unnamed(_: &Path) -> io::Result<File> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(target_os = "linux")]
fn link_fd(disk: &Disk, file: &File, to: &Path) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD};
    use rustix::io::Errno;
    use std::os::unix::io::AsRawFd;
    // By the descriptor alone: one lookup, of `to`. Linux allows it to the process that
    // opened the file since 6.10 and to CAP_DAC_READ_SEARCH before; elsewhere it fails
    // with ENOENT, which a missing directory of `to` gives too: the `/proc` link below
    // tells the two apart. Through `/proc` the kernel walks four more names (and makes
    // the descriptor's entry) for every file: 8 % of a run of small files in a profile.
    if disk.by_descriptor() {
        match rustix::fs::linkat(file, "", CWD, to, AtFlags::EMPTY_PATH) {
            Ok(()) => return Ok(()),
            Err(e) if e != Errno::NOENT && e != Errno::PERM && e != Errno::INVAL => {
                return Err(e.into());
            }
            Err(_) => {}
        }
    }
    // The descriptor's entry under /proc names the unnamed file; following it is what
    // any process may link.
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(CWD, source.as_str(), CWD, to, AtFlags::SYMLINK_FOLLOW)?;
    if disk.by_descriptor() {
        log::debug!("linking by descriptor is refused here; unnamed files link through /proc");
        disk.not_by_descriptor();
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn link_fd(_: &Disk, _: &File, _: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn an_unnamed_file_appears_only_when_linked_and_never_over_another() {
        let dir = std::env::temp_dir().join(format!("fetchpool-unnamed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let disk = Disk::default();
        let Some(mut file) = create(&disk, &dir) else {
            // A filesystem without O_TMPFILE: the fallback is what runs there.
            return;
        };
        file.write_all(b"body").unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let to = dir.join("a.bin");
        link(&disk, &file, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"body");
        let again = link(&disk, &file, &to).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_links_by_descriptor_the_proc_link_places_the_file_and_a_missing_folder_fails() {
        let dir =
            std::env::temp_dir().join(format!("fetchpool-unnamed-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for by_descriptor in [true, false] {
            let disk = Disk::default();
            if !by_descriptor {
                disk.not_by_descriptor();
            }
            let Some(mut file) = create(&disk, &dir) else {
                return;
            };
            file.write_all(b"body").unwrap();
            let to = dir.join(format!("{by_descriptor}.bin"));
            link(&disk, &file, &to).unwrap();
            assert_eq!(std::fs::read(&to).unwrap(), b"body");
            // A missing folder is the target's fault, not the kernel's refusal: both
            // ways fail with NotFound, and linking by descriptor stays on.
            let lost = dir.join("missing").join("c.bin");
            let e = link(&disk, &file, &lost).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound);
            assert_eq!(disk.by_descriptor(), by_descriptor);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
