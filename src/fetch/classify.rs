//! What went wrong, named: ureq, io and rustls errors become the library's [`Error`]
//! kinds (connect, network, timeout by phase, TLS, proxy), and a proxy's refusal is told
//! apart from the origin's answer.

use std::io;
use std::time::{Duration, Instant};

use ureq::Body;
use ureq::http::Response;

use crate::config::Config;
use crate::error::TlsReason;
use crate::error::{Error, TimeoutPhase};
use crate::job::Job;
use crate::net::proxy::{ProxyChoice, ProxyScheme};

/// The time limits one attempt runs under, as its timeouts report them: the pool's, or
/// the job's own where it has them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) connect: Duration,
    pub(crate) idle: Duration,
    pub(crate) max_time: Option<Duration>,
    /// Whether `idle` is the job's own, which the request must then be given: the
    /// agent's connections carry the pool's.
    pub(crate) own_idle: bool,
}

impl Limits {
    pub(crate) fn of(cfg: &Config, job: &Job) -> Limits {
        Limits {
            connect: cfg.connect_timeout,
            idle: job.idle_timeout.unwrap_or(cfg.idle_timeout),
            max_time: job.max_time.or(cfg.max_time),
            own_idle: job.idle_timeout.is_some(),
        }
    }
}

/// A failure on the way through proxy `p`. Reaching the proxy and its answer to
/// `CONNECT` are the proxy's part (kind `proxy`, never retried as a direct attempt);
/// TLS and timeouts keep their own kinds. The message names the proxy redacted.
pub(super) fn proxy_error(limits: &Limits, p: &ProxyChoice, e: ureq::Error) -> Error {
    use ureq::Error as U;
    let message = match &e {
        U::ConnectProxyFailed(m) => {
            return Error::Proxy {
                message: format!("{}: {e}", p.redacted()),
                refused_connect: connect_refused(m),
            };
        }
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
        _ => return from_ureq(limits, e),
    };
    Error::proxy(message)
}

/// Whether ureq's `CONNECT` failure is the proxy's answer with a status (ureq words it
/// "proxy server responded 403/…"), as opposed to not reaching the proxy at all.
fn connect_refused(ureq_message: &str) -> bool {
    ureq_message.contains("proxy server responded")
}

/// An error status that the proxy, not the origin, produced for an absolute-form
/// request: `407` always, and `502`/`503`/`504`/`403` when the proxy marks it as its
/// own (Squid's `X-Squid-Error`, tinyproxy's `Server: tinyproxy`). Other statuses
/// pass as the origin's (kind `http`): a proxy that relays an origin's 502 adds `Via`
/// too, so `Via` alone proves nothing.
pub(super) fn proxy_refusal(p: &ProxyChoice, response: &Response<Body>) -> Option<Error> {
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
    Some(Error::proxy(message))
}

/// Maps ureq's errors onto the taxonomy; see [`classify`].
pub(crate) fn from_ureq(limits: &Limits, e: ureq::Error) -> Error {
    classify(limits, e)
}

pub(super) fn from_io(limits: &Limits, io: io::Error) -> Error {
    classify_io(limits, io)
}

/// Maps ureq's errors onto the taxonomy. `ureq::Error::Io` before a response is a
/// connection failure only when the connection was refused or unreachable; anything else
/// broke an established connection. A timeout's phase comes from the limit that fired:
/// resolve and connect are `connect`, the request's whole budget is `deadline`, and a
/// read or write that waited too long is `stall`.
fn classify(cfg: &Limits, e: ureq::Error) -> Error {
    use ureq::Error as U;
    use ureq::Timeout as T;
    match e {
        U::Timeout(t) => match t {
            T::Resolve | T::Connect => Error::Timeout {
                phase: TimeoutPhase::Connect,
                limit: Some(cfg.connect),
            },
            T::Global | T::PerCall => Error::Timeout {
                phase: TimeoutPhase::Deadline,
                limit: cfg.max_time,
            },
            _ => Error::Timeout {
                phase: TimeoutPhase::Stall,
                limit: Some(cfg.idle),
            },
        },
        U::HostNotFound => Error::HostNotFound,
        U::ConnectionFailed => Error::Connect {
            message: "could not connect to any address".into(),
            source: None,
        },
        U::Io(io) => classify_io(cfg, io),
        U::Tls(reason) => Error::tls(TlsReason::Other, reason.to_string()),
        U::Rustls(e) => tls_error(&e),
        U::Pem(e) => Error::tls(TlsReason::BadPem, format!("bad PEM: {e}")),
        U::TlsRequired => Error::tls(
            TlsReason::NotTls,
            "the connection for an https URL is not TLS",
        ),
        U::Protocol(e) => Error::Protocol {
            message: e.to_string(),
        },
        U::LargeResponseHeader(size, limit) => Error::Protocol {
            message: format!("response header larger than {limit} bytes (at least {size})"),
        },
        U::BadUri(u) => Error::config(format!("invalid URL: {u}")),
        U::InvalidProxyUrl => Error::proxy("invalid proxy URL"),
        U::ConnectProxyFailed(m) => Error::Proxy {
            message: format!("CONNECT failed: {m}"),
            refused_connect: connect_refused(&m),
        },
        U::TooManyRedirects | U::RedirectFailed => Error::redirect(e.to_string()),
        U::Http(e) => Error::config(format!("cannot build the request: {e}")),
        other => Error::Network {
            message: other.to_string(),
            source: None,
        },
    }
}

/// Maps an I/O error from the connection (a body read, ureq's transport); ureq errors
/// carried inside an `io::Error` by the body reader are unwrapped first.
fn classify_io(cfg: &Limits, io: io::Error) -> Error {
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
        return tls_error(tls);
    }
    match io.kind() {
        K::TimedOut | K::WouldBlock => Error::Timeout {
            phase: TimeoutPhase::Stall,
            limit: Some(cfg.idle),
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

/// Names the certificate problems users meet by a [`TlsReason`], with rustls' own text.
fn tls_error(e: &rustls::Error) -> Error {
    use rustls::CertificateError as C;
    let reason = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => TlsReason::UnknownIssuer,
            C::Expired | C::ExpiredContext { .. } => TlsReason::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => TlsReason::NotValidYet,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsReason::NameMismatch,
            C::Revoked => TlsReason::Revoked,
            C::BadSignature => TlsReason::BadSignature,
            _ => TlsReason::Other,
        },
        rustls::Error::AlertReceived(alert) => {
            use rustls::AlertDescription as A;
            match alert {
                A::CertificateRequired => TlsReason::ClientCertRequired,
                A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA => TlsReason::ClientCertRefused,
                _ => TlsReason::Other,
            }
        }
        _ => TlsReason::Other,
    };
    Error::tls(reason, e.to_string())
}

pub(super) fn deadline_error(limits: &Limits) -> Error {
    Error::Timeout {
        phase: TimeoutPhase::Deadline,
        limit: limits.max_time,
    }
}

/// The value of `name` in `response`'s headers, if it is text.
pub(super) fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Ends the minimum-rate `window` (start, bytes then) once it is `length` old: an error
/// when fewer than `min` bytes per second arrived in it, else a new window from now.
pub(super) fn slow_check(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::error::TimeoutPhase;
    use std::time::Duration;

    #[test]
    fn timeouts_are_named_by_the_limit_that_fired() {
        let cfg = Config {
            max_time: Some(Duration::from_secs(60)),
            ..Config::default()
        };
        let cfg = Limits::of(&cfg, &Job::new("http://h/"));
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
        let cfg = Limits::of(&Config::default(), &Job::new("http://h/"));
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
}
