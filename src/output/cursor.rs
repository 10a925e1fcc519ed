//! The in-order hash of a file written out of order: a split file's segments land
//! anywhere in its `.part`, but its sha256 must cover the bytes in file order. The
//! [`Cursor`] follows the contiguous prefix of completed segments and hashes it, reading
//! the bytes back (from the page cache: they were written moments ago), so the digest is
//! ready shortly after the last segment arrives instead of after a second pass.
//!
//! The digests are those of [`crate::checksum::Hasher`]: sha256 always, and the job's
//! checksum's algorithm when it names another.

use super::part::SplitPart;
use crate::checksum::{Digests, Hasher};
use crate::error::Error;

/// How much is read back at a time, in bytes.
const READ_BACK: usize = 1 << 20;

/// The hash of a file's first `at` bytes, moved forward as segments complete.
pub(crate) struct Cursor {
    hasher: Hasher,
    at: u64,
    buf: Vec<u8>,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor::new(Hasher::default())
    }
}

impl Cursor {
    /// A cursor at the file's start, hashing with `hasher`.
    pub(crate) fn new(hasher: Hasher) -> Cursor {
        Cursor {
            hasher,
            at: 0,
            buf: Vec::new(),
        }
    }

    /// Bytes hashed so far: the file's first `at()` bytes.
    pub(crate) fn at(&self) -> u64 {
        self.at
    }

    /// Hashes `part` from where the cursor stands up to `upto` (the end of the completed
    /// prefix).
    pub(crate) fn advance(&mut self, part: &SplitPart, upto: u64) -> Result<(), Error> {
        if self.buf.is_empty() && upto > self.at {
            self.buf = vec![0; READ_BACK];
        }
        while self.at < upto {
            let want = ((upto - self.at) as usize).min(self.buf.len());
            let n = part.read_at(&mut self.buf[..want], self.at)?;
            if n == 0 {
                return Err(Error::io(
                    part.path(),
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the partial file got shorter during the download",
                    ),
                ));
            }
            self.hasher.update(&self.buf[..n]);
            self.at += n as u64;
        }
        Ok(())
    }

    /// The digests of everything hashed, lowercase hex.
    pub(crate) fn finish(self) -> Digests {
        self.hasher.finish()
    }
}
