//! The reply builder: a normal response plus the ways a real server misbehaves (stalls, cuts,
//! short bodies, slow drips, garbage, huge heads, silence), and the code that puts it on the wire.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::request::{Request, find_header};
use super::server::Stopper;

/// How long `stall_after` and `hang` keep a connection silent when the server is not dropped.
const SILENCE: Duration = Duration::from_secs(60);

/// A response a handler returns: built with [`Reply::status`], [`Reply::ok`] and friends, then
/// refined with the builder methods.
///
/// The server adds `Content-Length` (the real body length, unless a handler set one or used
/// [`Reply::declared_len`]) and, for closing replies, `Connection: close`.
#[derive(Debug, Clone)]
pub struct Reply {
    pub(crate) kind: Kind,
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    body: Arc<[u8]>,
    range: Range<usize>,
    delay: Option<Duration>,
    fault: Option<Fault>,
    drip: Option<(usize, Duration)>,
    framing: Framing,
    close: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Normal,
    Raw(Vec<u8>),
    Hang,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    StallAfter(usize),
    CutAfter(usize),
    DeclaredLen(u64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    ContentLength,
    Chunked,
    UntilClose,
}

/// What the connection loop does after a reply has been written.
#[derive(Debug, PartialEq)]
pub(crate) enum After {
    KeepAlive,
    Close,
}

impl Reply {
    /// An empty response with this status.
    pub fn status(code: u16) -> Reply {
        Reply {
            kind: Kind::Normal,
            status: code,
            headers: Vec::new(),
            body: Arc::from(&[][..]),
            range: 0..0,
            delay: None,
            fault: None,
            drip: None,
            framing: Framing::ContentLength,
            close: false,
        }
    }

    /// `200 OK` with this body.
    pub fn ok(body: impl AsRef<[u8]>) -> Reply {
        Reply::status(200).body(body)
    }

    /// `status` with a `Location` header and an empty body.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::status(status).header("Location", location)
    }

    /// Writes `bytes` as they are (no status line, no framing), then closes the connection.
    pub fn raw(bytes: impl AsRef<[u8]>) -> Reply {
        Reply {
            kind: Kind::Raw(bytes.as_ref().to_vec()),
            ..Reply::status(0)
        }
    }

    /// `200 OK`, empty body, with filler headers making the head at least `bytes` bytes long
    /// (less than 1 KB more).
    pub fn huge_header(bytes: usize) -> Reply {
        let value = "x".repeat(1000);
        // Each line is `X-Filler-NNNNN: ` + value + CRLF.
        let line_len = 16 + value.len() + 2;
        let mut reply = Reply::status(200);
        for i in 0..bytes.div_ceil(line_len) {
            reply = reply.header(&format!("X-Filler-{i:05}"), &value);
        }
        reply
    }

    /// Reads the request and never answers; the connection closes after 60 s or when the
    /// server is dropped.
    pub fn hang() -> Reply {
        Reply {
            kind: Kind::Hang,
            ..Reply::status(0)
        }
    }

    /// Adds a header (repeatable; names are sent as given).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces the body.
    pub fn body(self, body: impl AsRef<[u8]>) -> Reply {
        self.shared_body(Arc::from(body.as_ref()), None)
    }

    /// Uses `range` of a shared body without copying it (how file replies serve large bodies).
    pub(crate) fn shared_body(mut self, body: Arc<[u8]>, range: Option<Range<usize>>) -> Reply {
        self.range = range.unwrap_or(0..body.len());
        self.body = body;
        self
    }

    /// The body bytes this reply will send (before any misbehaviour).
    pub fn body_bytes(&self) -> &[u8] {
        &self.body[self.range.clone()]
    }

    /// Waits this long before sending the status line (a slow first byte).
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = Some(delay);
        self
    }

    /// Sends the head with the full `Content-Length`, then `n` body bytes, then stays silent
    /// without closing (60 s, or until the server is dropped): a stalled transfer.
    pub fn stall_after(mut self, n: usize) -> Reply {
        self.fault = Some(Fault::StallAfter(n));
        self
    }

    /// Sends the head with the full `Content-Length`, then `n` body bytes, then shuts the
    /// connection down in both directions: a reset mid-body.
    pub fn cut_after(mut self, n: usize) -> Reply {
        self.fault = Some(Fault::CutAfter(n));
        self
    }

    /// Announces `Content-Length: n` but sends only the real body, then closes.
    pub fn declared_len(mut self, n: u64) -> Reply {
        self.fault = Some(Fault::DeclaredLen(n));
        self
    }

    /// Sends the body `chunk` bytes at a time with `interval` between pieces: a slow server.
    pub fn drip(mut self, chunk: usize, interval: Duration) -> Reply {
        self.drip = Some((chunk.max(1), interval));
        self
    }

    /// Uses `Transfer-Encoding: chunked` instead of `Content-Length` (one chunk per drip piece).
    pub fn chunked(mut self) -> Reply {
        self.framing = Framing::Chunked;
        self
    }

    /// Sends no length at all: the body ends when the server closes the connection.
    pub fn until_close(mut self) -> Reply {
        self.framing = Framing::UntilClose;
        self
    }

    /// Adds `Connection: close` and closes the connection after the response.
    pub fn close(mut self) -> Reply {
        self.close = true;
        self
    }

    /// Writes this reply to `stream` as the answer to `req`.
    pub(crate) fn write_to(
        &self,
        stream: &mut TcpStream,
        req: &Request,
        stop: &Stopper,
        sent: &AtomicU64,
    ) -> io::Result<After> {
        if let Some(delay) = self.delay
            && !stop.nap(delay)
        {
            return Ok(After::Close);
        }
        match &self.kind {
            Kind::Raw(bytes) => {
                stream.write_all(bytes)?;
                stream.flush()?;
                return Ok(After::Close);
            }
            Kind::Hang => {
                stop.nap(SILENCE);
                return Ok(After::Close);
            }
            Kind::Normal => {}
        }

        let body = self.body_bytes();
        let bodiless =
            req.method.eq_ignore_ascii_case("HEAD") || matches!(self.status, 100..=199 | 204 | 304);
        let mut close = self.close
            || self.framing == Framing::UntilClose
            || matches!(self.fault, Some(Fault::DeclaredLen(_)));

        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let user_length = find_header(&self.headers, "content-length").is_some();
        match self.framing {
            Framing::ContentLength if !user_length && !matches!(self.status, 100..=199 | 204) => {
                let len = match self.fault {
                    Some(Fault::DeclaredLen(n)) => n,
                    _ => body.len() as u64,
                };
                if !(self.status == 304 && body.is_empty()) {
                    head.push_str(&format!("Content-Length: {len}\r\n"));
                }
            }
            Framing::Chunked if !bodiless => head.push_str("Transfer-Encoding: chunked\r\n"),
            _ => {}
        }
        if close && find_header(&self.headers, "connection").is_none() {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;

        if bodiless {
            stream.flush()?;
            return Ok(if close {
                After::Close
            } else {
                After::KeepAlive
            });
        }

        let send = match self.fault {
            Some(Fault::StallAfter(n) | Fault::CutAfter(n)) => &body[..n.min(body.len())],
            _ => body,
        };
        let piece = self.drip.map_or(send.len().max(1), |(chunk, _)| chunk);
        for (i, part) in send.chunks(piece).enumerate() {
            if i > 0
                && let Some((_, interval)) = self.drip
            {
                stream.flush()?;
                if !stop.nap(interval) {
                    return Ok(After::Close);
                }
            }
            if self.framing == Framing::Chunked {
                stream.write_all(format!("{:x}\r\n", part.len()).as_bytes())?;
                stream.write_all(part)?;
                stream.write_all(b"\r\n")?;
            } else {
                stream.write_all(part)?;
            }
            sent.fetch_add(part.len() as u64, Ordering::Relaxed);
        }
        stream.flush()?;

        match self.fault {
            Some(Fault::StallAfter(_)) => {
                stop.nap(SILENCE);
                close = true;
            }
            Some(Fault::CutAfter(_)) => {
                let _ = stream.shutdown(Shutdown::Both);
                close = true;
            }
            _ => {
                if self.framing == Framing::Chunked {
                    stream.write_all(b"0\r\n\r\n")?;
                    stream.flush()?;
                }
            }
        }
        Ok(if close {
            After::Close
        } else {
            After::KeepAlive
        })
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
