//! One split file's shared state: which segments are missing, taken or done, who is
//! fetching, and how the split ended — the [`Split`] the attempt that split a file, the
//! helpers the scheduler sends it and the scheduler itself all hold (see
//! [`super::segment`] for how a split download runs).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::classify::Limits;
use crate::error::Error;
use crate::job::JobId;
use crate::output::cursor::Cursor;
use crate::output::part::SplitPart;
use crate::output::sidecar::Segmented;

/// Where a segment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seg {
    Missing,
    Taken,
    Done,
}

/// Why a split ended before its file was complete.
#[derive(Debug)]
pub(super) enum End {
    /// The file changed (or ranges stopped working): drop the part, start over.
    Restart(String),
    /// An error no retry within the attempt fixes: the attempt fails with it.
    Failed(Error),
}

pub(super) struct State {
    pub(super) segs: Vec<Seg>,
    /// Bytes of each segment already in the part, from its start.
    pub(super) filled: Vec<u64>,
    /// Times each segment broke in this attempt.
    pub(super) breaks: Vec<u32>,
    /// Helpers fetching a segment now.
    pub(super) helpers: usize,
    /// The most connections fetching at once, the primary's included.
    pub(super) peak: usize,
    pub(super) end: Option<End>,
}

/// One split file, shared by the attempt that split it and the helpers the scheduler
/// sends it.
pub(crate) struct Split {
    pub(super) id: JobId,
    /// The pool's index of the job's host, for the scheduler's per-host count.
    pub(crate) host: usize,
    /// The URL after redirects: every segment asks it directly.
    pub(super) url: String,
    /// The request headers (the job's and the run's, credentials dropped by redirects).
    pub(super) headers: Vec<(String, String)>,
    pub(super) validator: String,
    pub(super) resource: String,
    pub(super) total: u64,
    pub(super) size: u64,
    /// Most connections at once, the primary's included.
    pub(super) cap: usize,
    pub(super) retries: u32,
    pub(super) deadline: Option<Instant>,
    /// The job's time limits, as its timeouts report them.
    pub(super) limits: Limits,
    pub(super) part: SplitPart,
    pub(super) state: Mutex<State>,
    pub(super) changed: Condvar,
    /// Set when the split ends early: every participant stops at its next read.
    pub(super) stop: AtomicBool,
    /// Bytes in the part, for progress events.
    pub(super) received: AtomicU64,
    pub(super) cursor: Mutex<Cursor>,
}

impl Split {
    /// The job whose file this is.
    pub(crate) fn id(&self) -> JobId {
        self.id
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The byte range `[start, end)` of segment `k`.
    pub(super) fn bounds(&self, k: usize) -> (u64, u64) {
        let start = k as u64 * self.size;
        (start, (start + self.size).min(self.total))
    }

    /// Whether one more helper, beside the `dispatched` ones the scheduler has sent and
    /// not yet heard back from, would find a segment to fetch within the connection cap.
    pub(crate) fn room(&self, dispatched: usize) -> bool {
        let s = self.lock();
        let missing = s.segs.iter().filter(|x| **x == Seg::Missing).count();
        s.end.is_none()
            && dispatched + 1 < self.cap
            && dispatched.saturating_sub(s.helpers) < missing
    }

    /// Takes the first missing segment for a helper, within the connection cap.
    pub(super) fn claim_for_helper(&self) -> Option<usize> {
        let mut s = self.lock();
        if s.end.is_some() || s.helpers + 1 >= self.cap {
            return None;
        }
        let k = s.segs.iter().position(|x| *x == Seg::Missing)?;
        s.segs[k] = Seg::Taken;
        s.helpers += 1;
        s.peak = s.peak.max(s.helpers + 1);
        Some(k)
    }

    /// Takes the first missing segment for the primary.
    pub(super) fn claim_for_primary(&self) -> Option<usize> {
        let mut s = self.lock();
        if s.end.is_some() {
            return None;
        }
        let k = s.segs.iter().position(|x| *x == Seg::Missing)?;
        s.segs[k] = Seg::Taken;
        Some(k)
    }

    /// Takes segment `k` if it is still missing (the primary's stream moving on).
    pub(super) fn claim_exact(&self, k: usize) -> bool {
        let mut s = self.lock();
        let free = s.end.is_none() && s.segs.get(k) == Some(&Seg::Missing);
        if free {
            s.segs[k] = Seg::Taken;
        }
        free
    }

    /// Segment `k` holds all its bytes: recorded in the sidecar, and hashed when it
    /// extends the completed prefix.
    pub(super) fn complete(&self, k: usize) {
        {
            let mut s = self.lock();
            s.segs[k] = Seg::Done;
            s.filled[k] = self.bounds(k).1 - self.bounds(k).0;
            let flags: Vec<bool> = s.segs.iter().map(|x| *x == Seg::Done).collect();
            // Written under the lock, so that sidecars land in the order they were made.
            if let Err(e) = self.sidecar(&flags).write(self.part.path()) {
                log::warn!(
                    "{}: cannot write the resume sidecar: {e}",
                    self.part.path().display()
                );
            }
            self.changed.notify_all();
        }
        // Whoever holds the cursor hashes on; the primary catches up at the end.
        if let Ok(mut c) = self.cursor.try_lock() {
            let upto = self.prefix();
            let _ = c.advance(&self.part, upto);
        }
    }

    /// Segment `k` broke after `filled` of its bytes: it is missing again, to be
    /// continued from there; a segment broken too often, or an error no retry fixes,
    /// ends the split.
    pub(super) fn release(&self, k: usize, filled: u64, error: Error) {
        let mut s = self.lock();
        s.segs[k] = Seg::Missing;
        s.filled[k] = filled;
        s.breaks[k] += 1;
        let last = !error.is_transient() || s.breaks[k] > self.retries;
        if last && s.end.is_none() {
            s.end = Some(End::Failed(error));
            self.stop.store(true, Ordering::SeqCst);
        } else if !last {
            log::debug!(
                "{}: segment {k} broke ({error}); it is fetched again from byte {}",
                crate::redact::url(&self.url),
                self.bounds(k).0 + filled
            );
        }
        self.changed.notify_all();
    }

    /// Ends the split early (unless it has ended already).
    pub(super) fn end(&self, end: End) {
        let mut s = self.lock();
        if s.end.is_none() {
            s.end = Some(end);
        }
        self.stop.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// A helper is done with its segment.
    pub(super) fn leave(&self) {
        let mut s = self.lock();
        s.helpers -= 1;
        self.changed.notify_all();
    }

    /// The end of the completed prefix, in bytes.
    pub(super) fn prefix(&self) -> u64 {
        let s = self.lock();
        let n = s.segs.iter().take_while(|x| **x == Seg::Done).count();
        (n as u64 * self.size).min(self.total)
    }

    pub(super) fn done_bytes(&self, s: &State) -> u64 {
        (0..s.segs.len())
            .filter(|k| s.segs[*k] == Seg::Done)
            .map(|k| self.bounds(k).1 - self.bounds(k).0)
            .sum()
    }

    pub(super) fn sidecar(&self, flags: &[bool]) -> Segmented {
        Segmented {
            resource: self.resource.clone(),
            validator: self.validator.clone(),
            total: self.total,
            segment_size: self.size,
            done: Segmented::flags_text(flags),
        }
    }
}
