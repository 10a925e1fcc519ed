//! One attempt: send the request, follow its redirects, and hand the body to
//! [`body`], which streams it to disk while hashing and verifies it.
//!
//! An attempt knows nothing of the pool: it gets its own input ([`Input`], the job and its
//! place among its attempts), what the pool shares ([`Env`], with an emit callback for
//! events) and the worker's [`Scratch`], and returns a [`Success`] or a [`Failure`].
//! Redirects are followed here rather than by ureq so that every hop is recorded, checked
//! ([`redirect`]) and stripped of credentials when it leaves the host; errors are named by
//! [`classify`]. Whether a request is ranged or conditional, and what a 206, 304 or 416
//! answer means for the `.part` on disk, is decided in [`crate::output`]; this module
//! applies it.

mod body;
mod classify;
mod digest;
mod input;
pub(crate) mod redirect;
pub(crate) mod segment;
mod split;

use std::fs;
use std::io::{self, Read};
use std::time::{Instant, SystemTime};

use ureq::http::{self, Response};
use ureq::{Body, RequestExt};

use crate::config::Config;
use crate::error::Error;
use crate::event::Event;
use crate::job::{Destination, Job};
use crate::net::http_date::parse_retry_after;
use crate::net::proxy::ProxyChoice;
use crate::output::sidecar::{self, Prepared, RangeAnswer};
use crate::output::{nofollow, validators};

use body::{Arrived, receive};
use classify::{Limits, deadline_error, from_ureq, header, proxy_error, proxy_refusal};
use input::emit;
pub(crate) use input::{
    CANCELLED_BY_ID, Env, Failure, Input, JobCancels, Scratch, Shared, Success,
};
use redirect::{follow, host_of, is_credential};
pub(crate) use split::Split;

/// Makes one attempt at `task`'s job: sends the request (ranged or conditional where the
/// files on disk allow), follows redirects, and receives the body; a resumed body that
/// fails its check is fetched once more from zero within the attempt.
pub(crate) fn attempt(ctx: &Env, task: &Input, scratch: &mut Scratch) -> Result<Success, Failure> {
    let job = &task.job;
    let cfg = &ctx.config;
    let limits = Limits::of(cfg, job);
    let mut url = job.url.clone();
    let mut method = job.method.clone();
    let mut body = job.body.clone();
    // A job's own header replaces the pool's of the same name (one `Authorization`).
    let mut headers: Vec<(String, String)> = cfg
        .headers
        .iter()
        .filter(|(k, _)| !job.headers.iter().any(|(j, _)| j.eq_ignore_ascii_case(k)))
        .chain(job.headers.iter())
        .cloned()
        .collect();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        && let Some(basic) = crate::url::userinfo_basic(&url)
    {
        headers.push(("Authorization".to_string(), basic));
    }
    let mut redirects: Vec<String> = Vec::new();
    let out_path = match &job.dest {
        Destination::File(rel) => Some(cfg.output_dir.join(rel)),
        Destination::Memory => None,
    };
    if let Destination::File(rel) = &job.dest {
        ctx.output_lock.ensure().map_err(Failure::new)?;
        nofollow::check_dirs(&cfg.output_dir, rel, &mut scratch.checked).map_err(Failure::new)?;
    }
    if let Some(up) = ctx.precheck.up_to_date(&cfg.output_dir, job) {
        return Ok(Success {
            http_status: None,
            bytes: up.len,
            sha256: up.sha256,
            verified: up.verified,
            resumed_from: None,
            redirects,
            body: None,
            skipped: true,
            headers: Vec::new(),
            placed_at: up.placed,
            connections: 0,
        });
    }
    // A retry may continue the part its earlier attempt left, even in a fresh directory.
    let mut prep = if ctx.precheck.is_fresh() && task.attempt <= 1 {
        Prepared::default()
    } else {
        Prepared::for_job(&cfg.output_dir, cfg.state_dir.as_deref(), job)
    };
    // A resumed body that fails its check is fetched once more from zero in this attempt:
    // the head on disk may be of another version (a server that ignored `If-Range`).
    let mut started_over = false;
    loop {
        // Failing before the body leaves the part this attempt would have continued.
        let kept = prep.resume.as_ref().map(|r| r.offset);
        let fail = |error: Error, redirects: &Vec<String>| Failure {
            error,
            http_status: None,
            redirects: redirects.clone(),
            partial: kept,
            grew: false,
            headers: Box::default(),
        };
        if let Some(d) = task.deadline
            && Instant::now() >= d
        {
            return Err(fail(deadline_error(&limits), &redirects));
        }
        if ctx.job_cancels.contains(task.id) {
            let reason = CANCELLED_BY_ID.into();
            return Err(fail(Error::Cancelled { reason }, &redirects));
        }
        // A part that already holds the recorded total needs no request (many servers
        // answer its range with a 416 that does not say the length): hash, verify, finish.
        if let Some(r) = prep.resume.as_ref().filter(|r| r.is_complete()) {
            let (offset, head) = (
                r.offset,
                validators::validator_headers(&r.sidecar.validator),
            );
            let arrived = Arrived {
                status: None,
                head: &head,
                reader: &mut io::empty(),
                from: Some(offset),
            };
            let result = receive(ctx, task, scratch, &prep, arrived);
            match result {
                Err(f) if is_check_failure(&f.error) && !started_over => {
                    log::info!(
                        "{}: the complete partial file failed its check ({}); fetching it \
                         again from zero",
                        crate::redact::url(&url),
                        f.error
                    );
                    started_over = true;
                    prep.start_over(out_path.as_deref());
                    continue;
                }
                result => {
                    return result.map_err(|mut f| {
                        f.redirects = redirects;
                        f
                    });
                }
            }
        }
        // A split file whose segments are all in its part needs no request either.
        if let Some(seg) = prep.segments.take_if(|s| !s.done.contains('0')) {
            match segment::run(
                ctx,
                task,
                scratch,
                &url,
                &headers,
                segment::Start::Whole(seg),
            ) {
                segment::Outcome::Restart => {
                    prep.start_over(out_path.as_deref());
                    continue;
                }
                ended => return split_ended(ended, redirects),
            }
        }
        let response = send(
            ctx,
            &method,
            &url,
            [&headers[..], &prep.headers()],
            body.as_deref(),
            task.deadline,
            &limits,
        )
        .map_err(|e| fail(e, &redirects))?;
        let status = response.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308)
            && let Some(location) = header(&response, "location")
        {
            let next = follow(cfg, &url, &location, &job.url, &redirects).map_err(|e| Failure {
                http_status: Some(status),
                ..fail(e, &redirects)
            })?;
            if host_of(&next) != host_of(&url) {
                headers.retain(|(k, _)| !is_credential(k));
            }
            if status == 303 || (matches!(status, 301 | 302) && method == "POST") {
                method = "GET".to_string();
                body = None;
            }
            log::debug!(
                "{} → {status} {}",
                crate::redact::url(&url),
                crate::redact::url(&next)
            );
            emit(
                ctx,
                Event::Redirected {
                    id: task.id,
                    status,
                    to: next.clone(),
                },
            );
            drain(response);
            redirects.push(next.clone());
            url = next;
            continue;
        }
        let kept_headers = keep_headers(cfg, job, response.headers());
        if status == 304
            && let Some(stored) = &prep.stored
        {
            drain(response);
            if let Some(path) = &out_path
                && prep.meta_exists
            {
                sidecar::discard(path);
            }
            // The file may be where the last run moved it (its Content-Disposition name).
            let placed_at = stored.placed.clone();
            let at = match &placed_at {
                Some(placed) => Some(cfg.output_dir.join(placed)),
                None => out_path.clone(),
            };
            let bytes = at
                .as_ref()
                .and_then(|p| fs::metadata(p).ok())
                .map_or(0, |m| m.len());
            return Ok(Success {
                http_status: Some(304),
                bytes,
                sha256: None,
                verified: None,
                resumed_from: None,
                redirects,
                body: None,
                skipped: true,
                headers: kept_headers,
                placed_at,
                connections: 0,
            });
        }
        // A split file continued segment by segment, or a first answer worth splitting.
        let start = match prep.segments.take() {
            Some(seg) if segment::continues(&seg, status, response.headers()) => Some(Some(seg)),
            Some(_) if status != 200 => {
                log::info!(
                    "{}: {status} does not continue the split partial file; starting over",
                    crate::redact::url(&url)
                );
                drain(response);
                prep.drop_resume(out_path.as_deref());
                prep.meta_exists = false;
                continue;
            }
            _ if segment::splittable(ctx, task, status, response.headers()) => Some(None),
            _ => None,
        };
        if let Some(resumed) = start {
            let start = match resumed {
                Some(seg) => segment::Start::Resumed(response, seg),
                None => segment::Start::Fresh(response),
            };
            match segment::run(ctx, task, scratch, &url, &headers, start) {
                segment::Outcome::Restart if !started_over => {
                    started_over = true;
                    prep.start_over(out_path.as_deref());
                    continue;
                }
                segment::Outcome::Restart => {
                    return Err(Failure {
                        http_status: Some(status),
                        ..fail(
                            Error::Network {
                                message: "the file changed twice while it was downloaded".into(),
                                source: None,
                            },
                            &redirects,
                        )
                    });
                }
                ended => {
                    return split_ended(ended, redirects)
                        .map(|mut s| {
                            s.headers = kept_headers.clone();
                            s
                        })
                        .map_err(|mut f| {
                            f.http_status = f.http_status.or(Some(status));
                            f.headers = kept_headers.into();
                            f
                        });
                }
            }
        }
        // Where this body starts within the file, and whether it is already complete.
        let (from, complete) =
            match sidecar::judge(prep.resume.as_ref(), status, response.headers()) {
                RangeAnswer::Fresh => (None, false),
                RangeAnswer::Continue(n) => (Some(n), false),
                RangeAnswer::Complete(n) => (Some(n), true),
                RangeAnswer::Restart if prep.resume.is_some() => {
                    log::info!(
                        "{}: {status} does not continue the partial file; starting over",
                        crate::redact::url(&url)
                    );
                    drain(response);
                    prep.drop_resume(out_path.as_deref());
                    prep.meta_exists = false;
                    continue;
                }
                RangeAnswer::Restart => {
                    drain(response);
                    return Err(Failure {
                        http_status: Some(status),
                        headers: kept_headers.into(),
                        ..fail(
                            Error::Protocol {
                                message: format!("{status} answer to a request without Range"),
                            },
                            &redirects,
                        )
                    });
                }
            };
        if !(200..300).contains(&status) && !complete {
            let retry_after = header(&response, "retry-after")
                .and_then(|v| parse_retry_after(&v, SystemTime::now()));
            drain(response);
            return Err(Failure {
                http_status: Some(status),
                headers: kept_headers.into(),
                ..fail(
                    Error::Status {
                        code: status,
                        retry_after,
                    },
                    &redirects,
                )
            });
        }
        let (head, body) = response.into_parts();
        let mut reader: Box<dyn Read> = if complete {
            drain_body(body);
            Box::new(io::empty())
        } else {
            Box::new(body.into_reader())
        };
        let arrived = Arrived {
            status: Some(status),
            head: &head.headers,
            reader: &mut reader,
            from,
        };
        let result = receive(ctx, task, scratch, &prep, arrived);
        match result {
            Err(f) if from.is_some() && is_check_failure(&f.error) && !started_over => {
                log::info!(
                    "{}: the resumed file failed its check ({}); fetching it again from zero",
                    crate::redact::url(&url),
                    f.error
                );
                started_over = true;
                prep.start_over(out_path.as_deref());
                continue;
            }
            Ok(mut s) => {
                s.redirects = redirects;
                s.headers = kept_headers;
                return Ok(s);
            }
            Err(mut f) => {
                f.redirects = redirects;
                f.http_status = Some(status);
                f.headers = kept_headers.into();
                return Err(f);
            }
        }
    }
}

/// The response headers the pool and the job asked to keep, in the order received.
fn keep_headers(cfg: &Config, job: &Job, head: &http::HeaderMap) -> Vec<(String, String)> {
    if cfg.keep_headers.is_empty() && job.keep_headers.is_empty() {
        return Vec::new();
    }
    let wanted = |name: &str| {
        cfg.keep_headers.iter().any(|k| k == name)
            || job
                .keep_headers
                .iter()
                .any(|k| k.eq_ignore_ascii_case(name))
    };
    head.iter()
        .filter(|(name, _)| wanted(name.as_str()))
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect()
}

/// A split's end as the attempt's result, with the redirects that led to it.
fn split_ended(ended: segment::Outcome, redirects: Vec<String>) -> Result<Success, Failure> {
    match ended {
        segment::Outcome::Done(mut s) => {
            s.redirects = redirects;
            Ok(s)
        }
        segment::Outcome::Failed(mut f) => {
            f.redirects = redirects;
            Err(f)
        }
        segment::Outcome::Restart => Err(Failure {
            redirects,
            ..Failure::new(Error::Network {
                message: "the file changed while it was downloaded".into(),
                source: None,
            })
        }),
    }
}

/// A body that arrived but is not the file the job wants (size or digest).
fn is_check_failure(e: &Error) -> bool {
    matches!(e, Error::Checksum { .. } | Error::Digest { .. })
}

pub(super) fn send(
    ctx: &Env,
    method: &str,
    url: &str,
    headers: [&[(String, String)]; 2],
    body: Option<&[u8]>,
    deadline: Option<Instant>,
    limits: &Limits,
) -> Result<Response<Body>, Error> {
    // Parsed once: the request and the proxy choice both need it.
    let uri: http::Uri = url
        .parse()
        .map_err(|e| Error::config(format!("invalid URL {url}: {e}")))?;
    let mut builder = http::Request::builder().method(method).uri(uri.clone());
    for (k, v) in headers.into_iter().flatten() {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let bad = |e: http::Error| {
        Error::config(format!(
            "cannot build the request for {url}: {e}; check the method and headers"
        ))
    };
    // Chosen per hop: a redirect to another host or scheme may need another proxy or
    // none (NO_PROXY). The agent has no proxy of its own, so `None` here is direct.
    let proxy = ctx.config.proxy.choose(&uri);
    let result = match body {
        Some(bytes) => run(
            ctx,
            url,
            builder.body(bytes).map_err(bad)?,
            proxy,
            deadline,
            limits,
        ),
        None => run(
            ctx,
            url,
            builder.body(()).map_err(bad)?,
            proxy,
            deadline,
            limits,
        ),
    };
    let response = result.map_err(|e| match proxy {
        Some(p) => proxy_error(limits, p, e),
        None => from_ureq(limits, e),
    })?;
    if let Some(p) = proxy
        && let Some(error) = proxy_refusal(p, &response)
    {
        drain(response);
        return Err(error);
    }
    Ok(response)
}

/// Runs a request, sending it again at once when it met a stale pooled connection.
fn run<B: ureq::AsSendBody + Clone>(
    ctx: &Env,
    url: &str,
    request: http::Request<B>,
    proxy: Option<&ProxyChoice>,
    deadline: Option<Instant>,
    limits: &Limits,
) -> Result<Response<Body>, ureq::Error> {
    let mut stale = 0;
    loop {
        let budget = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        ctx.opened.begin();
        let request = request.clone().with_agent(ctx.agent);
        // A per-request config copies the agent's; the common case needs none (the agent
        // has no proxy, no global timeout and the pool's stall limit).
        let result = if proxy.is_none() && budget.is_none() && !limits.own_idle {
            request.run()
        } else {
            request
                .configure()
                .proxy(proxy.map(ProxyChoice::to_ureq))
                .timeout_global(budget)
                .timeout_per_read(Some(limits.idle))
                .timeout_per_write(Some(limits.idle))
                .run()
        };
        match result {
            // Each stale try drops a dead connection from the pool; the bound only guards
            // against a pool full of them.
            Err(e) if ctx.opened.is_stale(&e) && stale < MAX_STALE => {
                stale += 1;
                log::debug!(
                    "{}: stale pooled connection ({e}); sending again",
                    crate::redact::url(url)
                );
            }
            result => return result,
        }
    }
}

/// Stale pooled connections tried in a row before the failure counts as an attempt's.
const MAX_STALE: u32 = 4;

/// Reads what is left of a small body so the connection can be reused; a large one is
/// dropped with its connection.
fn drain(response: Response<Body>) {
    drain_body(response.into_body());
}

fn drain_body(body: Body) {
    let _ = body.into_with_config().limit(64 * 1024).read_to_vec();
}
