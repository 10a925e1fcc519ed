//! The error taxonomy: every way a job can fail, split by what the caller does next.
//!
//! A job's failure is one [`Error`]. Its [`ErrorKind`] is the short name that goes into
//! reports (`"timeout"`, `"http"`, …) and [`Error::is_transient`] is the retry policy's
//! only input. Context (the URL, the path, the phase) travels in fields, never only in a
//! formatted string, so a caller can act on it.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::checksum::{Algorithm, DigestSource};

/// Where a job came from, for error messages: a file name (or `-`, `args`) and a
/// 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Origin {
    /// The job list's name as the user gave it (shared by every job of the list).
    pub source: Arc<str>,
    /// The 1-based line within it.
    pub line: u64,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.line)
    }
}

/// Which phase of a request ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Establishing the connection: DNS, TCP, TLS and proxy handshakes
    /// ([`Config::connect_timeout`](crate::Config::connect_timeout)).
    Connect,
    /// No byte arrived for the stall limit ([`Config::idle_timeout`](crate::Config::idle_timeout)
    /// or [`Job::idle_timeout`](crate::Job::idle_timeout)), while waiting for the response
    /// head or in the middle of the body.
    Stall,
    /// The job's whole time budget, retries included, ran out
    /// ([`Config::max_time`](crate::Config::max_time) or [`Job::max_time`](crate::Job::max_time)).
    Deadline,
    /// The body arrived slower than the minimum rate over a whole window
    /// ([`Config::min_rate`](crate::Config::min_rate)): a server that drips, too slow to
    /// wait for.
    MinRate,
}

impl TimeoutPhase {
    /// The phase's name as written in reports: `connect`, `stall`, `deadline` or
    /// `min_rate`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::Stall => "stall",
            TimeoutPhase::Deadline => "deadline",
            TimeoutPhase::MinRate => "min_rate",
        }
    }
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a TLS handshake failed, for the certificate problems users meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsReason {
    /// No trusted CA signed the server's certificate (a private CA, a self-signed
    /// certificate): trusting that CA ([`PoolBuilder::ca_cert`](crate::PoolBuilder::ca_cert))
    /// fixes it.
    UnknownIssuer,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet (this machine's clock may be wrong).
    NotValidYet,
    /// The certificate is for another host name.
    NameMismatch,
    /// The certificate was revoked.
    Revoked,
    /// The certificate's signature is bad.
    BadSignature,
    /// A CA certificate file is not valid PEM.
    BadPem,
    /// The connection for an https URL is not TLS.
    NotTls,
    /// The server asks for a client certificate and none was given
    /// ([`PoolBuilder::client_cert`](crate::PoolBuilder::client_cert)).
    ClientCertRequired,
    /// The server refused the client certificate given (another CA, expired, revoked).
    ClientCertRefused,
    /// Something else; the detail says what.
    Other,
}

impl TlsReason {
    /// The reason in words, for those that have words of their own.
    fn words(self) -> Option<&'static str> {
        Some(match self {
            TlsReason::UnknownIssuer => "unknown issuer; trust its CA",
            TlsReason::Expired => "certificate expired",
            TlsReason::NotValidYet => "certificate not valid yet",
            TlsReason::NameMismatch => "name mismatch: the certificate is not valid for this host",
            TlsReason::Revoked => "certificate revoked",
            TlsReason::BadSignature => "bad certificate signature",
            TlsReason::BadPem => "bad PEM",
            TlsReason::ClientCertRequired => "the server requires a client certificate",
            TlsReason::ClientCertRefused => "the server refused the client certificate",
            TlsReason::NotTls | TlsReason::Other => return None,
        })
    }
}

/// Which rule refused a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RedirectReason {
    /// More redirects than the limit
    /// ([`PoolBuilder::max_redirects`](crate::PoolBuilder::max_redirects)).
    TooMany,
    /// From https to plain http, while downgrades are not allowed
    /// ([`PoolBuilder::allow_downgrade`](crate::PoolBuilder::allow_downgrade)).
    Downgrade,
    /// Anything else: a loop, a scheme other than http and https, an invalid target.
    Other,
}

/// A setting a configuration error is about: a front end names it in its own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// The number of workers ([`PoolBuilder::workers`](crate::PoolBuilder::workers)).
    Workers,
    /// The output directory ([`PoolBuilder::output_dir`](crate::PoolBuilder::output_dir)).
    OutputDir,
    /// The extra CA certificates ([`PoolBuilder::ca_cert`](crate::PoolBuilder::ca_cert)).
    CaCert,
    /// The system's trust store ([`PoolBuilder::system_roots`](crate::PoolBuilder::system_roots)).
    SystemRoots,
    /// The client certificate ([`PoolBuilder::client_cert`](crate::PoolBuilder::client_cert)).
    ClientCert,
    /// The client certificate's private key
    /// ([`PoolBuilder::client_cert`](crate::PoolBuilder::client_cert)).
    ClientKey,
    /// The proxy ([`PoolBuilder::proxy`](crate::PoolBuilder::proxy)).
    Proxy,
    /// The shard ([`Shard`](crate::Shard)): `K/N`, or found in the environment.
    Shard,
    /// The shard count, when the environment names only the index.
    ShardCount,
}

/// The short, stable name of an error's category, as written in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection could not be established (refused, unreachable, DNS failure).
    Connect,
    /// The connection broke after it was established: reset, closed early, short body.
    Network,
    /// A timeout; see [`TimeoutPhase`].
    Timeout,
    /// The TLS handshake failed (unknown issuer, expired certificate, name mismatch).
    Tls,
    /// The server answered with a status that is not a success.
    Http,
    /// The server sent something that is not valid HTTP (garbage, oversized header).
    Protocol,
    /// The body's size or sha256 differs from what the job expects.
    Checksum,
    /// A memory job's body is larger than the memory limit; reading stopped there.
    TooLarge,
    /// A local file operation failed (disk full, permission denied).
    Io,
    /// The proxy refused or failed the request.
    Proxy,
    /// A redirect loop, too many redirects, or a redirect fetchpool refuses to follow.
    Redirect,
    /// A job this one depends on did not succeed.
    Dependency,
    /// The job was cancelled (its session or the job itself, or a fail-fast stop) before it
    /// could finish.
    Cancelled,
    /// The job or the configuration is invalid.
    Config,
}

impl ErrorKind {
    /// The name written in reports, for example `"timeout"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Network => "network",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Http => "http",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Checksum => "checksum",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Io => "io",
            ErrorKind::Proxy => "proxy",
            ErrorKind::Redirect => "redirect",
            ErrorKind::Dependency => "dependency",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Config => "config",
        }
    }
}

impl ErrorKind {
    /// Every kind, in the order of [`ErrorKind::as_str`]'s list.
    pub(crate) const ALL: [ErrorKind; 13] = [
        ErrorKind::Connect,
        ErrorKind::Network,
        ErrorKind::Timeout,
        ErrorKind::Tls,
        ErrorKind::Http,
        ErrorKind::Protocol,
        ErrorKind::Checksum,
        ErrorKind::Io,
        ErrorKind::Proxy,
        ErrorKind::Redirect,
        ErrorKind::Dependency,
        ErrorKind::Cancelled,
        ErrorKind::Config,
    ];

    /// The kind a report names (`"timeout"` → [`ErrorKind::Timeout`]), for reading
    /// reports back; `None` for a name no kind has.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shared, cloneable underlying cause.
type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a job failed, or why a configuration was refused.
///
/// Errors are cheap to clone (causes are shared) so that an outcome can be sent to
/// several observers.
///
/// `Debug` shows the kind and the message as `Display` writes it, so that a URL's password
/// or signature in a message stays hidden ([`redact`](crate::redact)) even when a program
/// ends with `Err(error)` from `main`.
#[derive(Clone)]
#[non_exhaustive]
pub enum Error {
    /// The connection could not be established.
    Connect {
        /// What went wrong, in words.
        message: String,
        /// The underlying cause.
        source: Option<Source>,
    },
    /// The host name does not resolve (kind `connect`).
    HostNotFound,
    /// The connection broke after it was established (reset, closed, short body).
    Network {
        /// What went wrong, in words.
        message: String,
        /// The underlying cause.
        source: Option<Source>,
    },
    /// A phase of the request ran out of time.
    Timeout {
        /// Which phase.
        phase: TimeoutPhase,
        /// The limit that was exceeded, when known.
        limit: Option<Duration>,
    },
    /// The TLS handshake failed.
    Tls {
        /// Why, as far as it is known.
        reason: TlsReason,
        /// The TLS library's own words, for example "invalid peer certificate:
        /// UnknownIssuer".
        detail: String,
    },
    /// The server answered with a status that is not a success.
    Status {
        /// The HTTP status code.
        code: u16,
        /// How long the server asked us to wait (`Retry-After`), when it said.
        retry_after: Option<Duration>,
    },
    /// The server's answer is not valid HTTP.
    Protocol {
        /// What was wrong with it.
        message: String,
    },
    /// The body's size or digest differs from what the job expects.
    Checksum {
        /// What was expected: a sha256 in hex, or a size in bytes.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// The body's digest differs from the one expected (kind `checksum`).
    Digest {
        /// The algorithm compared.
        algorithm: Algorithm,
        /// Where the expected value came from: the job, or a header of the answer.
        source: DigestSource,
        /// The expected digest, lowercase hex.
        expected: String,
        /// The body's digest, lowercase hex.
        actual: String,
    },
    /// A memory job's body is larger than the memory limit
    /// ([`Config::memory_limit`](crate::Config::memory_limit)); reading stopped at the
    /// limit (or before the body, when the announced size was over it). Its kind is
    /// `too_large`, and it is not retried.
    TooLarge {
        /// The memory limit, in bytes.
        limit: u64,
        /// The size the server announced (`Content-Length`), when it announced one above
        /// the limit and nothing was read; `None` when the body grew past the limit as it
        /// was read.
        announced: Option<u64>,
    },
    /// A local file operation failed.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// The body's sha256 could not be computed: its hashing thread stopped (kind `io`).
    Hashing {
        /// The file the body was written to; `None` for a memory job.
        path: Option<PathBuf>,
    },
    /// The proxy refused or failed the request.
    Proxy {
        /// The proxy (credentials redacted) and what it did.
        message: String,
        /// The proxy answered `CONNECT` with a status: it was reached and refused the
        /// tunnel (many proxies allow `CONNECT` only to port 443).
        refused_connect: bool,
    },
    /// A redirect could not or would not be followed.
    Redirect {
        /// Why, in words.
        message: String,
        /// Which rule refused it.
        reason: RedirectReason,
    },
    /// A job this one depends on did not succeed.
    Dependency {
        /// The id of the job that failed or was cancelled.
        id: String,
    },
    /// The job was cancelled before it could finish.
    Cancelled {
        /// Why: "interrupted", "fail-fast", …
        reason: String,
    },
    /// The job or the configuration is invalid.
    Config {
        /// The problem and how to fix it, in the library's terms.
        message: String,
        /// The job list and line the problem is on, when it came from one.
        origin: Option<Origin>,
        /// The setting that is wrong, when one is: a front end names it in its own terms
        /// (a command-line flag, a configuration key).
        setting: Option<Setting>,
    },
    /// A job was submitted to a session closed to new jobs (kind `config`: the caller's
    /// mistake, not a cancelled job).
    SessionClosed,
    /// Another run holds the output directory (kind `config`): two runs writing one
    /// tree would race on every partial file and rename.
    OutputInUse {
        /// The output directory.
        dir: PathBuf,
        /// The process holding it, when it could be read.
        pid: Option<u32>,
    },
}

impl Error {
    /// The short category name used in reports.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Connect { .. } | Error::HostNotFound => ErrorKind::Connect,
            Error::Network { .. } => ErrorKind::Network,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Tls { .. } => ErrorKind::Tls,
            Error::Status { .. } => ErrorKind::Http,
            Error::Protocol { .. } => ErrorKind::Protocol,
            Error::Checksum { .. } | Error::Digest { .. } => ErrorKind::Checksum,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::Io { .. } | Error::Hashing { .. } => ErrorKind::Io,
            Error::Proxy { .. } => ErrorKind::Proxy,
            Error::Redirect { .. } => ErrorKind::Redirect,
            Error::Dependency { .. } => ErrorKind::Dependency,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Config { .. } | Error::OutputInUse { .. } | Error::SessionClosed => {
                ErrorKind::Config
            }
        }
    }

    /// Whether trying again may succeed: connection failures, timeouts, a connection that
    /// broke mid-body, and the statuses 408, 429, 500, 502, 503 and 504.
    ///
    /// Never transient: other 4xx statuses, TLS errors (a bad certificate stays bad),
    /// checksum mismatches, local I/O errors and configuration errors.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::HostNotFound
            | Error::Network { .. }
            | Error::Timeout { .. } => true,
            Error::Status { code, .. } => matches!(code, 408 | 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// The timeout phase, for timeouts.
    pub fn phase(&self) -> Option<TimeoutPhase> {
        match self {
            Error::Timeout { phase, .. } => Some(*phase),
            _ => None,
        }
    }

    /// The HTTP status, for [`Error::Status`].
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's `Retry-After`, for [`Error::Status`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Shorthand for a configuration error.
    pub fn config(message: impl Into<String>) -> Error {
        Error::Config {
            message: message.into(),
            origin: None,
            setting: None,
        }
    }

    /// A configuration error about `setting`.
    pub fn setting(setting: Setting, message: impl Into<String>) -> Error {
        Error::Config {
            message: message.into(),
            origin: None,
            setting: Some(setting),
        }
    }

    /// This error, placed on a line of a job list: a configuration error that has no
    /// origin yet takes `origin`; any other error is returned as it is.
    pub fn at(self, origin: Origin) -> Error {
        match self {
            Error::Config {
                message,
                origin: None,
                setting,
            } => Error::Config {
                message,
                origin: Some(origin),
                setting,
            },
            other => other,
        }
    }

    /// The job list and line of a configuration error, when it came from one.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            Error::Config { origin, .. } => origin.as_ref(),
            _ => None,
        }
    }

    /// The setting a configuration error is about, when it is about one.
    pub fn config_setting(&self) -> Option<Setting> {
        match self {
            Error::Config { setting, .. } => *setting,
            _ => None,
        }
    }

    /// A redirect refused for `message`, by no limit a setting changes.
    pub fn redirect(message: impl Into<String>) -> Error {
        Error::Redirect {
            message: message.into(),
            reason: RedirectReason::Other,
        }
    }

    /// A proxy failure other than a refused `CONNECT`.
    pub fn proxy(message: impl Into<String>) -> Error {
        Error::Proxy {
            message: message.into(),
            refused_connect: false,
        }
    }

    /// A TLS failure.
    pub fn tls(reason: TlsReason, detail: impl Into<String>) -> Error {
        Error::Tls {
            reason,
            detail: detail.into(),
        }
    }

    /// A memory job's body over the memory limit `limit`; `announced` is the size the
    /// server announced, when nothing was read.
    pub fn too_large(limit: u64, announced: Option<u64>) -> Error {
        Error::TooLarge { limit, announced }
    }

    /// Shorthand for a local I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind())
            .field("message", &self.to_string())
            .finish()
    }
}

impl fmt::Display for Error {
    /// Any URL in a message is shown with its secrets hidden ([`crate::redact::text`]),
    /// whoever wrote the message: this is what logs, summaries and reports print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::redact::text as shown;
        match self {
            Error::Connect { message, .. } => write!(f, "connection failed: {}", shown(message)),
            Error::HostNotFound => f.write_str("connection failed: host not found (DNS)"),
            Error::Network { message, .. } => write!(f, "connection broke: {}", shown(message)),
            Error::Timeout { phase, limit } => {
                let what = match phase {
                    TimeoutPhase::Connect => "connecting took too long",
                    TimeoutPhase::Stall => "no data received",
                    TimeoutPhase::Deadline => "the job's time budget ran out",
                    TimeoutPhase::MinRate => {
                        "the body arrived slower than the minimum rate for a whole window"
                    }
                };
                match limit {
                    Some(d) => write!(
                        f,
                        "timeout ({phase}): {what} (limit {:.1} s)",
                        d.as_secs_f64()
                    ),
                    None => write!(f, "timeout ({phase}): {what}"),
                }
            }
            Error::Tls { reason, detail } => match reason.words() {
                Some(words) => write!(f, "TLS handshake failed: {words} ({})", shown(detail)),
                None => write!(f, "TLS handshake failed: {}", shown(detail)),
            },
            Error::Status { code, .. } => {
                write!(f, "server answered HTTP {code}")?;
                if let Some(reason) = status_reason(*code) {
                    write!(f, " {reason}")?;
                }
                Ok(())
            }
            Error::Protocol { message } => write!(f, "invalid HTTP response: {}", shown(message)),
            Error::Checksum { expected, actual } => {
                write!(f, "checksum mismatch: expected {expected}, got {actual}")
            }
            Error::Digest {
                algorithm,
                source,
                expected,
                actual,
            } => write!(
                f,
                "checksum mismatch: expected {algorithm} {expected} ({}), got {actual}",
                source.words()
            ),
            Error::TooLarge { limit, announced } => {
                write!(
                    f,
                    "body too large for memory: at most {limit} bytes (the memory limit; write \
                     the body to a file instead), got "
                )?;
                match announced {
                    Some(n) => write!(f, "{n} bytes announced by the server (nothing was read)"),
                    None => write!(f, "more than {limit} bytes (the rest was not read)"),
                }
            }
            Error::Io { path, source } => {
                write!(f, "{}: {source}", shown(&path.to_string_lossy()))
            }
            Error::Hashing { path } => {
                if let Some(path) = path {
                    write!(f, "{}: ", shown(&path.to_string_lossy()))?;
                }
                f.write_str("the body's sha256 could not be computed: its hashing thread stopped")
            }
            Error::Proxy { message, .. } => write!(f, "proxy error: {}", shown(message)),
            Error::Redirect { message, .. } => write!(f, "redirect refused: {}", shown(message)),
            Error::Dependency { id } => {
                write!(f, "not started: job '{id}' it depends on did not succeed")
            }
            Error::Cancelled { reason } => write!(f, "cancelled: {}", shown(reason)),
            Error::Config {
                message, origin, ..
            } => {
                if let Some(origin) = origin {
                    write!(f, "{origin}: ")?;
                }
                f.write_str(&shown(message))
            }
            Error::SessionClosed => f.write_str("the session is closed to new jobs"),
            Error::OutputInUse { dir, pid } => {
                write!(
                    f,
                    "output directory '{}' is in use by another fetchpool run",
                    dir.display()
                )?;
                match pid {
                    Some(pid) => write!(f, " (pid {pid})")?,
                    None => f.write_str(" (pid unknown)")?,
                }
                f.write_str("; wait for it to end or stop it, or write into another directory")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect {
                source: Some(s), ..
            }
            | Error::Network {
                source: Some(s), ..
            } => Some(s.as_ref() as &(dyn std::error::Error + 'static)),
            Error::Io { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

fn status_reason(code: u16) -> Option<&'static str> {
    Some(match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses_are_exactly_the_retryable_ones() {
        let transient: Vec<u16> = (100..600)
            .filter(|&code| {
                Error::Status {
                    code,
                    retry_after: None,
                }
                .is_transient()
            })
            .collect();
        assert_eq!(transient, vec![408, 429, 500, 502, 503, 504]);
    }

    #[test]
    fn tls_and_checksum_errors_are_never_retried() {
        assert!(
            !Error::tls(
                TlsReason::UnknownIssuer,
                "invalid peer certificate: UnknownIssuer"
            )
            .is_transient()
        );
        let e = Error::Checksum {
            expected: "a".into(),
            actual: "b".into(),
        };
        assert!(!e.is_transient());
        assert!(!Error::io("/x", io::Error::other("disk full")).is_transient());
    }

    #[test]
    fn a_stopped_hashing_thread_names_the_real_file_not_a_fake_path() {
        let e = Error::Hashing {
            path: Some(PathBuf::from("out/a.bin")),
        };
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(
            e.to_string(),
            "out/a.bin: the body's sha256 could not be computed: its hashing thread stopped"
        );
        let e = Error::Hashing { path: None };
        assert!(!e.to_string().contains("(sha256 thread)"), "{e}");
    }

    #[test]
    fn a_config_error_shows_its_origin_and_keeps_its_setting() {
        let origin = Origin {
            source: "jobs.txt".into(),
            line: 7,
        };
        let e = Error::setting(Setting::Proxy, "unsupported proxy scheme").at(origin.clone());
        assert_eq!(e.to_string(), "jobs.txt:7: unsupported proxy scheme");
        assert_eq!(e.origin(), Some(&origin));
        assert_eq!(e.config_setting(), Some(Setting::Proxy));
        let io = Error::io("/x", io::Error::other("disk full")).at(origin);
        assert!(
            io.origin().is_none(),
            "only configuration errors take an origin"
        );
    }

    #[test]
    fn display_names_the_phase_and_status() {
        let e = Error::Timeout {
            phase: TimeoutPhase::Stall,
            limit: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            e.to_string(),
            "timeout (stall): no data received (limit 2.0 s)"
        );
        let e = Error::Timeout {
            phase: TimeoutPhase::MinRate,
            limit: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            e.to_string(),
            "timeout (min_rate): the body arrived slower than the minimum rate for a whole \
             window (limit 30.0 s)"
        );
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.is_transient());
        assert_eq!(
            Error::Status {
                code: 404,
                retry_after: None
            }
            .to_string(),
            "server answered HTTP 404 Not Found"
        );
    }
}
