//! Interrupted work continues: the `.part` sidecar, the ranged request it allows, and how
//! the answer to that request is judged.
//!
//! **Sidecar.** `PATH.part.meta` is one JSON line naming the resource (the URL's host and
//! path, [`crate::resource_key`]: a signed URL's query changes between runs, its file does
//! not), the validator (a strong `ETag`, else `Last-Modified` when the server sends no
//! `ETag` at all) and the announced total. It is written before the first
//! body byte only when the body is larger than [`SIDECAR_THRESHOLD`] or of unknown length,
//! so a kill of any size leaves a resumable state where resuming pays. Smaller bodies write
//! it only when an attempt breaks or is cancelled mid-way (rare, and enough for a retry or
//! a Ctrl-C to resume); a `kill -9` during a small body costs at most 1 MiB again.
//!
//! **Resume.** A `.part` whose length is the recorded total is already whole: it is
//! finished (hashed, verified) without a request. Any other `.part` with a sidecar for the
//! same resource turns the request into `Range: bytes=N-` with `If-Range: VALIDATOR`. Only a
//! 206 whose `Content-Range` starts at N and ends at the recorded total, that carries the
//! sidecar's validator (some servers ignore `If-Range` and answer 206 for a changed file)
//! and no `Content-Encoding`, continues the file; a 200 restarts from zero (the file
//! changed, or the server ignores ranges); a 416 saying the total is N, with the same
//! validator, means the part is already whole; anything else drops the part and asks again
//! without a range. Without a usable validator there is no resume at all: bytes of two
//! versions are never spliced. A weak `ETag` is no usable validator (RFC 9110 §13.1.5: weak
//! tags cannot guard a range, and a date must not be sent while a tag is held), so a body
//! served with one is never resumed.
//!

use std::fs::{self};
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ureq::http::HeaderMap;

use super::names::{meta_path, part_path};
use super::nofollow;
use super::validators::{Stored, encoded, load_stored, same_version};
use crate::job::{Destination, Job};

/// Bodies larger than this (in bytes), or of unknown length, get their sidecar before the
/// first body byte. 1 MiB: below it, a restart costs less than the sidecar's write and
/// removal would on every successful download.
pub(crate) const SIDECAR_THRESHOLD: u64 = 1 << 20;

/// What `PATH.part.meta` records about the body in `PATH.part`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sidecar {
    /// The job's resource key ([`crate::resource_key`] of its URL before redirects).
    pub(crate) url: String,
    /// The `If-Range` value: a strong entity tag, or a `Last-Modified` date.
    pub(crate) validator: String,
    /// The whole body's length, when the server announced it.
    pub(crate) total: Option<u64>,
}

impl Sidecar {
    /// `Ok(None)`: a sidecar that is there but unreadable or not ours to trust (a split
    /// file's sidecar included: [`Segmented::read`] reads that one).
    /// `Err`: none at all (the common case costs one failed `open`).
    pub(crate) fn read(path: &Path) -> io::Result<Option<Sidecar>> {
        let text = nofollow::read(&meta_path(path))?;
        Ok(serde_json::from_slice(&text).ok())
    }

    pub(crate) fn write(&self, path: &Path) -> io::Result<()> {
        let mut line = serde_json::to_vec(self).map_err(io::Error::other)?;
        line.push(b'\n');
        nofollow::write(&meta_path(path), &line)
    }
}

/// The sidecar of a split file: its `.part` has the whole file's length from the start
/// and `done` says which segments of it hold their bytes. It names the resource under
/// `resource`, not `url`, so a reader that knows only [`Sidecar`] finds it unreadable and
/// starts over rather than take the preallocated part for a complete one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Segmented {
    /// The job's resource key, as [`Sidecar::url`].
    pub(crate) resource: String,
    /// The strong validator every segment was asked under (`If-Range`).
    pub(crate) validator: String,
    /// The whole file's length in bytes.
    pub(crate) total: u64,
    /// The length of each segment but the last, in bytes.
    pub(crate) segment_size: u64,
    /// One character per segment: `1` for a segment whose bytes are in the part, `0`
    /// otherwise.
    pub(crate) done: String,
}

impl Segmented {
    /// The split file's sidecar at `path`, if there is one and it is well-formed: one
    /// digit per segment of `total` in `segment_size` steps.
    pub(crate) fn read(path: &Path) -> Option<Segmented> {
        let text = nofollow::read(&meta_path(path)).ok()?;
        let s: Segmented = serde_json::from_slice(&text).ok()?;
        let count = s.total.div_ceil(s.segment_size.max(1));
        (s.segment_size > 0
            && s.done.len() as u64 == count
            && s.done.bytes().all(|b| b == b'0' || b == b'1'))
        .then_some(s)
    }

    /// Writes it, replacing any sidecar of the part.
    pub(crate) fn write(&self, path: &Path) -> io::Result<()> {
        let mut line = serde_json::to_vec(self).map_err(io::Error::other)?;
        line.push(b'\n');
        nofollow::write(&meta_path(path), &line)
    }

    /// Which segments are done, in order.
    pub(crate) fn done_flags(&self) -> Vec<bool> {
        self.done.bytes().map(|b| b == b'1').collect()
    }

    /// The `done` text for these flags.
    pub(crate) fn flags_text(flags: &[bool]) -> String {
        flags.iter().map(|d| if *d { '1' } else { '0' }).collect()
    }
}

/// Where a ranged request picks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResumePoint {
    /// Bytes of `PATH.part` kept; the `Range` start.
    pub(crate) offset: u64,
    pub(crate) sidecar: Sidecar,
}

impl ResumePoint {
    /// The part holds the whole recorded body: nothing is left to ask for.
    pub(crate) fn is_complete(&self) -> bool {
        self.sidecar.total == Some(self.offset)
    }
}

/// What earlier runs and attempts left that this attempt can build on.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    pub(crate) resume: Option<ResumePoint>,
    /// A split file's part and the segments it holds, continued segment by segment.
    pub(crate) segments: Option<Segmented>,
    pub(crate) stored: Option<Stored>,
    /// A sidecar file exists (usable or not) and must not outlive a fresh download.
    pub(crate) meta_exists: bool,
}

impl Prepared {
    /// Looks at `PATH`, `PATH.part` and their metadata for a plain GET of a file.
    pub(crate) fn for_job(output_dir: &Path, store: Option<&Path>, job: &Job) -> Prepared {
        let Destination::File(rel) = &job.dest else {
            return Prepared::default();
        };
        if !job.method.eq_ignore_ascii_case("GET") || job.body.is_some() {
            return Prepared::default();
        }
        let path = output_dir.join(rel);
        let sidecar = Sidecar::read(&path);
        let meta_exists = sidecar.is_ok();
        let segments = match &sidecar {
            Ok(None) => Segmented::read(&path).and_then(|s| segmented_point(&path, &job.url, s)),
            _ => None,
        };
        let resume = match sidecar {
            Err(_) => None,
            Ok(None) if segments.is_some() => None,
            Ok(None) => {
                log::info!(
                    "{}: unreadable resume sidecar; starting over",
                    path.display()
                );
                None
            }
            Ok(Some(sidecar)) => resume_point(&path, &job.url, sidecar),
        };
        let stored = match store {
            Some(store) if job.checksum.is_none() => load_stored(store, output_dir, rel, &job.url),
            _ => None,
        };
        Prepared {
            resume,
            segments,
            stored,
            meta_exists,
        }
    }

    /// Forgets what this preparation had (after a resumed body failed its check): the next
    /// request starts from zero and carries no condition.
    pub(crate) fn start_over(&mut self, path: Option<&Path>) {
        self.drop_resume(path);
        self.meta_exists = false;
        self.stored = None;
    }

    /// The request headers this preparation adds.
    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        let mut h = Vec::new();
        if let Some(r) = &self.resume {
            h.push(("Range".into(), format!("bytes={}-", r.offset)));
            h.push(("If-Range".into(), r.sidecar.validator.clone()));
        }
        // A split file continues with its first missing segment.
        if let Some(s) = &self.segments {
            let first = s.done.bytes().position(|b| b == b'0').unwrap_or(0) as u64;
            let start = first * s.segment_size;
            let end = (start + s.segment_size).min(s.total);
            h.push((
                "Range".into(),
                format!("bytes={start}-{}", end.saturating_sub(1)),
            ));
            h.push(("If-Range".into(), s.validator.clone()));
        }
        if let Some(s) = &self.stored {
            if let Some(tag) = &s.etag {
                h.push(("If-None-Match".into(), tag.clone()));
            } else if let Some(date) = &s.last_modified {
                h.push(("If-Modified-Since".into(), date.clone()));
            }
        }
        h
    }

    /// Forgets the resume point (after the server refused it).
    pub(crate) fn drop_resume(&mut self, path: Option<&Path>) {
        self.resume = None;
        self.segments = None;
        if let Some(path) = path {
            discard(path);
        }
    }
}

/// The resume point a sidecar gives for `path`, or `None` with a log line saying why the
/// part cannot be continued.
fn resume_point(path: &Path, url: &str, sidecar: Sidecar) -> Option<ResumePoint> {
    let drop = |why: &str| {
        log::info!("{}: {why}; starting over", part_path(path).display());
        None
    };
    if crate::url::resource_key(&sidecar.url) != crate::url::resource_key(url) {
        return drop("the partial file is of another URL (host or path changed)");
    }
    let Ok(meta) = fs::symlink_metadata(part_path(path)) else {
        return drop("a resume sidecar without its partial file");
    };
    if !meta.is_file() {
        return drop("the partial file is not a plain file (a link fetchpool did not make?)");
    }
    let offset = meta.len();
    if offset == 0 {
        return None;
    }
    if sidecar.total.is_some_and(|t| offset > t) {
        return drop("the partial file is longer than the recorded total");
    }
    Some(ResumePoint { offset, sidecar })
}

/// A split file's part is usable when it is of the same resource and a plain file of
/// the whole length (it was preallocated); anything else starts over.
fn segmented_point(path: &Path, url: &str, s: Segmented) -> Option<Segmented> {
    let drop = |why: &str| {
        log::info!("{}: {why}; starting over", part_path(path).display());
        None
    };
    if crate::url::resource_key(&s.resource) != crate::url::resource_key(url) {
        return drop("the partial file is of another URL (host or path changed)");
    }
    match fs::symlink_metadata(part_path(path)) {
        Ok(meta) if meta.is_file() && meta.len() == s.total => Some(s),
        Ok(_) => drop("the split partial file is not a plain file of the recorded length"),
        Err(_) => drop("a resume sidecar without its partial file"),
    }
}

/// Removes `PATH.part` and its sidecar.
pub(crate) fn discard(path: &Path) {
    let _ = fs::remove_file(part_path(path));
    let _ = fs::remove_file(meta_path(path));
}

/// What a response to a ranged request means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// No range was asked, or the server sent the whole body (200): write from zero.
    Fresh,
    /// A valid 206: append to the part from this offset.
    Continue(u64),
    /// 416 saying the part already holds the whole body.
    Complete(u64),
    /// Anything else: the part cannot be trusted; ask again without a range.
    Restart,
}

/// Judges a response against the range that was asked. A 206 or 416 continues or ends the
/// part only when it carries the sidecar's validator: a server that ignores `If-Range`
/// answers 206 for a file that changed, and its tail would be spliced onto the old head.
pub(crate) fn judge(resume: Option<&ResumePoint>, status: u16, headers: &HeaderMap) -> RangeAnswer {
    let content_range = headers
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range);
    let Some(r) = resume else {
        // A 206 nobody asked for holds only part of the body.
        return if status == 206 {
            RangeAnswer::Restart
        } else {
            RangeAnswer::Fresh
        };
    };
    let total_fits = |t: Option<u64>| match (t, r.sidecar.total) {
        (Some(t), Some(want)) => t == want,
        _ => true,
    };
    if matches!(status, 206 | 416)
        && (!same_version(&r.sidecar.validator, headers) || encoded(headers))
    {
        return RangeAnswer::Restart;
    }
    match (status, content_range) {
        // The range must run to the end of the body, by its own total or, when it says
        // `/*`, the recorded one: a shorter one would be committed as the whole file.
        (206, Some(ContentRange::Bytes { start, end, total }))
            if start == r.offset
                && total_fits(total)
                && total
                    .or(r.sidecar.total)
                    .is_none_or(|t| end.checked_add(1) == Some(t))
                && end >= start =>
        {
            RangeAnswer::Continue(start)
        }
        (416, Some(ContentRange::Unsatisfied { total }))
            if total == r.offset && total_fits(Some(total)) =>
        {
            RangeAnswer::Complete(total)
        }
        (206 | 416, _) => RangeAnswer::Restart,
        _ => RangeAnswer::Fresh,
    }
}

/// Where the body of a 206 ends in the whole file (the `Content-Range`'s last byte + 1):
/// what the file's length must be once it is appended.
pub(crate) fn range_end(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get("content-range")?.to_str().ok()?;
    match parse_content_range(v)? {
        ContentRange::Bytes { end, .. } => end.checked_add(1),
        ContentRange::Unsatisfied { .. } => None,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ContentRange {
    Bytes {
        start: u64,
        end: u64,
        total: Option<u64>,
    },
    Unsatisfied {
        total: u64,
    },
}

/// `bytes 10-99/100`, `bytes 10-99/*` or `bytes */100`.
pub(crate) fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if span.trim() == "*" {
        return Some(ContentRange::Unsatisfied { total: total? });
    }
    let (a, b) = span.trim().split_once('-')?;
    Some(ContentRange::Bytes {
        start: a.trim().parse().ok()?,
        end: b.trim().parse().ok()?,
        total,
    })
}

/// Whether a fresh body of `announced` length gets its sidecar before the first byte.
pub(crate) fn wants_early_sidecar(announced: Option<u64>) -> bool {
    announced.is_none_or(|n| n > SIDECAR_THRESHOLD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::http::HeaderValue;

    fn point(offset: u64, total: Option<u64>) -> ResumePoint {
        ResumePoint {
            offset,
            sidecar: Sidecar {
                url: "http://h/a".into(),
                validator: "\"v1\"".into(),
                total,
            },
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_a_206_from_the_offset_to_the_recorded_total_continues() {
        let p = point(400, Some(1000));
        let cr = |v: &str| headers(&[("content-range", v), ("etag", "\"v1\"")]);
        assert_eq!(
            judge(Some(&p), 206, &cr("bytes 400-999/1000")),
            RangeAnswer::Continue(400)
        );
        assert_eq!(
            judge(Some(&p), 206, &cr("bytes 0-999/1000")),
            RangeAnswer::Restart
        );
        assert_eq!(
            judge(Some(&p), 206, &cr("bytes 400-999/2000")),
            RangeAnswer::Restart
        );
        assert_eq!(
            judge(Some(&p), 206, &cr("bytes 400-499/1000")),
            RangeAnswer::Restart
        );
        assert_eq!(
            judge(Some(&p), 206, &cr("bytes 400-499/*")),
            RangeAnswer::Restart
        );
        assert_eq!(
            judge(Some(&p), 206, &cr("bytes 400-999/*")),
            RangeAnswer::Continue(400)
        );
        assert_eq!(judge(Some(&p), 206, &headers(&[])), RangeAnswer::Restart);
        assert_eq!(judge(Some(&p), 200, &headers(&[])), RangeAnswer::Fresh);
        assert_eq!(judge(None, 206, &cr("bytes 0-9/10")), RangeAnswer::Restart);
    }

    #[test]
    fn a_416_means_complete_only_when_the_total_is_the_offset() {
        let whole = point(1000, Some(1000));
        let cr = |v: &str| headers(&[("content-range", v), ("etag", "\"v1\"")]);
        assert_eq!(
            judge(Some(&whole), 416, &cr("bytes */1000")),
            RangeAnswer::Complete(1000)
        );
        assert_eq!(
            judge(Some(&point(1200, None)), 416, &cr("bytes */1000")),
            RangeAnswer::Restart
        );
        assert_eq!(
            judge(Some(&whole), 416, &headers(&[])),
            RangeAnswer::Restart
        );
    }

    #[test]
    fn a_range_ending_at_the_last_possible_byte_is_judged_without_overflow() {
        // Seen while writing the `headers` fuzz target: `end + 1` overflowed for
        // end = u64::MAX (a panic in debug builds).
        let p = point(5, Some(u64::MAX));
        let cr = headers(&[
            (
                "content-range",
                "bytes 5-18446744073709551615/18446744073709551615",
            ),
            ("etag", "\"v1\""),
        ]);
        assert_eq!(judge(Some(&p), 206, &cr), RangeAnswer::Restart);
    }

    #[test]
    fn a_206_or_416_continues_only_with_the_sidecars_validator() {
        let p = point(400, Some(1000));
        let h = |pairs: &[(&'static str, &str)]| {
            let mut all = vec![("content-range", "bytes 400-999/1000")];
            all.extend_from_slice(pairs);
            headers(&all)
        };
        assert_eq!(
            judge(Some(&p), 206, &h(&[("etag", "\"v1\"")])),
            RangeAnswer::Continue(400)
        );
        assert_eq!(
            judge(Some(&p), 206, &h(&[("etag", "\"v2\"")])),
            RangeAnswer::Restart
        );
        assert_eq!(
            judge(Some(&p), 206, &h(&[("etag", "W/\"v1\"")])),
            RangeAnswer::Restart
        );
        assert_eq!(judge(Some(&p), 206, &h(&[])), RangeAnswer::Restart);
        let gz = h(&[("etag", "\"v1\""), ("content-encoding", "gzip")]);
        assert_eq!(judge(Some(&p), 206, &gz), RangeAnswer::Restart);
        let date = "Wed, 01 Jan 2025 00:00:00 GMT";
        let mut by_date = point(400, Some(1000));
        by_date.sidecar.validator = date.into();
        assert_eq!(
            judge(Some(&by_date), 206, &h(&[("last-modified", date)])),
            RangeAnswer::Continue(400)
        );
        let later = h(&[("last-modified", "Wed, 01 Jan 2025 00:00:01 GMT")]);
        assert_eq!(judge(Some(&by_date), 206, &later), RangeAnswer::Restart);
        assert_eq!(
            judge(Some(&by_date), 206, &h(&[("etag", "\"t\"")])),
            RangeAnswer::Restart
        );
        // A date kept by an older sidecar while the server tags its bodies: not trusted.
        let tagged = h(&[("last-modified", date), ("etag", "W/\"t\"")]);
        assert_eq!(judge(Some(&by_date), 206, &tagged), RangeAnswer::Restart);
        let whole = point(1000, None);
        let cr = headers(&[("content-range", "bytes */1000"), ("etag", "\"v2\"")]);
        assert_eq!(judge(Some(&whole), 416, &cr), RangeAnswer::Restart);
    }

    #[test]
    fn small_known_bodies_skip_the_early_sidecar() {
        assert!(!wants_early_sidecar(Some(1000)));
        assert!(!wants_early_sidecar(Some(SIDECAR_THRESHOLD)));
        assert!(wants_early_sidecar(Some(SIDECAR_THRESHOLD + 1)));
        assert!(wants_early_sidecar(None));
    }
}
