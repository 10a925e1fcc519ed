//! Segmented downloads: one large file fetched over several connections at once.
//!
//! **When.** A file is split only when its first answer shows the server can serve
//! ranges of it: a `200` with `Accept-Ranges: bytes`, a `Content-Length` longer than two
//! segments and a strong validator (a strong `ETag`, else `Last-Modified` when there is
//! no `ETag`, the same rule as a resume), or the `206` that continues a split file's
//! sidecar. The first request is the plain request of a single stream, so a file that is
//! not split costs no extra request, and the first connection keeps reading its body:
//! it streams on from segment to segment for as long as the next one is still unclaimed.
//!
//! **Who.** The attempt that found the file splittable (the *primary*) offers the
//! [`Split`] to the scheduler once its first connection has shown that it is slow (under
//! 128 MiB/s over its first 20 ms: a connection that fast is not capped, and more would
//! only share the same cores), and the scheduler hands helper tasks to idle workers; each helper
//! claims one segment, fetches it with `Range: bytes=A-B` and `If-Range: VALIDATOR`, and
//! goes back to the scheduler, which decides again. So segments count against the
//! workers and the per-host limit like any request, a file takes at most
//! [`Config::split`](crate::Config::split) connections, and between two segments a
//! helper may as well serve another job. The primary fetches segments too, then waits
//! for the last ones and finishes the file: hash, verify, rename.
//!
//! **Integrity.** Every segment must come back as a `206` whose `Content-Range` is the
//! one asked, with the first answer's validator and no `Content-Encoding`: a `200`, a
//! `416`, another range or another validator means the file changed (or the server
//! stopped serving ranges), and the split ends; the part is dropped and the attempt
//! starts over from zero, so two versions are never spliced. Segments are written in
//! place into `PATH.part` (preallocated to the whole length); a
//! [`Cursor`](crate::output::cursor::Cursor) hashes the completed prefix in file order
//! as it grows, so the digest is ready soon after the last byte.
//!
//! **Resume.** The sidecar lists the completed segments and is rewritten after each one,
//! so a `kill -9`, Ctrl-C or a failed attempt keeps them; the next attempt asks only for
//! the missing ones. A segment that breaks goes back to the pool of missing segments,
//! to be continued from the bytes it had (within the attempt) by whichever connection
//! claims it next; after more than `retries` breaks of one segment the attempt fails and
//! the job is retried as any other.
//!
//! The design follows aria2's segment manager (a bitfield of done and in-use segments,
//! the first connection streaming on into free neighbours, a control file for resume)
//! and hf_transfer's chunking (closed `bytes=A-B` ranges of a fixed size, each retried
//! on its own, written with positioned writes).

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ureq::Body;
use ureq::http::{self, Response};

use super::classify::slow_check;
use super::classify::{Limits, deadline_error, from_io, header};
use super::input::{Env, Failure, Input, Scratch, Success, emit};
use super::split::{End, Seg, Split, State};
use crate::error::Error;
use crate::event::Event;
use crate::job::Destination;
use crate::net::http_date::parse_retry_after;
use crate::output::cursor::Cursor;
use crate::output::part::SplitPart;
use crate::output::sidecar::{self, ContentRange, Segmented, parse_content_range};
use crate::output::validators::{self, encoded, same_version};

/// Progress events per participant: at most one per interval.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// How often a waiting primary looks at the cancel flag and the deadline.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// Rounds of segments each connection fetches at least: the segments of the last round
/// finish together and are hashed after the last byte, so the shorter that round, the
/// sooner the file is verified (and a slow last segment holds up less).
const ROUNDS: u64 = 8;

/// The shortest segment a file is cut into to make [`ROUNDS`] rounds, in bytes.
const SHORTEST: u64 = 1 << 20;

/// The segment length for a file of `total` bytes over `split` connections: `longest`
/// (the configured segment size), or shorter, down to 1 MiB, when that would give each
/// connection fewer than [`ROUNDS`] segments. On a 256 MiB file over 16 connections
/// capped at 25 MiB/s each (nginx on loopback, 2 loaded cores), 8 MiB segments (two
/// rounds) left about 0.3 s after the last byte for the hash of the last round's 128 MiB;
/// eight rounds (2 MiB segments) were as fast as four and faster than one or two.
fn segment_size_for(total: u64, split: usize, longest: u64) -> u64 {
    let even = total.div_ceil(split as u64 * ROUNDS);
    even.clamp(SHORTEST.min(longest), longest)
}

/// Whether a first answer lets the file be split: see the module's rules.
pub(crate) fn splittable(ctx: &Env, task: &Input, status: u16, head: &http::HeaderMap) -> bool {
    let cfg = &ctx.config;
    let job = task.job;
    let ranges = head
        .get("accept-ranges")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|u| u.trim().eq_ignore_ascii_case("bytes")));
    let length = head
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    cfg.split > 1
        && status == 200
        && matches!(job.dest, Destination::File(_))
        && job.method.eq_ignore_ascii_case("GET")
        && job.body.is_none()
        && ranges
        && !encoded(head)
        && validators::range_validator(head).is_some()
        && length.is_some_and(|n| n > 2 * cfg.segment_size && job.size.is_none_or(|s| s == n))
}

/// How a split starts.
pub(crate) enum Start {
    /// A fresh file: the first answer's `200` body, read on as the first segments.
    Fresh(Response<Body>),
    /// A split file's part continued: the `206` answering its first missing segment.
    Resumed(Response<Body>, Segmented),
    /// A split file whose segments are all in the part: finished without a request.
    Whole(Segmented),
}

/// How a split ended.
pub(crate) enum Outcome {
    Done(Success),
    Failed(Failure),
    /// The file changed under the split: its part is gone; start over from zero.
    Restart,
}

/// Whether a `206` answers a split file's first missing segment under its validator.
pub(crate) fn continues(seg: &Segmented, status: u16, head: &http::HeaderMap) -> bool {
    let first = seg.done.bytes().position(|b| b == b'0').unwrap_or(0) as u64;
    let start = first * seg.segment_size;
    let end = (start + seg.segment_size).min(seg.total);
    status == 206 && range_fits(head, start, end, seg.total) && fits_version(&seg.validator, head)
}

fn range_fits(head: &http::HeaderMap, start: u64, end: u64, total: u64) -> bool {
    let cr = head
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range);
    matches!(cr, Some(ContentRange::Bytes { start: a, end: b, total: t })
        if a == start && b.checked_add(1) == Some(end) && t.is_none_or(|t| t == total))
}

fn fits_version(validator: &str, head: &http::HeaderMap) -> bool {
    same_version(validator, head) && !encoded(head)
}

/// Runs a split file to its end as the job's attempt: offers it to the scheduler for
/// helpers, fetches segments itself, waits for the last ones, then verifies and renames
/// the file.
pub(crate) fn run(
    ctx: &Env,
    task: &Input,
    scratch: &mut Scratch,
    url: &str,
    headers: &[(String, String)],
    start: Start,
) -> Outcome {
    let job = task.job;
    let cfg = &ctx.config;
    let Destination::File(rel) = &job.dest else {
        unreachable!("only file jobs are split")
    };
    let path = cfg.output_dir.join(rel);
    let (seg, status, keep) = match &start {
        Start::Fresh(r) => {
            let head = r.headers();
            let total = head
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let size = segment_size_for(total, cfg.split, cfg.segment_size);
            let count = total.div_ceil(size) as usize;
            let seg = Segmented {
                resource: crate::url::resource_key(&job.url),
                validator: validators::range_validator(head).unwrap_or_default(),
                total,
                segment_size: size,
                done: Segmented::flags_text(&vec![false; count]),
            };
            (seg, Some(200), false)
        }
        Start::Resumed(_, s) => (s.clone(), Some(206), true),
        Start::Whole(s) => (s.clone(), None, true),
    };
    let part = match SplitPart::open(&path, seg.total, keep, &mut scratch.made) {
        Ok(p) => p,
        Err(e) => {
            sidecar::discard(&path);
            return Outcome::Failed(Failure::new(e));
        }
    };
    let flags = seg.done_flags();
    let count = flags.len();
    let segs: Vec<Seg> = flags
        .iter()
        .map(|d| if *d { Seg::Done } else { Seg::Missing })
        .collect();
    let split = Arc::new(Split {
        id: task.id,
        host: task.host,
        url: url.to_string(),
        headers: headers.to_vec(),
        validator: seg.validator.clone(),
        resource: seg.resource.clone(),
        total: seg.total,
        size: seg.segment_size,
        cap: cfg.split,
        retries: job.retries.unwrap_or(cfg.retries),
        deadline: task.deadline,
        limits: Limits::of(cfg, job),
        part,
        state: Mutex::new(State {
            segs,
            filled: vec![0; count],
            breaks: vec![0; count],
            helpers: 0,
            peak: 1,
            end: None,
        }),
        changed: Condvar::new(),
        stop: AtomicBool::new(false),
        received: AtomicU64::new(0),
        cursor: Mutex::new(Cursor::new(super::digest::hasher_for(
            job.checksum.as_ref(),
            &[],
        ))),
    });
    let kept_before = split.done_bytes(&split.lock());
    split.received.store(kept_before, Ordering::Relaxed);
    if !keep {
        // The sidecar goes down before the first byte, as for any large body.
        if let Err(e) = split.sidecar(&flags).write(&path) {
            log::warn!("{}: cannot write the resume sidecar: {e}", path.display());
        }
    }
    let head = match &start {
        Start::Fresh(r) | Start::Resumed(r, _) => r.headers().clone(),
        Start::Whole(s) => validators::validator_headers(&s.validator),
    };
    // The in-order hash follows the completed prefix on a thread of its own while a core
    // is free for it (else whoever completes a segment hashes on): a connection never
    // waits for the hash before it asks for its next segment.
    let first = match start {
        Start::Fresh(r) => Some((r, true)),
        Start::Resumed(r, _) => Some((r, false)),
        Start::Whole(_) => None,
    };
    let slot = ctx.shared.hashers.claim();
    let (connections, end, done) = std::thread::scope(|scope| {
        let follower = slot.map(|slot| {
            let split = &split;
            scope.spawn(move || {
                let _slot = slot;
                follow(split);
            })
        });
        let (connections, end, done) = download(ctx, task, &split, first, scratch);
        if let Some(f) = follower {
            let _ = f.join();
        }
        (connections, end, done)
    });
    match end {
        Some(End::Restart(why)) => {
            log::info!(
                "{}: {why}; the split file starts over from zero",
                crate::redact::url(url)
            );
            sidecar::discard(&path);
            return Outcome::Restart;
        }
        Some(End::Failed(error)) => {
            let keep = !matches!(
                error,
                Error::Io { .. } | Error::Checksum { .. } | Error::Config { .. }
            ) && done > 0;
            if !keep {
                sidecar::discard(&path);
            }
            return Outcome::Failed(Failure {
                partial: keep.then_some(done),
                grew: keep && done > kept_before,
                ..Failure::new(error)
            });
        }
        None => {}
    }
    finish(ctx, task, &split, &head, status, kept_before, connections)
}

/// The download of a split file: the first answer's body, read on from its first
/// segment while the next ones are free, then whatever is left, with the helpers; returns
/// once no helper touches the part any more, with the most connections used at once, why
/// the split ended early (if it did) and the bytes of its finished segments.
fn download(
    ctx: &Env,
    task: &Input,
    split: &Arc<Split>,
    first: Option<(Response<Body>, bool)>,
    scratch: &mut Scratch,
) -> (u32, Option<End>, u64) {
    if let Some((mut r, on)) = first {
        if let Some(k) = split.claim_for_primary() {
            let offer = || (ctx.offer)(Arc::clone(split));
            // A resumed file asks for helpers at once; a fresh one once its first
            // connection has shown that it is slow (see [`Probe`]).
            let mut probe = Probe::new(&offer);
            if !on {
                probe.decide(true);
            }
            let reader = &mut r.body_mut().as_reader();
            stream(ctx, split, k, on, reader, scratch, &mut probe);
            // A stream that ended before the probe could tell (it broke, say): helpers
            // are asked for, since the rest needs requests anyway.
            probe.decide(true);
        }
        // Closed where its stream stopped: the rest of the body is other segments'.
        drop(r);
    }
    // Then whatever is left, with the helpers.
    loop {
        if let Some(k) = split.claim_for_primary() {
            fetch(ctx, split, k, None, scratch);
            continue;
        }
        let mut s = split.lock();
        loop {
            let all_done = s.segs.iter().all(|x| *x == Seg::Done);
            let missing = s.segs.contains(&Seg::Missing);
            if all_done || missing || s.end.is_some() {
                break;
            }
            if ctx.cancelled.load(Ordering::Relaxed) {
                drop(s);
                split.end(End::Failed(Error::Cancelled {
                    reason: "interrupted".into(),
                }));
                s = split.lock();
                break;
            }
            if task.deadline.is_some_and(|d| Instant::now() >= d) {
                drop(s);
                split.end(End::Failed(deadline_error(&split.limits)));
                s = split.lock();
                break;
            }
            s = split
                .changed
                .wait_timeout(s, WAIT_STEP)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if s.end.is_some() || s.segs.iter().all(|x| *x == Seg::Done) {
            break;
        }
    }
    // No helper may touch the part once the attempt has decided its fate.
    let mut s = split.lock();
    while s.helpers > 0 {
        s = split
            .changed
            .wait_timeout(s, WAIT_STEP)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    let connections = s.peak as u32;
    let end = s.end.take();
    let done = split.done_bytes(&s);
    drop(s);
    split.stop.store(true, Ordering::SeqCst);
    split.changed.notify_all();
    (connections, end, done)
}

/// The hashing thread of a split file: hashes the completed prefix as it grows, until the
/// whole file is hashed or the split is over.
fn follow(split: &Split) {
    let mut cursor = split.cursor.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let upto = {
            let mut s = split.lock();
            loop {
                let n = s.segs.iter().take_while(|x| **x == Seg::Done).count();
                let upto = (n as u64 * split.size).min(split.total);
                if upto > cursor.at() || s.end.is_some() || split.stop.load(Ordering::SeqCst) {
                    break upto;
                }
                s = split
                    .changed
                    .wait_timeout(s, WAIT_STEP)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        };
        if upto > cursor.at() && cursor.advance(&split.part, upto).is_err() {
            return;
        }
        if cursor.at() >= split.total || split.stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Hashes what the cursor has not yet, checks the file against the job, and renames it.
fn finish(
    ctx: &Env,
    task: &Input,
    split: &Split,
    head: &http::HeaderMap,
    status: Option<u16>,
    kept_before: u64,
    connections: u32,
) -> Outcome {
    let job = task.job;
    let path = split.part.path().to_path_buf();
    let fail = |error: Error| {
        sidecar::discard(&path);
        Outcome::Failed(Failure::new(error))
    };
    let mut cursor = split.cursor.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = cursor.advance(&split.part, split.total) {
        return fail(e);
    }
    let digests = std::mem::take(&mut *cursor).finish();
    drop(cursor);
    if let Some(expected) = job.size
        && expected != split.total
    {
        return fail(Error::Checksum {
            expected: format!("{expected} bytes"),
            actual: format!("{} bytes", split.total),
        });
    }
    // A ranged answer carries no digest of the whole body: only the list's is checked.
    let verified = match super::digest::judge(job.checksum.as_ref(), &[], &digests, &job.url) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if let Err(e) = split.part.commit() {
        return Outcome::Failed(Failure::new(e));
    }
    let mut placed_at = None;
    if let Destination::File(rel) = &job.dest {
        placed_at = crate::output::place::place(ctx.config.placing(), job, rel, head);
        // As for a single stream.
        if (job.checksum.is_none() || placed_at.is_some())
            && let Some(store) = &ctx.config.state_dir
        {
            let placed = placed_at.as_deref();
            validators::remember(store, &ctx.config.output_dir, rel, &job.url, head, placed);
        }
    }
    Outcome::Done(Success {
        http_status: status,
        bytes: split.total,
        sha256: Some(digests.sha256()),
        verified,
        resumed_from: (kept_before > 0 || status == Some(206)).then_some(kept_before),
        redirects: Vec::new(),
        body: None,
        skipped: false,
        headers: Vec::new(),
        placed_at,
        connections,
    })
}

/// A helper task: fetches one segment of `split`, if one is left, and returns.
pub(crate) fn help(ctx: &Env, split: &Split, scratch: &mut Scratch) {
    if split.stop.load(Ordering::SeqCst) {
        return;
    }
    if let Some(k) = split.claim_for_helper() {
        fetch(ctx, split, k, None, scratch);
        split.leave();
    }
}

/// The primary's first body, read on from segment `k` into the following ones while
/// they are free (`on`: a `200`; a `206` holds only its segment); dropped, its
/// connection with it, at the first one that is not.
fn stream(
    ctx: &Env,
    split: &Split,
    mut k: usize,
    on: bool,
    reader: &mut dyn std::io::Read,
    scratch: &mut Scratch,
    probe: &mut Probe<'_>,
) {
    let count = split.lock().segs.len();
    loop {
        if !fetch(ctx, split, k, Some((&mut *reader, &mut *probe)), scratch) || !on {
            return;
        }
        k += 1;
        if k >= count || !split.claim_exact(k) {
            return;
        }
    }
}

/// Fetches segment `k` (taken by the caller) from where it stands: from `body` when the
/// caller's stream is there, else with a ranged request of its own. Returns whether the
/// segment is complete.
fn fetch(
    ctx: &Env,
    split: &Split,
    k: usize,
    body: Option<(&mut dyn std::io::Read, &mut Probe<'_>)>,
    scratch: &mut Scratch,
) -> bool {
    let (seg_start, seg_end) = split.bounds(k);
    let from = seg_start + split.lock().filled[k];
    let mut pos = from;
    let result = match body {
        Some((reader, probe)) => {
            read_into(ctx, split, reader, &mut pos, seg_end, scratch, Some(probe))
        }
        None => request(ctx, split, from, seg_end).and_then(|mut b| {
            let mut reader = b.as_reader();
            read_into(ctx, split, &mut reader, &mut pos, seg_end, scratch, None)?;
            // The body's end, seen: only then does the connection go back to the pool for
            // the next segment (else each segment would open a connection of its own).
            let _ = reader.read(&mut [0u8; 1]);
            Ok(())
        }),
    };
    match result {
        Ok(()) => {
            split.complete(k);
            true
        }
        Err(End::Restart(why)) => {
            split.end(End::Restart(why));
            split.lock().segs[k] = Seg::Missing;
            false
        }
        Err(End::Failed(error)) => {
            if split.stop.load(Ordering::SeqCst) {
                // The split ended elsewhere; this segment's bytes stay unrecorded.
                let mut s = split.lock();
                s.segs[k] = Seg::Missing;
                s.filled[k] = pos - seg_start;
            } else {
                split.release(k, pos - seg_start, error);
            }
            false
        }
    }
}

/// Asks for the bytes `[from, end)` under the split's validator; the body of a `206`
/// that is exactly that range of that version.
fn request(ctx: &Env, split: &Split, from: u64, end: u64) -> Result<Body, End> {
    if split.deadline.is_some_and(|d| Instant::now() >= d) {
        return Err(End::Failed(deadline_error(&split.limits)));
    }
    let mut headers = split.headers.clone();
    headers.push(("Range".into(), format!("bytes={from}-{}", end - 1)));
    headers.push(("If-Range".into(), split.validator.clone()));
    let r = super::send(
        ctx,
        "GET",
        &split.url,
        [&headers[..], &[]],
        None,
        split.deadline,
        &split.limits,
    )
    .map_err(End::Failed)?;
    judge(split, r, from, end).map(Response::into_body)
}

/// How long the first connection of a fresh split file is watched before helpers are
/// asked for, from its first body byte.
const PROBE_TIME: Duration = Duration::from_millis(20);

/// A first connection at least this fast (bytes per second) gets no helpers: it is not
/// capped, and more connections would only share the same cores (on loopback, one 1 GiB
/// file took 2.1-3.1 s over 5 connections against 2.0-2.3 s over one, the extra in
/// system time: positioned writes contending for the file, the read-back for the hash).
const FAST: f64 = 128.0 * (1 << 20) as f64;

/// Watches the first connection of a split file and asks for helpers, once, when it
/// turns out slower than [`FAST`] over [`PROBE_TIME`].
struct Probe<'a> {
    offer: Option<&'a dyn Fn()>,
    first: Option<Instant>,
    bytes: u64,
}

impl<'a> Probe<'a> {
    fn new(offer: &'a dyn Fn()) -> Probe<'a> {
        Probe {
            offer: Some(offer),
            first: None,
            bytes: 0,
        }
    }

    /// Counts `n` bytes just read; decides once the connection has been watched long
    /// enough.
    fn note(&mut self, n: usize) {
        if self.offer.is_none() {
            return;
        }
        let first = *self.first.get_or_insert_with(Instant::now);
        self.bytes += n as u64;
        let elapsed = first.elapsed();
        if elapsed >= PROBE_TIME {
            let slow = (self.bytes as f64) < FAST * elapsed.as_secs_f64();
            self.decide(slow);
        }
    }

    /// Asks for helpers if `wanted`; either way, nothing more is decided.
    fn decide(&mut self, wanted: bool) {
        if let Some(offer) = self.offer.take()
            && wanted
        {
            offer();
        }
    }
}

/// Keeps the body of a segment's answer; turns every other answer into the split's end
/// (the file changed) or a segment failure.
fn judge(split: &Split, r: Response<Body>, from: u64, end: u64) -> Result<Response<Body>, End> {
    let status = r.status().as_u16();
    let head = r.headers();
    let version = fits_version(&split.validator, head);
    if status == 206 && version && range_fits(head, from, end, split.total) {
        return Ok(r);
    }
    let retry_after =
        header(&r, "retry-after").and_then(|v| parse_retry_after(&v, SystemTime::now()));
    let _ = r
        .into_body()
        .into_with_config()
        .limit(64 * 1024)
        .read_to_vec();
    let restart = |why: &str| Err(End::Restart(why.to_string()));
    match status {
        200 => restart(
            "a segment was answered with the whole file (it changed, or ranges stopped working)",
        ),
        206 if !version => restart("a segment came with another validator: the file changed"),
        206 | 416 => restart("a segment was answered with another range"),
        _ => Err(End::Failed(Error::Status {
            code: status,
            retry_after,
        })),
    }
}

/// Reads `reader` into the part from `*pos` up to `end`, under the rate limit, the
/// minimum rate and the cancel flag.
fn read_into(
    ctx: &Env,
    split: &Split,
    reader: &mut dyn std::io::Read,
    pos: &mut u64,
    end: u64,
    scratch: &mut Scratch,
    mut probe: Option<&mut Probe<'_>>,
) -> Result<(), End> {
    let cfg = &ctx.config;
    let mut window = (Instant::now(), *pos);
    let mut last_progress = Instant::now();
    let buf = &mut scratch.buf[..];
    while *pos < end {
        if let Some(cancelled) = ctx.cancel_asked(split.id) {
            return Err(End::Failed(cancelled));
        }
        if split.stop.load(Ordering::Relaxed) {
            return Err(End::Failed(Error::Cancelled {
                reason: "the split ended".into(),
            }));
        }
        let left = buf.len().min((end - *pos) as usize);
        let n = ctx
            .read_chunk(split.id, reader, &mut buf[..left], |e| {
                from_io(&split.limits, e)
            })
            .map_err(End::Failed)?;
        if n == 0 {
            // A cancel's shutdown may wake the read with an end rather than an error.
            return Err(End::Failed(ctx.cancel_asked(split.id).unwrap_or_else(
                || Error::Network {
                    message: format!(
                        "a segment's body ended at byte {} of the {end} it should reach",
                        *pos
                    ),
                    source: None,
                },
            )));
        }
        if let Some(p) = probe.as_deref_mut() {
            p.note(n);
        }
        split.part.write_at(&buf[..n], *pos).map_err(End::Failed)?;
        *pos += n as u64;
        let bytes = split.received.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if let Some(min) = cfg.min_rate {
            slow_check(&mut window, *pos, min, cfg.min_rate_window).map_err(End::Failed)?;
        }
        if cfg.progress_events && last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            emit(
                ctx,
                Event::Progress {
                    id: split.id,
                    bytes,
                    total: Some(split.total),
                },
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gets_eight_segments_per_connection_within_the_configured_bounds() {
        const MIB: u64 = 1 << 20;
        // 256 MiB over 16 connections: 2 MiB segments, 128 of them.
        assert_eq!(segment_size_for(256 * MIB, 16, 8 * MIB), 2 * MIB);
        // A large file keeps the configured size.
        assert_eq!(segment_size_for(10 << 30, 5, 8 * MIB), 8 * MIB);
        // Never shorter than 1 MiB, nor than a configured size below it.
        assert_eq!(segment_size_for(20 * MIB, 5, 8 * MIB), MIB);
        assert_eq!(segment_size_for(6 * MIB, 4, 256 << 10), 256 << 10);
    }
}
