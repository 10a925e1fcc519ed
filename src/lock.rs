//! One run per output directory: an advisory lock on `OUTPUT/.fetchpool/lock`.
//!
//! Two runs writing one tree would race on every `.part` and rename. A run therefore
//! holds an exclusive `flock` on a file in the state directory, with its pid written in
//! it so that a second run can say who holds it. The kernel releases the lock when the
//! holder's descriptor closes, so a `kill -9` never leaves a stale lock behind; the file
//! itself stays (removing it would let two runs lock two different files).
//!
//! The lock is taken for a run that writes files: [`crate::Pool::run`] before its first
//! request, a [`crate::Session`] at its first file job, or explicitly with
//! [`crate::Pool::lock_output`]; memory jobs need none. Every run of one [`crate::Pool`]
//! (and of its clones) shares the lock held. Linux only, where `flock` is reached
//! without unsafe code; elsewhere runs are not locked.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::error::Error;

/// Holds the output directory for fetchpool's runs while it lives; see
/// [`crate::Pool::lock_output`]. Dropping the last handle releases the lock.
#[derive(Debug, Clone)]
pub struct OutputLock {
    _held: Arc<Held>,
}

#[derive(Debug)]
struct Held {
    #[cfg(target_os = "linux")]
    _file: std::fs::File,
}

/// The lock a pool and its clones share: the one held now, if any.
#[derive(Debug, Default)]
pub(crate) struct Shared(Mutex<Weak<Held>>);

impl Shared {
    /// The lock on `output_dir`: the one this pool holds already, or a new one.
    pub(crate) fn acquire(&self, output_dir: &Path) -> Result<OutputLock, Error> {
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = current.upgrade() {
            return Ok(OutputLock { _held: held });
        }
        let held = Arc::new(take(output_dir)?);
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
        match self.held.get_or_init(|| self.shared.acquire(&self.dir)) {
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone()),
        }
    }
}

#[cfg(target_os = "linux")]
fn take(output_dir: &Path) -> Result<Held, Error> {
    use rustix::fs::{FlockOperation, flock};
    use std::io::{Seek, Write};

    let state = output_dir.join(crate::job::STATE_DIR);
    if let Some(link) =
        crate::output::nofollow::find_link(output_dir, Path::new(crate::job::STATE_DIR))
    {
        return Err(crate::output::nofollow::link_error(&link));
    }
    std::fs::create_dir_all(&state).map_err(|e| Error::io(&state, e))?;
    let path = state.join("lock");
    let mut file = crate::output::nofollow::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(Error::OutputInUse {
                dir: output_dir.to_path_buf(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(e) => return Err(Error::io(&path, e.into())),
    }
    // Best effort: the pid only names the holder in another run's message.
    let _ = file
        .set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| writeln!(file, "{}", std::process::id()));
    Ok(Held { _file: file })
}

#[cfg(not(target_os = "linux"))]
fn take(_output_dir: &Path) -> Result<Held, Error> {
    Ok(Held {})
}
