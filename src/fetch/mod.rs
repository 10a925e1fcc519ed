//! One attempt: request, follow redirects, stream the body to `PATH.part` while hashing,
//! verify, and rename to `PATH`.
//!
//! Redirects are followed here rather than by ureq so that every hop is recorded, checked
//! (scheme, downgrade, loops) and stripped of credentials when it leaves the host. A
//! body-read failure and a file-write failure are told apart at the call site: the first
//! is a network error, the second an [`Error::Io`] naming the file.
//!
//! Whether a request is ranged or conditional, and what a 206, 304 or 416 answer means for
//! the `.part` on disk, is decided in [`crate::resume`]; this module applies it.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use ureq::http::{self, Response};
use ureq::{Body, RequestExt};

use crate::config::Config;
use crate::error::{Error, TimeoutPhase};
use crate::event::Event;
use crate::job::Destination;
use crate::net::http_date::parse_retry_after;
use crate::nofollow;
use crate::pool::messages::{Note, Task};
use crate::pool::worker::Context;
use crate::proxy::{ProxyChoice, ProxyScheme};
use crate::resume::{self, Prepared, RangeAnswer, Sidecar};
use crate::unnamed;

/// What a successful attempt produced.
pub(crate) struct Success {
    pub(crate) http_status: Option<u16>,
    pub(crate) bytes: u64,
    pub(crate) sha256: Option<String>,
    pub(crate) resumed_from: Option<u64>,
    pub(crate) redirects: Vec<String>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) skipped: bool,
}

/// Why an attempt failed, and what it learned on the way.
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) http_status: Option<u16>,
    pub(crate) redirects: Vec<String>,
    /// Bytes left in `PATH.part` that a later attempt may continue from.
    pub(crate) partial: Option<u64>,
    /// Whether this attempt added bytes to the kept part: progress, which the retry
    /// policy rewards with patience.
    pub(crate) grew: bool,
}

impl Failure {
    fn new(error: Error) -> Self {
        Failure {
            error,
            http_status: None,
            redirects: Vec::new(),
            partial: None,
            grew: false,
        }
    }
}

/// Size of each worker's read buffer: the connection's input buffer (see
/// [`crate::net::agent::INPUT_BUFFER`]), the most one read hands over; larger would never be
/// filled, only counted in memory.
const BUF_SIZE: usize = crate::net::agent::INPUT_BUFFER;
/// Progress events per job: at most one per interval, and one per step of bytes.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; BUF_SIZE]);
}

pub(crate) fn attempt(ctx: &Context, task: &Task) -> Result<Success, Failure> {
    let job = &task.pending.job;
    let cfg = &ctx.config;
    let mut url = job.url.clone();
    let mut method = job.method.clone();
    let mut body = job.body.clone();
    let mut headers: Vec<(String, String)> = cfg
        .headers
        .iter()
        .chain(job.headers.iter())
        .cloned()
        .collect();
    let mut redirects: Vec<String> = Vec::new();
    let out_path = match &job.dest {
        Destination::File(rel) => Some(cfg.output_dir.join(rel)),
        Destination::Memory => None,
    };
    if let Destination::File(rel) = &job.dest {
        ctx.output_lock.ensure().map_err(Failure::new)?;
        nofollow::check_dirs(&cfg.output_dir, rel).map_err(Failure::new)?;
    }
    if let Some(up) = ctx.precheck.up_to_date(&cfg.output_dir, job) {
        return Ok(Success {
            http_status: None,
            bytes: up.len,
            sha256: job.sha256.clone(),
            resumed_from: None,
            redirects,
            body: None,
            skipped: true,
        });
    }
    // A retry may continue the part its earlier attempt left, even in a fresh directory.
    let mut prep = if ctx.precheck.is_fresh() && task.pending.attempts <= 1 {
        Prepared::default()
    } else {
        Prepared::for_job(&cfg.output_dir, job)
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
        };
        if let Some(d) = task.deadline
            && Instant::now() >= d
        {
            return Err(fail(deadline_error(ctx), &redirects));
        }
        // A part that already holds the recorded total needs no request (many servers
        // answer its range with a 416 that does not say the length): hash, verify, finish.
        if let Some(r) = prep.resume.as_ref().filter(|r| r.is_complete()) {
            let (offset, head) = (r.offset, resume::validator_headers(&r.sidecar.validator));
            let result = receive(
                ctx,
                task,
                None,
                &head,
                &mut io::empty(),
                Some(offset),
                &prep,
            );
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
        let response = send(
            ctx,
            &method,
            &url,
            [&headers[..], &prep.headers()],
            body.as_deref(),
            task.deadline,
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
                    id: task.pending.id,
                    status,
                    to: next.clone(),
                },
            );
            drain(response);
            redirects.push(next.clone());
            url = next;
            continue;
        }
        if status == 304 && prep.stored.is_some() {
            drain(response);
            if let Some(path) = &out_path
                && prep.meta_exists
            {
                resume::discard(path);
            }
            let bytes = out_path
                .as_ref()
                .and_then(|p| fs::metadata(p).ok())
                .map_or(0, |m| m.len());
            return Ok(Success {
                http_status: Some(304),
                bytes,
                sha256: None,
                resumed_from: None,
                redirects,
                body: None,
                skipped: true,
            });
        }
        // Where this body starts within the file, and whether it is already complete.
        let (from, complete) = match resume::judge(prep.resume.as_ref(), status, response.headers())
        {
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
        let result = receive(
            ctx,
            task,
            Some(status),
            &head.headers,
            &mut reader,
            from,
            &prep,
        );
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
            result => {
                return result
                    .map(|mut s| {
                        s.redirects = redirects.clone();
                        s
                    })
                    .map_err(|mut f| {
                        f.redirects = redirects;
                        f.http_status = Some(status);
                        f
                    });
            }
        }
    }
}

/// A body that arrived but is not the file the job wants (size or sha256).
fn is_check_failure(e: &Error) -> bool {
    matches!(e, Error::Checksum { .. })
}

fn is_credential(name: &str) -> bool {
    name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("cookie")
}

fn send(
    ctx: &Context,
    method: &str,
    url: &str,
    headers: [&[(String, String)]; 2],
    body: Option<&[u8]>,
    deadline: Option<Instant>,
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
        Some(bytes) => run(ctx, url, builder.body(bytes).map_err(bad)?, proxy, deadline),
        None => run(ctx, url, builder.body(()).map_err(bad)?, proxy, deadline),
    };
    let response = result.map_err(|e| match proxy {
        Some(p) => proxy_error(ctx, p, e),
        None => from_ureq(ctx, e),
    })?;
    if let Some(p) = proxy
        && let Some(error) = proxy_refusal(p, &response)
    {
        drain(response);
        return Err(error);
    }
    Ok(response)
}

/// A failure on the way through proxy `p`. Reaching the proxy and its answer to
/// `CONNECT` are the proxy's part (kind `proxy`, never retried as a direct attempt);
/// TLS and timeouts keep their own kinds. The message names the proxy redacted.
fn proxy_error(ctx: &Context, p: &ProxyChoice, e: ureq::Error) -> Error {
    use ureq::Error as U;
    let message = match &e {
        U::ConnectProxyFailed(_) => format!("{}: {e}", p.redacted()),
        U::InvalidProxyUrl => format!("{}: invalid proxy URL", p.redacted()),
        U::ConnectionFailed => format!("{}: could not connect to the proxy", p.redacted()),
        U::HostNotFound => format!("{}: proxy host not found (DNS)", p.redacted()),
        U::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
            ) =>
        {
            format!("{}: could not connect to the proxy: {io}", p.redacted())
        }
        // ureq's SOCKS connector reports handshake failures as plain I/O errors.
        U::Io(io) if matches!(p.scheme(), ProxyScheme::Socks5 | ProxyScheme::Socks5h) => {
            format!("{}: SOCKS: {io}", p.redacted())
        }
        _ => return from_ureq(ctx, e),
    };
    Error::Proxy { message }
}

/// An error status that the proxy, not the origin, produced for an absolute-form
/// request: `407` always, and `502`/`503`/`504`/`403` when the proxy marks it as its
/// own (Squid's `X-Squid-Error`, tinyproxy's `Server: tinyproxy`). Other statuses
/// pass as the origin's (kind `http`): a proxy that relays an origin's 502 adds `Via`
/// too, so `Via` alone proves nothing.
fn proxy_refusal(p: &ProxyChoice, response: &Response<Body>) -> Option<Error> {
    let status = response.status().as_u16();
    let own = header(response, "x-squid-error")
        .map(|e| format!(" ({e})"))
        .or_else(|| {
            header(response, "server")
                .filter(|s| s.to_ascii_lowercase().starts_with("tinyproxy"))
                .map(|_| String::new())
        });
    let message = match (status, own) {
        (407, _) => format!(
            "{}: 407 proxy authentication required; put user:password in the proxy URL",
            p.redacted()
        ),
        (400..=599, Some(detail)) => format!("{}: answered {status}{detail}", p.redacted()),
        _ => return None,
    };
    Some(Error::Proxy { message })
}

/// Runs a request, sending it again at once when it met a stale pooled connection.
fn run<B: ureq::AsSendBody + Clone>(
    ctx: &Context,
    url: &str,
    request: http::Request<B>,
    proxy: Option<&ProxyChoice>,
    deadline: Option<Instant>,
) -> Result<Response<Body>, ureq::Error> {
    let mut stale = 0;
    loop {
        let budget = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        ctx.opened.begin();
        let request = request.clone().with_agent(&ctx.agent);
        // A per-request config copies the agent's; the common case needs none (the agent
        // has no proxy and no global timeout).
        let result = if proxy.is_none() && budget.is_none() {
            request.run()
        } else {
            request
                .configure()
                .proxy(proxy.map(ProxyChoice::to_ureq))
                .timeout_global(budget)
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

/// Maps ureq's errors onto the taxonomy; see [`classify`].
pub(crate) fn from_ureq(ctx: &Context, e: ureq::Error) -> Error {
    classify(&ctx.config, e)
}

fn from_io(ctx: &Context, io: io::Error) -> Error {
    classify_io(&ctx.config, io)
}

/// Maps ureq's errors onto the taxonomy. `ureq::Error::Io` before a response is a
/// connection failure only when the connection was refused or unreachable; anything else
/// broke an established connection. A timeout's phase comes from the limit that fired:
/// resolve and connect are `connect`, the request's whole budget is `deadline`, and a
/// read or write that waited too long is `stall`.
fn classify(cfg: &Config, e: ureq::Error) -> Error {
    use ureq::Error as U;
    use ureq::Timeout as T;
    match e {
        U::Timeout(t) => match t {
            T::Resolve | T::Connect => Error::Timeout {
                phase: TimeoutPhase::Connect,
                limit: Some(cfg.connect_timeout),
            },
            T::Global | T::PerCall => Error::Timeout {
                phase: TimeoutPhase::Deadline,
                limit: cfg.max_time,
            },
            _ => Error::Timeout {
                phase: TimeoutPhase::Stall,
                limit: Some(cfg.idle_timeout),
            },
        },
        U::HostNotFound => Error::Connect {
            message: "host not found (DNS)".into(),
            source: None,
        },
        U::ConnectionFailed => Error::Connect {
            message: "could not connect to any address".into(),
            source: None,
        },
        U::Io(io) => classify_io(cfg, io),
        U::Tls(reason) => Error::Tls {
            reason: reason.to_string(),
        },
        U::Rustls(e) => Error::Tls {
            reason: tls_reason(&e),
        },
        U::Pem(e) => Error::Tls {
            reason: format!("bad PEM: {e}"),
        },
        U::TlsRequired => Error::Tls {
            reason: "the connection for an https URL is not TLS".into(),
        },
        U::Protocol(e) => Error::Protocol {
            message: e.to_string(),
        },
        U::LargeResponseHeader(size, limit) => Error::Protocol {
            message: format!("response header larger than {limit} bytes (at least {size})"),
        },
        U::BadUri(u) => Error::config(format!("invalid URL: {u}")),
        U::InvalidProxyUrl => Error::Proxy {
            message: "invalid proxy URL".into(),
        },
        U::ConnectProxyFailed(m) => Error::Proxy {
            message: format!("CONNECT failed: {m}"),
        },
        U::TooManyRedirects | U::RedirectFailed => Error::Redirect {
            message: e.to_string(),
        },
        U::Http(e) => Error::config(format!("cannot build the request: {e}")),
        other => Error::Network {
            message: other.to_string(),
            source: None,
        },
    }
}

/// Maps an I/O error from the connection (a body read, ureq's transport); ureq errors
/// carried inside an `io::Error` by the body reader are unwrapped first.
fn classify_io(cfg: &Config, io: io::Error) -> Error {
    use io::ErrorKind as K;
    if io.get_ref().is_some_and(|inner| inner.is::<ureq::Error>()) {
        let inner = io
            .into_inner()
            .expect("checked")
            .downcast::<ureq::Error>()
            .expect("checked");
        return classify(cfg, *inner);
    }
    if let Some(tls) = io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return Error::Tls {
            reason: tls_reason(tls),
        };
    }
    match io.kind() {
        K::TimedOut | K::WouldBlock => Error::Timeout {
            phase: TimeoutPhase::Stall,
            limit: Some(cfg.idle_timeout),
        },
        K::ConnectionRefused | K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => {
            Error::Connect {
                message: io.to_string(),
                source: Some(std::sync::Arc::new(io)),
            }
        }
        _ => Error::Network {
            message: io.to_string(),
            source: Some(std::sync::Arc::new(io)),
        },
    }
}

/// Names the certificate problems users meet, in words, with rustls' own text after.
fn tls_reason(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let plain = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => Some("unknown issuer; trust its CA with --cacert FILE"),
            C::Expired | C::ExpiredContext { .. } => Some("certificate expired"),
            C::NotValidYet | C::NotValidYetContext { .. } => Some("certificate not valid yet"),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                Some("name mismatch: the certificate is not valid for this host")
            }
            C::Revoked => Some("certificate revoked"),
            C::BadSignature => Some("bad certificate signature"),
            _ => None,
        },
        _ => None,
    };
    match plain {
        Some(p) => format!("{p} ({e})"),
        None => e.to_string(),
    }
}

fn deadline_error(ctx: &Context) -> Error {
    Error::Timeout {
        phase: TimeoutPhase::Deadline,
        limit: ctx.config.max_time,
    }
}

fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Reads what is left of a small body so the connection can be reused; a large one is
/// dropped with its connection.
fn drain(response: Response<Body>) {
    drain_body(response.into_body());
}

fn drain_body(body: Body) {
    let _ = body.into_with_config().limit(64 * 1024).read_to_vec();
}

/// Checks a redirect and returns the absolute URL it points to.
pub(crate) fn follow(
    cfg: &crate::config::Config,
    from: &str,
    location: &str,
    start: &str,
    seen: &[String],
) -> Result<String, Error> {
    if seen.len() as u32 >= cfg.max_redirects {
        return Err(Error::Redirect {
            message: format!(
                "more than {} redirects; raise --max-redirects if this is expected",
                cfg.max_redirects
            ),
        });
    }
    let next = resolve(from, location);
    let scheme = scheme_of(&next).unwrap_or("").to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(Error::Redirect {
            message: format!(
                "to '{}': only http and https redirects are followed",
                crate::redact::clip(&crate::redact::url(&next), crate::redact::SHOWN_CHARS)
            ),
        });
    }
    if scheme == "http" && from.to_ascii_lowercase().starts_with("https:") && !cfg.allow_downgrade {
        return Err(Error::Redirect {
            message: format!(
                "from https to plain http ({next}); pass --allow-downgrade to follow it"
            ),
        });
    }
    crate::job::check_url(&next).map_err(|e| Error::Redirect {
        message: format!("to an invalid URL: {e}"),
    })?;
    if next == from || next == start || seen.contains(&next) {
        return Err(Error::Redirect {
            message: format!("loop: {next} was already visited"),
        });
    }
    Ok(next)
}

/// `scheme://authority` of an absolute URL, lowercase.
fn host_of(url: &str) -> String {
    crate::url::host_key(url)
}

/// The scheme of an absolute URI (RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" /
/// "." )` before the first `:`), or `None` for a relative reference.
pub(crate) fn scheme_of(reference: &str) -> Option<&str> {
    let (scheme, _) = reference.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(scheme)
}

/// Resolves a `Location` value against the URL it came from (RFC 3986 §5.2, without
/// the rarely used corners). A reference with a scheme is absolute whatever follows it
/// (`data:…`, `mailto:…`, `file:/etc/passwd`): it is returned as it is, never read as a
/// path on the same host.
pub(crate) fn resolve(base: &str, reference: &str) -> String {
    let reference = reference.trim();
    if scheme_of(reference).is_some() {
        return reference.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    if let Some(net) = reference.strip_prefix("//") {
        return format!("{scheme}://{net}");
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let base_path_full = &rest[authority_end..];
    let base_path = base_path_full.split(['?', '#']).next().unwrap_or("");
    let (ref_path, ref_tail) = match reference.find(['?', '#']) {
        Some(i) => (&reference[..i], &reference[i..]),
        None => (reference, ""),
    };
    let merged = if ref_path.starts_with('/') {
        ref_path.to_string()
    } else if ref_path.is_empty() {
        if ref_tail.starts_with('#') {
            let q = base_path_full.split('#').next().unwrap_or("");
            return format!("{scheme}://{authority}{q}{ref_tail}");
        }
        base_path.to_string()
    } else {
        let dir = match base_path.rfind('/') {
            Some(i) => &base_path[..=i],
            None => "/",
        };
        format!("{dir}{ref_path}")
    };
    format!(
        "{scheme}://{authority}{}{ref_tail}",
        remove_dot_segments(&merged)
    )
}

fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i == segments.len() - 1;
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

fn emit(ctx: &Context, event: Event) {
    let _ = ctx.events.send(Note::Event(event));
}

/// Streams the body to its destination, hashing as it goes, and verifies it. `from` is the
/// offset a ranged answer continues at; the bytes already in `PATH.part` are hashed first so
/// that the sha256 covers the whole file. `status` is `None` for a part finished without a
/// request. A body is cut off as soon as it passes the job's listed size or, for a memory
/// job, the memory limit.
fn receive(
    ctx: &Context,
    task: &Task,
    status: Option<u16>,
    head: &http::HeaderMap,
    reader: &mut dyn Read,
    from: Option<u64>,
    prep: &Prepared,
) -> Result<Success, Failure> {
    let job = &task.pending.job;
    let cfg = &ctx.config;
    let length = head
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let recorded = prep.resume.as_ref().and_then(|r| r.sidecar.total);
    let announced = match from {
        None => length,
        // The range's end, which `judge` checked against every total known.
        Some(n) if status == Some(206) => resume::range_end(head)
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
            resume::discard(&cfg.output_dir.join(rel));
        }
        return Err(Failure::new(Error::Checksum {
            expected: format!("{expected} bytes"),
            actual: format!("{got} bytes announced by the server"),
        }));
    }
    let mut first_bytes = Sha256::new();
    let mut sink = match &job.dest {
        Destination::File(rel) => {
            let sidecar = match (from, resume::range_validator(head)) {
                (None, Some(validator)) => Some(Sidecar {
                    url: crate::url::resource_key(&job.url),
                    validator,
                    total: announced,
                }),
                _ => None,
            };
            Sink::file(
                &cfg.output_dir.join(rel),
                offset,
                &mut first_bytes,
                sidecar,
                prep.meta_exists,
                announced,
                ctx.precheck.is_fresh(),
            )
            .map_err(Failure::new)?
        }
        Destination::Memory => {
            if let Some(n) = announced.filter(|n| *n > cfg.memory_limit) {
                return Err(Failure::new(memory_limit_error(
                    cfg.memory_limit,
                    format!("{n} bytes announced by the server (nothing was read)"),
                )));
            }
            Sink::Memory(Vec::with_capacity(
                announced.unwrap_or(0).min(cfg.memory_limit) as usize,
            ))
        }
    };
    let remaining = announced.map(|total| total.saturating_sub(offset));
    let mut hasher = match remaining
        .filter(|n| *n >= PIPELINE_MIN)
        .and_then(|_| Pipeline::claim())
    {
        Some(slot) => BodyHasher::Piped(PipedHasher::start(first_bytes, slot)),
        None => BodyHasher::Inline(first_bytes),
    };
    let mut bytes: u64 = offset;
    // The current minimum-rate window: when it began and the byte count then.
    let mut window = (Instant::now(), bytes);
    let mut last_progress = Instant::now();
    let mut last_progress_bytes = bytes;
    let result: Result<(), Error> = BUFFER.with_borrow_mut(|local| {
        loop {
            if ctx.cancelled.load(Ordering::Relaxed) {
                return Err(Error::Cancelled {
                    reason: "interrupted".into(),
                });
            }
            let chunk_buf = hasher.buffer(local);
            let want = ctx.read_size(chunk_buf.len());
            let n = match reader.read(&mut chunk_buf[..want]) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    ctx.throttle(n);
                    n
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(from_io(ctx, e)),
            };
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
                        id: task.pending.id,
                        bytes,
                        total: announced,
                    },
                );
            }
        }
    });
    if let Err(error) = result {
        let keep = match &error {
            Error::Io { .. } | Error::Checksum { .. } | Error::Config { .. } => false,
            _ => bytes > 0,
        };
        let partial = sink.abandon(keep).then_some(bytes);
        return Err(Failure {
            partial,
            grew: partial.is_some() && bytes > offset,
            ..Failure::new(error)
        });
    }
    let digest = match hasher.finish() {
        Some(h) => hex(&h.finalize()),
        None => {
            sink.abandon(false);
            return Err(Failure::new(Error::Io {
                path: PathBuf::from("(sha256 thread)"),
                source: std::sync::Arc::new(io::Error::other("the hashing thread stopped")),
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
    if let Some(expected) = &job.sha256
        && *expected != digest
    {
        sink.abandon(false);
        return Err(Failure::new(Error::Checksum {
            expected: expected.clone(),
            actual: digest,
        }));
    }
    let body = sink.commit().map_err(Failure::new)?;
    // A job listed with a sha256 is judged by its hash on the next run, never by a
    // validator: storing one would cost a file per job for nothing.
    if let Destination::File(rel) = &job.dest
        && job.sha256.is_none()
    {
        resume::remember(&cfg.output_dir, rel, &job.url, head);
    }
    Ok(Success {
        http_status: status,
        bytes,
        sha256: Some(digest),
        resumed_from: from,
        redirects: Vec::new(),
        body,
        skipped: false,
    })
}

/// Ends the minimum-rate `window` (start, bytes then) once it is `length` old: an error
/// when fewer than `min` bytes per second arrived in it, else a new window from now.
fn slow_check(
    window: &mut (Instant, u64),
    bytes: u64,
    min: u64,
    length: Duration,
) -> Result<(), Error> {
    let elapsed = window.0.elapsed();
    if elapsed < length {
        return Ok(());
    }
    if ((bytes - window.1) as f64) < min as f64 * elapsed.as_secs_f64() {
        return Err(Error::Timeout {
            phase: TimeoutPhase::MinRate,
            limit: Some(length),
        });
    }
    *window = (Instant::now(), bytes);
    Ok(())
}

/// Bodies at least this long are hashed on a thread of their own while the worker reads
/// and writes: one stream then runs at the speed of the slower of the two, not their sum.
const PIPELINE_MIN: u64 = 4 << 20;
/// Chunks in flight between a worker and its hashing thread.
const PIPELINE_DEPTH: usize = 4;

/// Hashing threads running now. A hashing thread only helps while a core is idle: when
/// every core is busy (many workers, large files) hashing inline costs the same CPU
/// without the copies and buffers, so at most one per core runs at a time.
static PIPELINES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One of the [`PIPELINES`] slots, given back on drop.
struct Pipeline;

impl Pipeline {
    fn claim() -> Option<Pipeline> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PIPELINES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cores).then_some(n + 1)
            })
            .ok()
            .map(|_| Pipeline)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        PIPELINES.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The body's sha256, computed inline or on a helper thread.
enum BodyHasher {
    Inline(Sha256),
    Piped(PipedHasher),
}

impl BodyHasher {
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
    fn finish(self) -> Option<Sha256> {
        match self {
            BodyHasher::Inline(h) => Some(h),
            BodyHasher::Piped(p) => p.finish(),
        }
    }
}

/// A hashing thread that takes whole read buffers from the worker and gives them back
/// once hashed: a large body costs no copy and no allocation after the first few chunks.
struct PipedHasher {
    /// The buffer the worker reads into now.
    current: Vec<u8>,
    full: Option<crossbeam_channel::Sender<(Vec<u8>, usize)>>,
    free: crossbeam_channel::Receiver<Vec<u8>>,
    thread: std::thread::JoinHandle<Sha256>,
    _slot: Pipeline,
}

impl PipedHasher {
    fn start(mut hasher: Sha256, slot: Pipeline) -> PipedHasher {
        let (full_tx, full_rx) = crossbeam_channel::bounded::<(Vec<u8>, usize)>(PIPELINE_DEPTH);
        let (free_tx, free_rx) = crossbeam_channel::bounded::<Vec<u8>>(PIPELINE_DEPTH + 1);
        for _ in 0..PIPELINE_DEPTH {
            let _ = free_tx.send(vec![0; BUF_SIZE]);
        }
        let thread = std::thread::spawn(move || {
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

    fn finish(mut self) -> Option<Sha256> {
        drop(self.full.take());
        self.thread.join().ok()
    }
}

/// Where body bytes go: a `.part` file renamed on commit (or an unnamed file linked into
/// place, see [`crate::unnamed`]), or a bounded buffer.
enum Sink {
    File {
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

impl Sink {
    /// Opens `PATH.part`: truncated for a fresh body; for a ranged one, cut to `offset`
    /// bytes which go through `hasher` first. A fresh body's sidecar is written before the
    /// first byte when the body is large (see [`resume::SIDECAR_THRESHOLD`]); a stale one
    /// is removed so that it can never describe these bytes. A small fresh body (one that
    /// gets no early sidecar, judged by its `announced` length) goes to an unnamed file
    /// where the system allows; `fresh` says the output directory was empty, so no stale
    /// `.part` can be left behind by that.
    fn file(
        path: &Path,
        offset: u64,
        hasher: &mut Sha256,
        sidecar: Option<Sidecar>,
        meta_exists: bool,
        announced: Option<u64>,
        fresh: bool,
    ) -> Result<Sink, Error> {
        if let Some(dir) = path.parent() {
            ensure_dir(dir)?;
        }
        let part = part_path(path);
        let io_err = |e| Error::io(&part, e);
        let small = !resume::wants_early_sidecar(announced);
        let mut sidecar_written = offset > 0;
        let mut named = true;
        let file = if offset > 0 {
            let mut file = nofollow::options()
                .read(true)
                .write(true)
                .open(&part)
                .map_err(io_err)?;
            let copied =
                io::copy(&mut (&mut file).take(offset), &mut HashWriter(hasher)).map_err(io_err)?;
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
                Some(dir) if small => unnamed::create(dir),
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
                    let _ = fs::remove_file(resume::meta_path(path));
                }
                _ => {}
            }
            file
        };
        Ok(Sink::File {
            file,
            part,
            named,
            path: path.to_path_buf(),
            sidecar,
            sidecar_written,
        })
    }

    fn write(&mut self, chunk: &[u8], limit: u64) -> Result<(), Error> {
        match self {
            Sink::File { file, part, .. } => {
                file.write_all(chunk).map_err(|e| Error::io(&*part, e))
            }
            Sink::Memory(v) => {
                if v.len() as u64 + chunk.len() as u64 > limit {
                    return Err(memory_limit_error(
                        limit,
                        format!("more than {limit} bytes (the rest was not read)"),
                    ));
                }
                v.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    /// Gives up on the body. A `.part` worth resuming is kept with its sidecar (written now
    /// if the body was small); one without a validator, or not worth keeping, is removed.
    /// Returns whether the part was kept.
    fn abandon(self, keep: bool) -> bool {
        let Sink::File {
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
            && (named || unnamed::link(&file, &part).is_ok())
            && (sidecar_written || sidecar.is_some_and(|s| s.write(&path).is_ok()));
        if !kept {
            resume::discard(&path);
        }
        kept
    }

    /// Moves a complete, verified file into place, or hands back the buffer.
    fn commit(self) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Sink::File {
                file,
                part,
                named,
                path,
                sidecar_written,
                ..
            } => {
                if !named {
                    match unnamed::link(&file, &path) {
                        Ok(()) => return Ok(None),
                        // A file already at PATH (an outdated one) is replaced in one
                        // step, as a named part would: give the body its part name first.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            let _ = fs::remove_file(&part);
                            unnamed::link(&file, &part).map_err(|e| Error::io(&part, e))?;
                        }
                        // Linking cannot work here: copy the body out under its part name.
                        Err(_) => copy_out(&file, &part)?,
                    }
                }
                drop(file);
                if let Err(e) = fs::rename(&part, &path) {
                    // Verified but unplaceable (a directory in the way, say): nothing is
                    // left beside PATH; the error names it.
                    resume::discard(&path);
                    return Err(Error::io(&path, e));
                }
                if sidecar_written {
                    let _ = fs::remove_file(resume::meta_path(&path));
                }
                Ok(None)
            }
            Sink::Memory(v) => Ok(Some(v)),
        }
    }
}

/// A memory job's body is larger than the memory limit: kind `checksum` (the body's size
/// is not what the job can take), with what to do in the message.
fn memory_limit_error(limit: u64, actual: String) -> Error {
    Error::Checksum {
        expected: format!(
            "at most {limit} bytes (the memory limit; write the body to a file instead)"
        ),
        actual,
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

/// Feeds bytes copied from a file into a hasher.
struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// Directories this worker created or found lately, newest last: most jobs of a list
    /// share a few folders, and `create_dir_all` costs two syscalls even when the folder
    /// exists. A few suffice; a set of every folder seen would grow with the list.
    static KNOWN_DIRS: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
}

/// Creates `dir` and its parents unless this worker saw it lately. A directory removed
/// behind our back shows up as a failed create of the `.part`, which is an `io` error
/// naming it, as it should be.
fn ensure_dir(dir: &Path) -> Result<(), Error> {
    const REMEMBERED: usize = 16;
    if KNOWN_DIRS.with_borrow(|known| known.iter().rev().any(|d| d == dir)) {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    KNOWN_DIRS.with_borrow_mut(|known| {
        if known.len() >= REMEMBERED {
            known.remove(0);
        }
        known.push(dir.to_path_buf());
    });
    Ok(())
}

/// `PATH.part`: where a body stays until it is complete and verified.
pub(crate) fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Lowercase hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_locations_resolve_like_rfc3986() {
        let base = "http://a/b/c/d;p?q";
        for (r, want) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../g", "http://a/g"),
            ("https://other:8443/x", "https://other:8443/x"),
            ("g:h", "g:h"),
            ("data:text/plain,hi", "data:text/plain,hi"),
            ("file:/etc/passwd", "file:/etc/passwd"),
            ("./file:/etc/passwd", "http://a/b/c/file:/etc/passwd"),
            ("1a:b", "http://a/b/c/1a:b"),
        ] {
            assert_eq!(resolve(base, r), want, "resolving {r}");
        }
    }

    #[test]
    fn schemes_follow_rfc3986_syntax() {
        assert_eq!(scheme_of("javascript:alert(1)"), Some("javascript"));
        assert_eq!(scheme_of("view-source+x.y:foo"), Some("view-source+x.y"));
        assert_eq!(scheme_of("HTTP://h/"), Some("HTTP"));
        assert_eq!(scheme_of("/a:b"), None);
        assert_eq!(scheme_of("1a:b"), None);
        assert_eq!(scheme_of(":x"), None);
        assert_eq!(scheme_of("a b:c"), None);
        assert_eq!(scheme_of("no-colon"), None);
    }

    #[test]
    fn timeouts_are_named_by_the_limit_that_fired() {
        let cfg = Config {
            max_time: Some(Duration::from_secs(60)),
            ..Config::default()
        };
        let phase = |t| classify(&cfg, ureq::Error::Timeout(t)).phase();
        assert_eq!(phase(ureq::Timeout::Connect), Some(TimeoutPhase::Connect));
        assert_eq!(phase(ureq::Timeout::Resolve), Some(TimeoutPhase::Connect));
        assert_eq!(phase(ureq::Timeout::Global), Some(TimeoutPhase::Deadline));
        assert_eq!(phase(ureq::Timeout::PerRead), Some(TimeoutPhase::Stall));
        assert_eq!(phase(ureq::Timeout::PerWrite), Some(TimeoutPhase::Stall));
        assert_eq!(phase(ureq::Timeout::RecvBody), Some(TimeoutPhase::Stall));
        let connect = classify(&cfg, ureq::Error::Timeout(ureq::Timeout::Connect));
        assert_eq!(
            connect.to_string(),
            "timeout (connect): connecting took too long (limit 10.0 s)"
        );
        assert!(connect.is_transient());
    }

    #[test]
    fn connection_errors_are_told_apart() {
        use crate::error::ErrorKind as K;
        let cfg = Config::default();
        let kind = |e| classify(&cfg, e).kind();
        let io = |k: io::ErrorKind| ureq::Error::Io(k.into());
        assert_eq!(kind(io(io::ErrorKind::ConnectionRefused)), K::Connect);
        assert_eq!(kind(ureq::Error::ConnectionFailed), K::Connect);
        assert_eq!(kind(ureq::Error::HostNotFound), K::Connect);
        assert_eq!(kind(io(io::ErrorKind::ConnectionReset)), K::Network);
        assert_eq!(kind(io(io::ErrorKind::UnexpectedEof)), K::Network);
        assert_eq!(kind(io(io::ErrorKind::TimedOut)), K::Timeout);
        assert_eq!(
            kind(ureq::Error::ConnectProxyFailed("403".into())),
            K::Proxy
        );
        // A body reader hands ureq's errors back wrapped in an io::Error.
        let wrapped = ureq::Error::Timeout(ureq::Timeout::PerRead).into_io();
        assert_eq!(
            classify_io(&cfg, wrapped).phase(),
            Some(TimeoutPhase::Stall)
        );
    }

    #[test]
    fn part_path_appends() {
        assert_eq!(
            part_path(Path::new("a/b.bin")),
            PathBuf::from("a/b.bin.part")
        );
    }
}
