//! What a handler sees of a request, what the server remembers of it, and how the
//! request head and body are read off the wire.

use std::io::{self, BufRead, Read};
use std::time::Instant;

/// Largest request head the server accepts; beyond it the connection is closed.
const MAX_HEAD: u64 = 64 * 1024;

/// One parsed request, handed to a route handler.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, `POST`, … as sent.
    pub method: String,
    /// The request target as sent, query included (`/a/b?x=1`).
    pub path: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Headers in the order sent, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, read per `Content-Length` (or de-chunked).
    pub body: Vec<u8>,
    /// 1-based count of requests to this path (query ignored) so far, this one included.
    pub hit: usize,
    /// Id of the TCP connection that carried it (1-based, in accept order).
    pub conn: usize,
}

impl Request {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        route_key(&self.path)
    }

    /// The query string without the `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.path.split_once('?').map(|(_, q)| q)
    }
}

/// What the server logged about one request; see `TestServer::requests`.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// Method as sent.
    pub method: String,
    /// Request target as sent, query included.
    pub path: String,
    /// Headers in the order sent.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Id of the TCP connection that carried it.
    pub conn: usize,
    /// When the request head had been read completely.
    pub started: Instant,
    /// When the response was fully written or the connection cut; `None` while the request is
    /// still being answered (or hangs on purpose).
    pub finished: Option<Instant>,
    /// Status code sent, `None` for raw or hanging replies and handler panics.
    pub status: Option<u16>,
}

impl RequestLog {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The part of a target that routes and hit counts use: the path without its query.
pub(crate) fn route_key(target: &str) -> &str {
    target.split_once('?').map_or(target, |(p, _)| p)
}

/// A request head: everything but the body, and before hit numbering.
pub(crate) struct Head {
    pub method: String,
    pub path: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Whether the client asked to close the connection after this exchange.
    pub fn wants_close(&self) -> bool {
        let conn = find_header(&self.headers, "connection").unwrap_or("");
        let has = |token: &str| {
            conn.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if self.version == "HTTP/1.0" {
            !has("keep-alive")
        } else {
            has("close")
        }
    }
}

/// Reads one request head. `Ok(None)` means the client closed the connection cleanly between
/// requests; malformed or oversized heads are errors (the caller closes the connection).
pub(crate) fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut limited = reader.take(MAX_HEAD);
    let mut line = Vec::new();
    // Tolerate stray blank lines before a request line, as RFC 9112 §2.2 suggests.
    loop {
        line.clear();
        if limited.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        if !trim_eol(&line).is_empty() {
            break;
        }
    }
    let request_line = String::from_utf8_lossy(trim_eol(&line)).into_owned();
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("bad request line {request_line:?}")));
    };
    let mut head = Head {
        method: method.to_owned(),
        path: path.to_owned(),
        version: version.to_owned(),
        headers: Vec::new(),
    };
    loop {
        line.clear();
        if limited.read_until(b'\n', &mut line)? == 0 || !line.ends_with(b"\n") {
            return Err(invalid("request head truncated or too large".into()));
        }
        let text = trim_eol(&line);
        if text.is_empty() {
            return Ok(Some(head));
        }
        let text = String::from_utf8_lossy(text);
        let Some((name, value)) = text.split_once(':') else {
            return Err(invalid(format!("bad header line {text:?}")));
        };
        head.headers
            .push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

/// Reads the body that `head` announces: `Content-Length` bytes, a chunked body, or nothing.
pub(crate) fn read_body(reader: &mut impl BufRead, head: &Head) -> io::Result<Vec<u8>> {
    let chunked = find_header(&head.headers, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return read_chunked(reader);
    }
    let len = match find_header(&head.headers, "content-length") {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| invalid(format!("bad Content-Length {v:?}")))?,
    };
    let mut body = Vec::new();
    reader.take(len).read_to_end(&mut body)?;
    if body.len() as u64 != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        reader.take(1024).read_until(b'\n', &mut line)?;
        let text = String::from_utf8_lossy(trim_eol(&line)).into_owned();
        let size_text = text.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size {text:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if reader.take(MAX_HEAD).read_until(b'\n', &mut line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                if trim_eol(&line).is_empty() {
                    return Ok(body);
                }
            }
        }
        let before = body.len();
        reader.take(size).read_to_end(&mut body)?;
        if (body.len() - before) as u64 != size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
