//! One run per output directory: an advisory lock on `OUTPUT/.fetchpool/lock`.
//!
//! Two runs writing one tree would race on every `.part` and rename. A run therefore
//! holds an exclusive `flock` on a file in the state directory, with its pid written in
//! it so that a second run can say who holds it. The kernel releases the lock when the
//! holder's descriptor closes, so a `kill -9` never leaves a stale lock behind; the file
//! itself stays (removing it would let two runs lock two different files).
//!
//! A run that takes one shard of a list ([`crate::Shard`]) writes only that shard's
//! paths, so the shards of one list may share a directory (GNU parallel on one machine,
//! a Slurm array on one node, pods on one volume): such a run holds a *shared* `flock` on
//! `lock`, which keeps out any run of the whole list, and an exclusive one on
//! `lock-shard-K-of-N`, which keeps out a second run of the same shard. Shards of
//! different counts (`1/3` beside `1/4`) overlap and are not told apart: give one list
//! one count.
//!
//! The lock is taken for a run that writes files: [`crate::Pool::run`] before its first
//! request, a [`crate::Session`] at its first file job, or explicitly with
//! [`crate::Pool::lock_output`]; memory jobs need none. Every run of one [`crate::Pool`]
//! (and of its clones) shares the lock held. Linux only, where `flock` is reached
//! without unsafe code; elsewhere runs are not locked.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::error::Error;
use crate::shard::Shard;

/// Holds the output directory for fetchpool's runs while it lives; see
/// [`crate::Pool::lock_output`]. Dropping the last handle releases the lock.
///
/// ```no_run
/// let pool = fetchpool::Pool::builder().output_dir("mirror").build()?;
/// let _held = pool.lock_output()?; // fails at once if another run writes there
/// pool.run([fetchpool::Job::new("http://127.0.0.1:8080/a.bin")])?;
/// pool.run([fetchpool::Job::new("http://127.0.0.1:8080/b.bin")])?; // still ours
/// # Ok::<(), fetchpool::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct OutputLock {
    _held: Arc<Held>,
}

#[derive(Debug)]
struct Held {
    #[cfg(target_os = "linux")]
    _file: std::fs::File,
    /// A shard's own lock, beside the shared one on `lock`.
    #[cfg(target_os = "linux")]
    _shard: Option<std::fs::File>,
}

/// Unlocks before the descriptors close: a process that forked meanwhile (any thread of
/// the caller's program starting a child) holds copies of them until its `exec`, and the
/// `flock` would live on in those copies; an explicit unlock ends it at once whoever
/// else holds the file open. Seen as a spurious "in use" right after a run, while
/// another thread of the same test program started a process.
#[cfg(target_os = "linux")]
impl Drop for Held {
    fn drop(&mut self) {
        use rustix::fs::FlockOperation::Unlock;
        if let Some(own) = &self._shard {
            let _ = rustix::fs::flock(own, Unlock);
        }
        let _ = rustix::fs::flock(&self._file, Unlock);
    }
}

/// The lock a pool and its clones share: the one held now, if any.
#[derive(Debug, Default)]
pub(crate) struct Shared(Mutex<Weak<Held>>);

impl Shared {
    /// The lock on `output_dir`, for the whole list or for `shard` of it: the one this
    /// pool holds already, or a new one.
    pub(crate) fn acquire(
        &self,
        output_dir: &Path,
        shard: Option<Shard>,
    ) -> Result<OutputLock, Error> {
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = current.upgrade() {
            return Ok(OutputLock { _held: held });
        }
        let held = Arc::new(take(output_dir, shard)?);
        *current = Arc::downgrade(&held);
        Ok(OutputLock { _held: held })
    }
}

/// A session's lock, taken when its first file job needs it and kept to its end.
#[derive(Debug)]
pub(crate) struct Lazy {
    shared: Arc<Shared>,
    dir: PathBuf,
    held: OnceLock<Result<OutputLock, Error>>,
}

impl Lazy {
    pub(crate) fn new(shared: Arc<Shared>, dir: PathBuf) -> Lazy {
        Lazy {
            shared,
            dir,
            held: OnceLock::new(),
        }
    }

    /// Takes the lock unless taken already; the first answer stands for the session.
    pub(crate) fn ensure(&self) -> Result<(), Error> {
        match self
            .held
            .get_or_init(|| self.shared.acquire(&self.dir, None))
        {
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone()),
        }
    }
}

#[cfg(target_os = "linux")]
fn take(output_dir: &Path, shard: Option<Shard>) -> Result<Held, Error> {
    use rustix::fs::FlockOperation;

    let state = output_dir.join(crate::job::STATE_DIR);
    if let Some(link) =
        crate::output::nofollow::find_link(output_dir, Path::new(crate::job::STATE_DIR))
    {
        return Err(crate::output::nofollow::link_error(&link));
    }
    std::fs::create_dir_all(&state).map_err(|e| Error::io(&state, e))?;
    let Some(shard) = shard else {
        let file = lock_file(
            output_dir,
            &state.join("lock"),
            FlockOperation::NonBlockingLockExclusive,
        )?;
        write_pid(&file);
        return Ok(Held {
            _file: file,
            _shard: None,
        });
    };
    let file = lock_file(
        output_dir,
        &state.join("lock"),
        FlockOperation::NonBlockingLockShared,
    )?;
    // The pid in it was a whole-list run's, which has ended; several shards hold it now,
    // so it names none of them.
    let _ = file.set_len(0);
    let name = format!("lock-shard-{}-of-{}", shard.index() + 1, shard.count());
    let own = lock_file(
        output_dir,
        &state.join(name),
        FlockOperation::NonBlockingLockExclusive,
    )?;
    write_pid(&own);
    Ok(Held {
        _file: file,
        _shard: Some(own),
    })
}

/// Opens `path` and locks it with `op` without waiting; a lock held elsewhere is
/// [`Error::OutputInUse`] with the pid the file holds, if any.
#[cfg(target_os = "linux")]
fn lock_file(
    output_dir: &Path,
    path: &Path,
    op: rustix::fs::FlockOperation,
) -> Result<std::fs::File, Error> {
    let file = crate::output::nofollow::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    match rustix::fs::flock(&file, op) {
        Ok(()) => Ok(file),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            Err(Error::OutputInUse {
                dir: output_dir.to_path_buf(),
                pid: text.trim().parse().ok(),
            })
        }
        Err(e) => Err(Error::io(path, e.into())),
    }
}

/// Best effort: the pid only names the holder in another run's message.
#[cfg(target_os = "linux")]
fn write_pid(mut file: &std::fs::File) {
    use std::io::{Seek, Write};
    let _ = file
        .set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| writeln!(file, "{}", std::process::id()));
}

#[cfg(not(target_os = "linux"))]
fn take(_output_dir: &Path, _shard: Option<Shard>) -> Result<Held, Error> {
    Ok(Held {})
}
