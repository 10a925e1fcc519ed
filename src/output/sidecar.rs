//! Interrupted work continues and unchanged work is skipped: the `.part` sidecar, ranged
//! and conditional requests, the validator store and the up-to-date pre-check.
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
//! **Skip.** A job with a sha256 whose file already has it is skipped without a request;
//! [`Precheck`] hashes existing files in parallel with rayon, a batch at a time as jobs
//! stream, so memory stays flat. Without a sha256, the validator store (one small file per
//! output path under `OUTPUT/.fetchpool/validators/`, read only when that job runs, so
//! nothing of it is held in memory) makes the request conditional; a 304 skips the job and
//! leaves the file untouched. A stored entry counts only while the file keeps the size and
//! mtime it had when the entry was written.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ureq::http::HeaderMap;

use crate::fetch::{hex, part_path};
use crate::job::{Destination, Job, STATE_DIR};
use crate::nofollow;
use crate::verify::{self, Problem, Verdict};

/// Bodies larger than this (in bytes), or of unknown length, get their sidecar before the
/// first body byte. 1 MiB: below it, a restart costs less than the sidecar's write and
/// removal would on every successful download.
pub(crate) const SIDECAR_THRESHOLD: u64 = 1 << 20;

/// How many jobs the pre-check hashes at once. Large enough to keep every core busy,
/// small enough that the first downloads start at once.
const PRECHECK_BATCH: usize = 64;

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

/// `PATH.part.meta`.
pub(crate) fn meta_path(path: &Path) -> PathBuf {
    let mut s = part_path(path).into_os_string();
    s.push(".meta");
    PathBuf::from(s)
}

impl Sidecar {
    /// `Ok(None)`: a sidecar that is there but unreadable or not ours to trust.
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

/// The validator a later `If-Range` can use: a strong `ETag`, else `Last-Modified` when
/// there is no `ETag` at all. A weak tag cannot guard a range, and a client holding a tag
/// must not send a date instead (RFC 9110 §13.1.5): a body with a weak tag has none, and is
/// fetched from zero when it breaks. An encoded body (`Content-Encoding`) has none either:
/// its ranges need not be in the coordinates of the bytes on disk.
pub(crate) fn range_validator(headers: &HeaderMap) -> Option<String> {
    if encoded(headers) {
        return None;
    }
    // Any ETag, even one that is not text, rules out the date (RFC 9110 §13.1.5).
    match headers.get("etag").map(|v| v.to_str()) {
        Some(Ok(tag)) if tag.starts_with('"') => Some(tag.to_string()),
        Some(_) => None,
        None => headers
            .get("last-modified")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// Whether the body is sent with a `Content-Encoding` other than `identity`.
pub(crate) fn encoded(headers: &HeaderMap) -> bool {
    headers.get_all("content-encoding").iter().any(|v| {
        v.to_str()
            .map_or(true, |v| !v.trim().eq_ignore_ascii_case("identity"))
    })
}

/// Whether a response is of the version `validator` (a sidecar's) names: the same strong
/// `ETag` when the validator is one, else the same `Last-Modified` from a response without
/// any `ETag` (a date held where the server now tags its bodies, weakly or not, may come
/// from a body that changed within its second). A response without the header to compare
/// (a 206 may omit `Last-Modified`) is not taken on trust.
fn same_version(validator: &str, headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if validator.starts_with('"') {
        return get("etag") == Some(validator);
    }
    if headers.contains_key("etag") {
        return false;
    }
    match get("last-modified") {
        Some(date) if date == validator => true,
        Some(date) => {
            let parse = |d: &str| crate::net::http_date::parse_http_date(d);
            parse(date).is_some() && parse(date) == parse(validator)
        }
        None => false,
    }
}

/// Response headers that carry `validator` (a sidecar's), for the validator store when a
/// part is finished without a request.
pub(crate) fn validator_headers(validator: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let name = if validator.starts_with('"') {
        "etag"
    } else {
        "last-modified"
    };
    if let Ok(v) = ureq::http::HeaderValue::from_str(validator) {
        h.insert(name, v);
    }
    h
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

/// Validators remembered from the last download of a file, for a conditional request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The resource key ([`crate::resource_key`]) the validators were given for.
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    /// The file's size and mtime (ns since the epoch) when the entry was written: a file
    /// changed locally since then is not vouched for.
    len: u64,
    mtime_ns: u64,
}

/// What earlier runs and attempts left that this attempt can build on.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    pub(crate) resume: Option<ResumePoint>,
    pub(crate) stored: Option<Stored>,
    /// A sidecar file exists (usable or not) and must not outlive a fresh download.
    pub(crate) meta_exists: bool,
}

impl Prepared {
    /// Looks at `PATH`, `PATH.part` and their metadata for a plain GET of a file.
    pub(crate) fn for_job(output_dir: &Path, job: &Job) -> Prepared {
        let Destination::File(rel) = &job.dest else {
            return Prepared::default();
        };
        if !job.method.eq_ignore_ascii_case("GET") || job.body.is_some() {
            return Prepared::default();
        }
        let path = output_dir.join(rel);
        let sidecar = Sidecar::read(&path);
        let meta_exists = sidecar.is_ok();
        let resume = match sidecar {
            Err(_) => None,
            Ok(None) => {
                log::info!(
                    "{}: unreadable resume sidecar; starting over",
                    path.display()
                );
                None
            }
            Ok(Some(sidecar)) => resume_point(&path, &job.url, sidecar),
        };
        let stored = if job.sha256.is_none() {
            load_stored(output_dir, rel, &job.url)
        } else {
            None
        };
        Prepared {
            resume,
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

// ---- the validator store ----

fn store_path(output_dir: &Path, rel: &Path) -> PathBuf {
    let key = hex(&Sha256::digest(rel.to_string_lossy().as_bytes()));
    output_dir
        .join(STATE_DIR)
        .join("validators")
        .join(&key[..2])
        .join(&key[2..])
}

fn stamp(path: &Path) -> Option<(u64, u64)> {
    let m = fs::metadata(path).ok()?;
    let mtime = m.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((m.len(), mtime.as_nanos() as u64))
}

fn load_stored(output_dir: &Path, rel: &Path, url: &str) -> Option<Stored> {
    let text = nofollow::read(&store_path(output_dir, rel)).ok()?;
    let stored: Stored = serde_json::from_slice(&text).ok()?;
    let (len, mtime_ns) = stamp(&output_dir.join(rel))?;
    let same = crate::url::resource_key(&stored.url) == crate::url::resource_key(url);
    if !same {
        log::info!(
            "{}: stored validators are of another URL (host or path changed); not used",
            rel.display()
        );
    }
    (same && stored.len == len && stored.mtime_ns == mtime_ns).then_some(stored)
}

/// Remembers the validators of a file just put in place, complete and verified (its caller
/// runs only after the commit), so that a later 304 vouches only for a whole file of that
/// version. Best effort: a store that cannot be written only costs a full download next
/// time.
pub(crate) fn remember(output_dir: &Path, rel: &Path, url: &str, headers: &HeaderMap) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, last_modified) = (get("etag"), get("last-modified"));
    if etag.is_none() && last_modified.is_none() {
        return;
    }
    let Some((len, mtime_ns)) = stamp(&output_dir.join(rel)) else {
        return;
    };
    let entry = Stored {
        url: crate::url::resource_key(url),
        etag,
        last_modified,
        len,
        mtime_ns,
    };
    let file = store_path(output_dir, rel);
    let dirs = file.parent().and_then(|d| d.strip_prefix(output_dir).ok());
    if let Some(link) = dirs.and_then(|d| nofollow::find_link(output_dir, d)) {
        log::warn!(
            "{}: a symbolic link in the state directory; no validators are kept",
            link.display()
        );
        return;
    }
    let written = file
        .parent()
        .map_or(Ok(()), fs::create_dir_all)
        .and_then(|_| {
            nofollow::write(
                &file,
                &serde_json::to_vec(&entry).map_err(io::Error::other)?,
            )
        });
    if let Err(e) = written {
        log::debug!("validator store {}: {e}", file.display());
    }
}

// ---- the up-to-date check ----

/// Sha256 of a whole file, lowercase hex.
pub(crate) fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((hex(&hasher.finalize()), len))
}

/// An existing file that already has the job's sha256 (and size, when given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UpToDate {
    pub(crate) len: u64,
}

/// Hashes `PATH` when the job names a sha256 and the file exists: `None` when there is
/// nothing to hash, else whether the file is right (by [`crate::verify`]'s rule).
fn check_file(output_dir: &Path, job: &Job) -> Option<Option<UpToDate>> {
    let (Destination::File(rel), Some(_)) = (&job.dest, &job.sha256) else {
        return None;
    };
    match verify::check(output_dir, rel, job) {
        Verdict::Bad(_, Problem::Missing) => None,
        Verdict::Ok(len) => Some(Some(UpToDate { len })),
        _ => Some(None),
    }
}

/// Verdicts of the pre-check, waiting for their jobs to reach a worker. An entry lives from
/// its batch's hashing to its job's attempt, so the map holds at most what the scheduler
/// and the submission channel hold: bounded, however long the list.
#[derive(Debug, Default)]
pub(crate) struct Precheck {
    verdicts: Mutex<HashMap<PathBuf, Option<UpToDate>>>,
    /// The output directory was empty when the run started: no file can be up to date
    /// and no part can be resumed, so no job pays a lookup to find that out.
    fresh: bool,
}

impl Precheck {
    /// The pre-check for a run writing into `output_dir`.
    pub(crate) fn for_output(output_dir: &Path) -> Precheck {
        // The state directory does not count: no job's file or part can be inside it.
        let fresh = fs::read_dir(output_dir)
            .is_ok_and(|mut entries| entries.all(|e| e.is_ok_and(|e| e.file_name() == STATE_DIR)));
        Precheck {
            verdicts: Mutex::default(),
            fresh,
        }
    }

    /// Whether the output directory was empty when the run started.
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Whether the job's file is already right: the pre-check's verdict when it made one,
    /// else hashed now (jobs submitted one by one through a `Session`).
    pub(crate) fn up_to_date(&self, output_dir: &Path, job: &Job) -> Option<UpToDate> {
        let Destination::File(rel) = &job.dest else {
            return None;
        };
        job.sha256.as_ref()?;
        if self.fresh {
            return None;
        }
        let known = self
            .verdicts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(rel);
        match known {
            Some(verdict) => verdict,
            None => check_file(output_dir, job).flatten(),
        }
    }

    /// Wraps a job stream: each batch of jobs is checked in parallel before it is handed on.
    /// Once `cancelled` is set, jobs pass unchecked (they are about to be cancelled).
    pub(crate) fn stream<'a, I>(
        &'a self,
        output_dir: &'a Path,
        cancelled: &'a AtomicBool,
        jobs: I,
    ) -> impl Iterator<Item = Job> + Send + 'a
    where
        I: Iterator<Item = Job> + Send + 'a,
    {
        let mut jobs = jobs.fuse();
        let mut batch: std::vec::IntoIter<Job> = Vec::new().into_iter();
        std::iter::from_fn(move || {
            if batch.len() == 0 {
                let next: Vec<Job> = jobs.by_ref().take(PRECHECK_BATCH).collect();
                if self.fresh || cancelled.load(Ordering::Relaxed) {
                    batch = next.into_iter();
                    return batch.next();
                }
                let verdicts: Vec<(PathBuf, Option<UpToDate>)> = next
                    .par_iter()
                    .filter_map(|job| {
                        let v = check_file(output_dir, job)?;
                        Some((job.path()?.to_path_buf(), v))
                    })
                    .collect();
                if !verdicts.is_empty() {
                    self.verdicts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(verdicts);
                }
                batch = next.into_iter();
            }
            batch.next()
        })
    }
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
    fn a_weak_etag_leaves_no_validator_and_no_date_stands_in_for_it() {
        let date = "Wed, 01 Jan 2025 00:00:00 GMT";
        let h = headers(&[("etag", "W/\"x\""), ("last-modified", date)]);
        assert_eq!(range_validator(&h), None);
        let h = headers(&[("etag", "\"x\""), ("last-modified", date)]);
        assert_eq!(range_validator(&h).as_deref(), Some("\"x\""));
        assert_eq!(
            range_validator(&headers(&[("last-modified", date)])).as_deref(),
            Some(date)
        );
        assert_eq!(range_validator(&headers(&[])), None);
        let gz = headers(&[("etag", "\"x\""), ("content-encoding", "gzip")]);
        assert_eq!(range_validator(&gz), None);
        let plain = headers(&[("etag", "\"x\""), ("content-encoding", "identity")]);
        assert_eq!(range_validator(&plain).as_deref(), Some("\"x\""));
    }

    #[test]
    fn a_date_never_stands_in_for_an_etag_that_is_not_ascii() {
        // Found by the `headers` fuzz target: an ETag with bytes over 0x7f read as no
        // ETag at all, and the Last-Modified date was sent in If-Range instead.
        let date = "Wed, 01 Jan 2025 00:00:00 GMT";
        let mut h = headers(&[("last-modified", date)]);
        h.insert("etag", HeaderValue::from_bytes(b"\"caf\xe9\"").unwrap());
        assert_eq!(range_validator(&h), None);
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

    #[test]
    fn a_directory_holding_only_the_state_directory_is_fresh() {
        let dir = std::env::temp_dir().join(format!("fetchpool-fresh-{}", std::process::id()));
        fs::create_dir_all(dir.join(STATE_DIR)).unwrap();
        fs::write(dir.join(STATE_DIR).join("lock"), b"1\n").unwrap();
        assert!(Precheck::for_output(&dir).is_fresh());
        fs::write(dir.join("a.bin.part"), b"x").unwrap();
        assert!(!Precheck::for_output(&dir).is_fresh());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sidecar_sits_next_to_the_part() {
        assert_eq!(
            meta_path(Path::new("d/a.bin")),
            PathBuf::from("d/a.bin.part.meta")
        );
    }
}
