//! The body's file on its way to `PATH`: the [`Sink`] opens `PATH.part` (or an unnamed
//! file), takes the body's bytes, and either commits the verified file into place or
//! abandons it, keeping a resumable part with its sidecar or leaving nothing.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::names::{meta_path, part_path};
use super::sidecar::{self, Sidecar};
use super::{Disk, RecentDirs, nofollow, unnamed};
use crate::checksum::Hasher;
use crate::error::Error;

/// How a body's file starts: fresh, or continuing the part an earlier attempt kept.
pub(crate) struct PartStart {
    /// Bytes of `PATH.part` this body continues; 0 for a fresh body.
    pub(crate) offset: u64,
    /// The sidecar a fresh body can be resumed with, when it has a validator.
    pub(crate) sidecar: Option<Sidecar>,
    /// Whether a `PATH.part.meta` was found on disk before this attempt.
    pub(crate) meta_exists: bool,
    /// The body's length as the server announced it, if it did.
    pub(crate) announced: Option<u64>,
    /// Whether the output directory was empty at the start of the run, so that no stale
    /// `.part` can be there.
    pub(crate) fresh: bool,
}

/// Where body bytes go: a `.part` file renamed on commit (or an unnamed file linked into
/// place, see [`super::unnamed`]), or a bounded buffer.
pub(crate) enum Sink<'a> {
    File {
        /// What the output directory supports, for the unnamed file's link.
        disk: &'a Disk,
        file: File,
        /// `PATH.part`: the file's name, or the name it gets if it must be kept unfinished.
        part: PathBuf,
        /// Whether the file has its `.part` name yet (else it is unnamed).
        named: bool,
        path: PathBuf,
        /// The sidecar this body can be resumed with, when it has a validator.
        sidecar: Option<Sidecar>,
        /// Whether `PATH.part.meta` is on disk for this body.
        sidecar_written: bool,
    },
    Memory(Vec<u8>),
}

impl<'a> Sink<'a> {
    /// Opens `PATH.part`: truncated for a fresh body; for a ranged one, cut to `offset`
    /// bytes which go through `hasher` first. A fresh body's sidecar is written before the
    /// first byte when the body is large (see [`sidecar::SIDECAR_THRESHOLD`]); a stale one
    /// is removed so that it can never describe these bytes. A small fresh body (one that
    /// gets no early sidecar, judged by its `announced` length) goes to an unnamed file
    /// where `disk` allows; `fresh` says the output directory was empty, so no stale
    /// `.part` can be left behind by that. `dirs` are the directories this worker made
    /// lately.
    pub(crate) fn file(
        path: &Path,
        start: PartStart,
        hasher: &mut Hasher,
        disk: &'a Disk,
        dirs: &mut RecentDirs,
    ) -> Result<Sink<'a>, Error> {
        let PartStart {
            offset,
            sidecar,
            meta_exists,
            announced,
            fresh,
        } = start;
        if let Some(dir) = path.parent() {
            ensure_dir(dir, dirs)?;
        }
        let part = part_path(path);
        let io_err = |e| Error::io(&part, e);
        let small = !sidecar::wants_early_sidecar(announced);
        let mut sidecar_written = offset > 0;
        let mut named = true;
        let file = if offset > 0 {
            let mut file = nofollow::options()
                .read(true)
                .write(true)
                .open(&part)
                .map_err(io_err)?;
            let copied = io::copy(&mut (&mut file).take(offset), hasher).map_err(io_err)?;
            if copied != offset {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("holds {copied} bytes, {offset} expected; it changed during the run"),
                )));
            }
            file.set_len(offset).map_err(io_err)?;
            file
        } else {
            let unnamed = match path.parent() {
                Some(dir) if small => unnamed::create(disk, dir),
                _ => None,
            };
            let file = match unnamed {
                Some(file) => {
                    named = false;
                    if !fresh {
                        // An earlier run's part would outlive this body otherwise.
                        let _ = fs::remove_file(&part);
                    }
                    file
                }
                None => nofollow::create(&part, false).map_err(io_err)?,
            };
            match &sidecar {
                Some(s) if !small => match s.write(path) {
                    Ok(()) => sidecar_written = true,
                    Err(e) => {
                        log::warn!("{}: cannot write the resume sidecar: {e}", path.display())
                    }
                },
                _ if meta_exists => {
                    let _ = fs::remove_file(meta_path(path));
                }
                _ => {}
            }
            file
        };
        Ok(Sink::File {
            disk,
            file,
            part,
            named,
            path: path.to_path_buf(),
            sidecar,
            sidecar_written,
        })
    }

    /// Appends `chunk`; a memory body longer than `limit` bytes is an error.
    pub(crate) fn write(&mut self, chunk: &[u8], limit: u64) -> Result<(), Error> {
        match self {
            Sink::File { file, part, .. } => {
                file.write_all(chunk).map_err(|e| Error::io(&*part, e))
            }
            Sink::Memory(v) => {
                if v.len() as u64 + chunk.len() as u64 > limit {
                    return Err(Error::too_large(limit, None));
                }
                v.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    /// Gives up on the body. A `.part` worth resuming is kept with its sidecar (written now
    /// if the body was small); one without a validator, or not worth keeping, is removed.
    /// Returns whether the part was kept.
    pub(crate) fn abandon(self, keep: bool) -> bool {
        let Sink::File {
            disk,
            file,
            part,
            named,
            path,
            sidecar,
            sidecar_written,
        } = self
        else {
            return false;
        };
        // Kept only with a sidecar; an unnamed file worth keeping gets its `.part` name now.
        let kept = keep
            && (sidecar_written || sidecar.is_some())
            && (named || unnamed::link(disk, &file, &part).is_ok())
            && (sidecar_written || sidecar.is_some_and(|s| s.write(&path).is_ok()));
        if !kept {
            sidecar::discard(&path);
        }
        kept
    }

    /// Moves a complete, verified file into place, or hands back the buffer.
    pub(crate) fn commit(self) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Sink::File {
                disk,
                file,
                part,
                named,
                path,
                sidecar_written,
                ..
            } => {
                if !named {
                    match unnamed::link(disk, &file, &path) {
                        Ok(()) => return Ok(None),
                        // A file already at PATH (an outdated one) is replaced in one
                        // step, as a named part would: give the body its part name first.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            let _ = fs::remove_file(&part);
                            unnamed::link(disk, &file, &part).map_err(|e| Error::io(&part, e))?;
                        }
                        // Linking cannot work here: copy the body out under its part name.
                        Err(_) => copy_out(&file, &part)?,
                    }
                }
                drop(file);
                if let Err(e) = fs::rename(&part, &path) {
                    // Verified but unplaceable (a directory in the way, say): nothing is
                    // left beside PATH; the error names it.
                    sidecar::discard(&path);
                    return Err(Error::io(&path, e));
                }
                if sidecar_written {
                    let _ = fs::remove_file(meta_path(&path));
                }
                Ok(None)
            }
            Sink::Memory(v) => Ok(Some(v)),
        }
    }
}

/// The `.part` of a split file: the whole length from the start, its segments written
/// in place by several connections at once (positioned writes need no shared cursor),
/// renamed to `PATH` once complete and verified.
pub(crate) struct SplitPart {
    file: File,
    part: PathBuf,
    path: PathBuf,
}

impl SplitPart {
    /// Creates `PATH.part` anew with `total` bytes (a sparse file until the segments
    /// arrive), or, with `keep`, opens the part an earlier attempt left, which must have
    /// that length already. `dirs` are the directories this worker made lately.
    pub(crate) fn open(
        path: &Path,
        total: u64,
        keep: bool,
        dirs: &mut RecentDirs,
    ) -> Result<SplitPart, Error> {
        if let Some(dir) = path.parent() {
            ensure_dir(dir, dirs)?;
        }
        let part = part_path(path);
        let io_err = |e| Error::io(&part, e);
        let file = if keep {
            let file = nofollow::options()
                .read(true)
                .write(true)
                .open(&part)
                .map_err(io_err)?;
            let len = file.metadata().map_err(io_err)?.len();
            if len != total {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("holds {len} bytes, {total} expected; it changed during the run"),
                )));
            }
            file
        } else {
            let file = nofollow::create(&part, true).map_err(io_err)?;
            file.set_len(total).map_err(io_err)?;
            file
        };
        Ok(SplitPart {
            file,
            part,
            path: path.to_path_buf(),
        })
    }

    /// Writes `chunk` at `offset`.
    pub(crate) fn write_at(&self, mut chunk: &[u8], mut offset: u64) -> Result<(), Error> {
        while !chunk.is_empty() {
            match positioned::write(&self.file, chunk, offset) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "wrote nothing");
                    return Err(Error::io(&self.part, e));
                }
                Ok(n) => {
                    chunk = &chunk[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&self.part, e)),
            }
        }
        Ok(())
    }

    /// Reads up to `buf.len()` bytes at `offset` (the bytes a segment wrote, read back
    /// for the in-order hash).
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Error> {
        loop {
            match positioned::read(&self.file, buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r.map_err(|e| Error::io(&self.part, e)),
            }
        }
    }

    /// `PATH`, where the file goes once verified.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the complete, verified file into place and removes its sidecar. The file
    /// stays open (helpers may still hold the split) but nothing writes to it any more.
    pub(crate) fn commit(&self) -> Result<(), Error> {
        if let Err(e) = fs::rename(&self.part, &self.path) {
            sidecar::discard(&self.path);
            return Err(Error::io(&self.path, e));
        }
        let _ = fs::remove_file(meta_path(&self.path));
        Ok(())
    }
}

/// Reads and writes at an offset without moving a shared cursor.
mod positioned {
    use std::fs::File;
    use std::io;

    #[cfg(unix)]
    pub(super) fn write(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::write_at(file, buf, offset)
    }

    #[cfg(unix)]
    pub(super) fn read(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }

    #[cfg(windows)]
    pub(super) fn write(file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_write(file, buf, offset)
    }

    #[cfg(windows)]
    pub(super) fn read(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
}

/// Copies an unnamed file's bytes to a new file at `part`.
fn copy_out(file: &File, part: &Path) -> Result<(), Error> {
    let io_err = |e| Error::io(part, e);
    let mut src = file;
    src.seek(io::SeekFrom::Start(0)).map_err(io_err)?;
    let mut dst = nofollow::create(part, false).map_err(io_err)?;
    io::copy(&mut src, &mut dst).map_err(io_err)?;
    Ok(())
}

/// Creates `dir` and its parents unless this worker saw it lately (`dirs`). A directory
/// removed behind our back shows up as a failed create of the `.part`, which is an `io`
/// error naming it, as it should be.
fn ensure_dir(dir: &Path, dirs: &mut RecentDirs) -> Result<(), Error> {
    if dirs.holds(dir) {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    dirs.note(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::sidecar::SIDECAR_THRESHOLD;

    /// A fresh, empty directory of its own for one test.
    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fetchpool-part-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn sidecar() -> Sidecar {
        Sidecar {
            url: "h/a.bin".into(),
            validator: "\"v1\"".into(),
            total: None,
        }
    }

    fn fresh(announced: Option<u64>, sidecar: Option<Sidecar>) -> PartStart {
        PartStart {
            offset: 0,
            sidecar,
            meta_exists: false,
            announced,
            fresh: true,
        }
    }

    fn open<'a>(path: &Path, start: PartStart, disk: &'a Disk) -> Sink<'a> {
        let mut dirs = RecentDirs::default();
        Sink::file(path, start, &mut Hasher::default(), disk, &mut dirs).unwrap()
    }

    #[test]
    fn a_large_body_is_written_to_its_part_with_an_early_sidecar_and_committed_into_place() {
        let dir = scratch_dir("large");
        let path = dir.join("sub/a.bin");
        let disk = Disk::default();
        let start = fresh(Some(SIDECAR_THRESHOLD + 1), Some(sidecar()));
        let mut sink = open(&path, start, &disk);
        sink.write(b"hello ", u64::MAX).unwrap();
        sink.write(b"world", u64::MAX).unwrap();
        // A body that gets an early sidecar is never unnamed: its part and sidecar are
        // on disk before the first byte, so a kill leaves it resumable.
        assert_eq!(names(&dir.join("sub")), ["a.bin.part", "a.bin.part.meta"]);
        assert_eq!(sink.commit().unwrap(), None);
        assert_eq!(names(&dir.join("sub")), ["a.bin"]);
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_abandoned_part_is_kept_with_its_sidecar_only_when_worth_keeping() {
        let dir = scratch_dir("abandon");
        let path = dir.join("a.bin");
        let disk = Disk::without_unnamed();
        let mut sink = open(&path, fresh(Some(10), Some(sidecar())), &disk);
        sink.write(b"hello", u64::MAX).unwrap();
        // A small body's sidecar is written only now, when the part is kept.
        assert_eq!(names(&dir), ["a.bin.part"]);
        assert!(sink.abandon(true));
        assert_eq!(names(&dir), ["a.bin.part", "a.bin.part.meta"]);
        assert_eq!(fs::read(part_path(&path)).unwrap(), b"hello");
        assert_eq!(Sidecar::read(&path).unwrap().unwrap().validator, "\"v1\"");

        // Not worth keeping, or nothing to resume it with: nothing is left.
        let sink = open(&path, fresh(Some(10), Some(sidecar())), &disk);
        assert!(!sink.abandon(false));
        assert_eq!(names(&dir), Vec::<String>::new());
        let mut sink = open(&path, fresh(Some(10), None), &disk);
        sink.write(b"hello", u64::MAX).unwrap();
        assert!(!sink.abandon(true));
        assert_eq!(names(&dir), Vec::<String>::new());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_ranged_body_continues_the_part_after_hashing_its_head() {
        let dir = scratch_dir("ranged");
        let path = dir.join("a.bin");
        let disk = Disk::default();
        // The part holds more than the resume point: the tail is cut off.
        fs::write(part_path(&path), b"hello XXX").unwrap();
        sidecar().write(&path).unwrap();
        let start = PartStart {
            offset: 6,
            sidecar: None,
            meta_exists: true,
            announced: Some(11),
            fresh: false,
        };
        let mut head = Hasher::default();
        let mut sink =
            Sink::file(&path, start, &mut head, &disk, &mut RecentDirs::default()).unwrap();
        let mut want = Hasher::default();
        want.update(b"hello ");
        assert_eq!(head.finish(), want.finish());
        sink.write(b"world", u64::MAX).unwrap();
        sink.commit().unwrap();
        assert_eq!(names(&dir), ["a.bin"]);
        assert_eq!(fs::read(&path).unwrap(), b"hello world");

        // A part shorter than the resume point changed behind the run's back.
        fs::write(part_path(&path), b"hel").unwrap();
        let start = PartStart {
            offset: 6,
            sidecar: None,
            meta_exists: true,
            announced: Some(11),
            fresh: false,
        };
        let err = Sink::file(
            &path,
            start,
            &mut Hasher::default(),
            &disk,
            &mut RecentDirs::default(),
        )
        .err()
        .unwrap();
        assert!(
            matches!(&err, Error::Io { path: p, .. } if *p == part_path(&path)),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_small_body_is_unnamed_until_committed_and_replaces_an_outdated_file() {
        let dir = scratch_dir("unnamed");
        let path = dir.join("a.bin");
        fs::write(&path, b"old").unwrap();
        // A stale part of an earlier run, in a directory that was not fresh.
        fs::write(part_path(&path), b"stale").unwrap();
        let disk = Disk::default();
        let start = PartStart {
            fresh: false,
            ..fresh(Some(3), Some(sidecar()))
        };
        let mut sink = open(&path, start, &disk);
        if !disk.unnamed_usable() {
            // No O_TMPFILE here: the fallback test covers what runs on this system.
            return;
        }
        sink.write(b"new", u64::MAX).unwrap();
        // Nothing named while the body is written; the stale part is gone.
        assert_eq!(names(&dir), ["a.bin"]);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        sink.commit().unwrap();
        assert_eq!(names(&dir), ["a.bin"]);
        assert_eq!(fs::read(&path).unwrap(), b"new");

        // An unnamed body worth keeping gets its part name (and sidecar) when abandoned.
        let mut sink = open(&path, fresh(Some(3), Some(sidecar())), &disk);
        sink.write(b"ne", u64::MAX).unwrap();
        assert_eq!(names(&dir), ["a.bin"]);
        assert!(sink.abandon(true));
        assert_eq!(names(&dir), ["a.bin", "a.bin.part", "a.bin.part.meta"]);
        assert_eq!(fs::read(part_path(&path)).unwrap(), b"ne");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_small_body_takes_the_part_path_where_unnamed_files_are_off() {
        let dir = scratch_dir("fallback");
        let path = dir.join("a.bin");
        let disk = Disk::without_unnamed();
        let mut sink = open(&path, fresh(Some(3), None), &disk);
        sink.write(b"new", u64::MAX).unwrap();
        assert_eq!(names(&dir), ["a.bin.part"]);
        sink.commit().unwrap();
        assert_eq!(names(&dir), ["a.bin"]);
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!disk.unnamed_usable());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unnamed_files_turned_off_in_one_pool_stay_on_in_another() {
        let dir = scratch_dir("two-disks");
        let (one, other) = (Disk::default(), Disk::default());
        one.unnamed_unusable();
        assert!(unnamed::create(&one, &dir).is_none());
        assert_eq!(
            unnamed::create(&other, &dir).is_some(),
            cfg!(target_os = "linux") && other.unnamed_usable()
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_memory_body_stops_at_the_limit_and_commits_to_its_buffer() {
        let mut sink = Sink::Memory(Vec::new());
        sink.write(b"abc", 4).unwrap();
        let err = sink.write(b"de", 4).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::TooLarge);
        assert_eq!(sink.commit().unwrap(), Some(b"abc".to_vec()));
        assert!(!Sink::Memory(Vec::new()).abandon(true));
    }
}
