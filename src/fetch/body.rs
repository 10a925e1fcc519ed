//! A body on its way to disk or memory: read (under the rate limit and the minimum rate),
//! counted against the job's size, hashed (inline, or on a hashing thread for a large
//! body while a core is free), written to its [`Sink`], then checked and committed.

use std::io::Read;
use std::time::{Duration, Instant};

use ureq::http;

use super::classify::{Limits, from_io, slow_check};
use super::digest;
use super::input::{BUF_SIZE, Env, Failure, Input, Pipeline, Scratch, Success, emit};
use crate::checksum::Hasher;
use crate::error::Error;
use crate::event::Event;
use crate::job::Destination;
use crate::output::part::{PartStart, Sink};
use crate::output::place;
use crate::output::sidecar::{self, Prepared, Sidecar};
use crate::output::validators;

/// Progress events per job: at most one per interval, and one per step of bytes.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// A body as it arrives: the answer's status and headers, and where it starts.
pub(super) struct Arrived<'a> {
    /// The answer's status; `None` for a part finished without a request.
    pub(super) status: Option<u16>,
    pub(super) head: &'a http::HeaderMap,
    pub(super) reader: &'a mut dyn Read,
    /// The offset a ranged answer (or a finished part) continues at.
    pub(super) from: Option<u64>,
}

/// Streams the body to its destination, hashing as it goes, and verifies it. The bytes
/// already in `PATH.part` before the body's offset are hashed first so that the digests
/// cover the whole file: sha256 always, and the job's checksum's algorithm or, without
/// one, those of the digests the server announced ([`digest`]). A body is cut off as soon as it passes the job's listed size or,
/// for a memory job, the memory limit. A large body's hashing thread runs in a scope of
/// this call: it is joined before the call returns, whatever the outcome.
pub(super) fn receive(
    ctx: &Env,
    task: &Input,
    scratch: &mut Scratch,
    prep: &Prepared,
    body: Arrived,
) -> Result<Success, Failure> {
    std::thread::scope(|scope| receive_in(scope, ctx, task, scratch, prep, body))
}

/// [`receive`] with the scope that a hashing thread is started in.
fn receive_in<'s>(
    scope: &'s std::thread::Scope<'s, '_>,
    ctx: &'s Env,
    task: &Input,
    scratch: &mut Scratch,
    prep: &Prepared,
    body: Arrived,
) -> Result<Success, Failure> {
    let Arrived {
        status,
        head,
        reader,
        from,
    } = body;
    let job = &task.job;
    let cfg = &ctx.config;
    let length = head
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let recorded = prep.resume.as_ref().and_then(|r| r.sidecar.total);
    let announced = match from {
        None => length,
        // The range's end, which `judge` checked against every total known.
        Some(n) if status == Some(206) => sidecar::range_end(head)
            .or(recorded)
            .or(length.map(|l| n + l)),
        // A 416 or a part finished without a request: the part is the whole body.
        Some(n) => Some(n),
    };
    let offset = from.unwrap_or(0);
    if let (Some(expected), Some(got)) = (job.size, announced)
        && expected != got
    {
        if let Destination::File(rel) = &job.dest {
            sidecar::discard(&cfg.output_dir.join(rel));
        }
        return Err(Failure::new(Error::Checksum {
            expected: format!("{expected} bytes"),
            actual: format!("{got} bytes announced by the server"),
        }));
    }
    let announced_digests =
        digest::announced(head, status == Some(206) || from.is_some(), cfg.etag_md5);
    let mut first_bytes = digest::hasher_for(job.checksum.as_ref(), &announced_digests);
    let mut sink = match &job.dest {
        Destination::File(rel) => {
            let sidecar = match (from, validators::range_validator(head)) {
                (None, Some(validator)) => Some(Sidecar {
                    url: crate::url::resource_key(&job.url),
                    validator,
                    total: announced,
                }),
                _ => None,
            };
            let start = PartStart {
                offset,
                sidecar,
                meta_exists: prep.meta_exists,
                announced,
                fresh: ctx.precheck.is_fresh(),
            };
            Sink::file(
                &cfg.output_dir.join(rel),
                start,
                &mut first_bytes,
                &ctx.shared.disk,
                &mut scratch.made,
            )
            .map_err(Failure::new)?
        }
        Destination::Memory => {
            if let Some(n) = announced.filter(|n| *n > cfg.memory_limit) {
                return Err(Failure::new(Error::too_large(cfg.memory_limit, Some(n))));
            }
            Sink::Memory(Vec::with_capacity(
                announced.unwrap_or(0).min(cfg.memory_limit) as usize,
            ))
        }
    };
    let remaining = announced.map(|total| total.saturating_sub(offset));
    let mut hasher = match remaining
        .filter(|n| *n >= PIPELINE_MIN)
        .and_then(|_| ctx.shared.hashers.claim())
    {
        Some(slot) => BodyHasher::Piped(PipedHasher::start(scope, first_bytes, slot)),
        None => BodyHasher::Inline(first_bytes),
    };
    let mut bytes: u64 = offset;
    // The current minimum-rate window: when it began and the byte count then.
    let mut window = (Instant::now(), bytes);
    let mut last_progress = Instant::now();
    let mut last_progress_bytes = bytes;
    let local = &mut scratch.buf[..];
    let result: Result<(), Error> = (|| {
        loop {
            if let Some(cancelled) = ctx.cancel_asked(task.id) {
                return Err(cancelled);
            }
            let chunk_buf = hasher.buffer(local);
            let n = ctx.read_chunk(task.id, reader, chunk_buf, |e| {
                from_io(&Limits::of(cfg, job), e)
            })?;
            if n == 0 {
                return Ok(());
            }
            // Without a Content-Length (close-delimited, chunked) only the count can tell
            // that the body is longer than listed: stop at once, not at its end.
            if let Some(expected) = job.size
                && bytes + n as u64 > expected
            {
                return Err(Error::Checksum {
                    expected: format!("{expected} bytes"),
                    actual: format!("more than {expected} bytes (the rest was not read)"),
                });
            }
            sink.write(&chunk_buf[..n], cfg.memory_limit)?;
            hasher.consume(n, local);
            bytes += n as u64;
            if let Some(min) = cfg.min_rate {
                slow_check(&mut window, bytes, min, cfg.min_rate_window)?;
            }
            if cfg.progress_events
                && (bytes - last_progress_bytes >= 1 << 20
                    || last_progress.elapsed() >= PROGRESS_INTERVAL)
            {
                last_progress = Instant::now();
                last_progress_bytes = bytes;
                emit(
                    ctx,
                    Event::Progress {
                        id: task.id,
                        bytes,
                        total: announced,
                    },
                );
            }
        }
    })();
    if let Err(error) = result {
        let keep = match &error {
            Error::Io { .. }
            | Error::Checksum { .. }
            | Error::Digest { .. }
            | Error::Config { .. } => false,
            _ => bytes > 0,
        };
        // A memory body is not kept for a resume, but its bytes were received: the
        // outcome reports them.
        let memory = matches!(sink, Sink::Memory(_));
        let partial = if memory {
            (bytes > 0).then_some(bytes)
        } else {
            sink.abandon(keep).then_some(bytes)
        };
        return Err(Failure {
            partial,
            grew: !memory && partial.is_some() && bytes > offset,
            ..Failure::new(error)
        });
    }
    let digests = match hasher.finish() {
        Some(h) => h.finish(),
        None => {
            sink.abandon(false);
            return Err(Failure::new(Error::Hashing {
                path: job.path().map(|rel| cfg.output_dir.join(rel)),
            }));
        }
    };
    // ureq holds a body to its Content-Length; this holds the file to its announced
    // length too (a 206 whose Content-Length is shorter than its Content-Range, say).
    if let Some(want) = announced
        && want != bytes
    {
        let partial = sink
            .abandon(bytes > offset && bytes < want)
            .then_some(bytes);
        return Err(Failure {
            partial,
            ..Failure::new(Error::Network {
                message: format!("the body ended after {bytes} of the {want} bytes announced"),
                source: None,
            })
        });
    }
    if let Some(expected) = job.size
        && expected != bytes
    {
        sink.abandon(false);
        return Err(Failure::new(Error::Checksum {
            expected: format!("{expected} bytes"),
            actual: format!("{bytes} bytes"),
        }));
    }
    let verified = match digest::judge(
        job.checksum.as_ref(),
        &announced_digests,
        &digests,
        &job.url,
    ) {
        Ok(v) => v,
        Err(e) => {
            sink.abandon(false);
            return Err(Failure::new(e));
        }
    };
    let body = sink.commit().map_err(Failure::new)?;
    let placed_at = match &job.dest {
        Destination::File(rel) => place::place(cfg.placing(), job, rel, head),
        Destination::Memory => None,
    };
    // A job listed with a checksum is judged by its hash on the next run, never by a
    // validator: storing one would cost a file per job for nothing, unless the file went
    // to its Content-Disposition name, where the next run must be told to look.
    if let Destination::File(rel) = &job.dest
        && (job.checksum.is_none() || placed_at.is_some())
        && let Some(store) = &cfg.state_dir
    {
        validators::remember(
            store,
            &cfg.output_dir,
            rel,
            &job.url,
            head,
            placed_at.as_deref(),
        );
    }
    Ok(Success {
        http_status: status,
        bytes,
        sha256: Some(digests.sha256()),
        verified,
        resumed_from: from,
        redirects: Vec::new(),
        body,
        skipped: false,
        headers: Vec::new(),
        placed_at,
        connections: 1,
    })
}

/// Bodies at least this long are hashed on a thread of their own while the worker reads
/// and writes: one stream then runs at the speed of the slower of the two, not their sum.
const PIPELINE_MIN: u64 = 4 << 20;

/// Chunks in flight between a worker and its hashing thread.
const PIPELINE_DEPTH: usize = 4;

/// The body's digests, computed inline or on a helper thread.
enum BodyHasher<'a> {
    Inline(Hasher),
    Piped(PipedHasher<'a>),
}

impl BodyHasher<'_> {
    /// The buffer the next chunk is read into: the worker's own for inline hashing, one
    /// of the hashing thread's for a piped body (handed over whole after the write, so
    /// the chunk is never copied).
    fn buffer<'a>(&'a mut self, local: &'a mut [u8]) -> &'a mut [u8] {
        match self {
            BodyHasher::Inline(_) => local,
            BodyHasher::Piped(p) => &mut p.current,
        }
    }

    /// Hashes the first `n` bytes of the buffer last returned by [`BodyHasher::buffer`].
    fn consume(&mut self, n: usize, local: &[u8]) {
        match self {
            BodyHasher::Inline(h) => h.update(&local[..n]),
            BodyHasher::Piped(p) => p.consume(n),
        }
    }

    /// The hasher with every chunk in it; `None` only if the hashing thread died.
    fn finish(self) -> Option<Hasher> {
        match self {
            BodyHasher::Inline(h) => Some(h),
            BodyHasher::Piped(p) => p.finish(),
        }
    }
}

/// A hashing thread that takes whole read buffers from the worker and gives them back
/// once hashed: a large body costs no copy and no allocation after the first few chunks.
struct PipedHasher<'a> {
    /// The buffer the worker reads into now.
    current: Vec<u8>,
    full: Option<crossbeam_channel::Sender<(Vec<u8>, usize)>>,
    free: crossbeam_channel::Receiver<Vec<u8>>,
    thread: std::thread::ScopedJoinHandle<'a, Hasher>,
    _slot: Pipeline<'a>,
}

impl<'a> PipedHasher<'a> {
    fn start(
        scope: &'a std::thread::Scope<'a, '_>,
        mut hasher: Hasher,
        slot: Pipeline<'a>,
    ) -> PipedHasher<'a> {
        let (full_tx, full_rx) = crossbeam_channel::bounded::<(Vec<u8>, usize)>(PIPELINE_DEPTH);
        let (free_tx, free_rx) = crossbeam_channel::bounded::<Vec<u8>>(PIPELINE_DEPTH + 1);
        for _ in 0..PIPELINE_DEPTH {
            let _ = free_tx.send(vec![0; BUF_SIZE]);
        }
        let thread = scope.spawn(move || {
            for (buf, n) in full_rx {
                hasher.update(&buf[..n]);
                let _ = free_tx.send(buf);
            }
            hasher
        });
        PipedHasher {
            current: vec![0; BUF_SIZE],
            full: Some(full_tx),
            free: free_rx,
            thread,
            _slot: slot,
        }
    }

    fn consume(&mut self, n: usize) {
        // A dead hashing thread shows at `finish`; until then the worker keeps reading.
        let next = self.free.recv().unwrap_or_else(|_| vec![0; BUF_SIZE]);
        let buf = std::mem::replace(&mut self.current, next);
        if let Some(full) = &self.full {
            let _ = full.send((buf, n));
        }
    }

    fn finish(mut self) -> Option<Hasher> {
        drop(self.full.take());
        self.thread.join().ok()
    }
}
