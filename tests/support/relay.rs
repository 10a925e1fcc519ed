//! HTTP/1.1 message relaying shared by the test proxy and the TLS front: read a head,
//! copy a body by its framing (length, chunked, until close), and pump raw bytes both
//! ways for a `CONNECT` tunnel.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

/// A request or response head: the start line and the headers in order.
pub struct Head {
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn write_to(&self, w: &mut impl Write, skip: impl Fn(&str) -> bool) -> io::Result<()> {
        let mut out = format!("{}\r\n", self.line);
        for (k, v) in self.headers.iter().filter(|(k, _)| !skip(k)) {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        w.write_all(out.as_bytes())
    }
}

/// Reads a head; `None` when the peer closed before sending one.
pub fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some(Head {
        line: line.trim_end().to_string(),
        headers,
    }))
}

/// How a message body ends.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn framing(head: &Head, response_to: Option<&str>) -> Framing {
    if let Some(method) = response_to {
        let status: u16 = head
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if method.eq_ignore_ascii_case("HEAD") || matches!(status, 100..=199 | 204 | 304) {
            return Framing::None;
        }
    }
    if head
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        return Framing::Chunked;
    }
    match head.header("content-length").and_then(|v| v.parse().ok()) {
        Some(n) => Framing::Length(n),
        None if response_to.is_some() => Framing::UntilClose,
        None => Framing::None,
    }
}

/// Copies a body framed as `head` says from `r` to `w`, raw (chunk lines included).
/// `Ok(false)` when the body ended with the connection.
fn copy_body(
    head: &Head,
    response_to: Option<&str>,
    r: &mut impl BufRead,
    w: &mut impl Write,
) -> io::Result<bool> {
    match framing(head, response_to) {
        Framing::None => Ok(true),
        Framing::Length(n) => {
            let copied = io::copy(&mut r.take(n), w)?;
            if copied < n {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            Ok(true)
        }
        Framing::UntilClose => {
            io::copy(r, w)?;
            Ok(false)
        }
        Framing::Chunked => loop {
            let mut size = String::new();
            if r.read_line(&mut size)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            w.write_all(size.as_bytes())?;
            let n = u64::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if n == 0 {
                loop {
                    let mut t = String::new();
                    r.read_line(&mut t)?;
                    w.write_all(t.as_bytes())?;
                    if t.trim_end().is_empty() {
                        return Ok(true);
                    }
                }
            }
            io::copy(&mut r.take(n + 2), w)?;
        },
    }
}

/// Sends `request` (with `line` as its start line, `Proxy-*` headers dropped) and its
/// body from `client` to `upstream`, then the response back to `client`. `Ok(false)`
/// when the connection must close afterwards.
pub fn exchange<C: Read + Write>(
    request: &Head,
    line: String,
    client: &mut BufReader<C>,
    upstream: &mut BufReader<TcpStream>,
) -> io::Result<bool> {
    let method = request.line.split(' ').next().unwrap_or("GET").to_string();
    let outgoing = Head {
        line,
        headers: request.headers.clone(),
    };
    let up = upstream.get_mut();
    outgoing.write_to(up, |k| k.to_ascii_lowercase().starts_with("proxy-"))?;
    copy_body(request, None, client, up)?;
    up.flush()?;
    let Some(response) = read_head(upstream)? else {
        return Err(io::ErrorKind::UnexpectedEof.into());
    };
    let out = client.get_mut();
    response.write_to(out, |_| false)?;
    let open = copy_body(&response, Some(&method), upstream, out)?;
    out.flush()?;
    let close = |h: &Head| {
        h.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    };
    Ok(open && !close(request) && !close(&response))
}

/// Pumps bytes both ways between a client and a server until either side closes.
pub fn tunnel(client: TcpStream, server: TcpStream) {
    let (mut c2, mut s2) = match (client.try_clone(), server.try_clone()) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return,
    };
    let back = thread::spawn(move || {
        let _ = io::copy(&mut s2, &mut c2);
        let _ = c2.shutdown(Shutdown::Write);
    });
    let (mut c, mut s) = (client, server);
    let _ = io::copy(&mut c, &mut s);
    let _ = s.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// Binds `127.0.0.1:0` and serves every accepted connection on a thread of its own with
/// `serve`, until `stopped()` holds: the accept loop the test proxies share.
pub fn accept_loop(
    what: &str,
    stopped: impl Fn() -> bool + Send + 'static,
    serve: impl Fn(TcpStream) + Send + Sync + 'static,
) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind {what}: {e}"));
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    let acceptor = thread::spawn(move || {
        for stream in listener.incoming() {
            if stopped() {
                return;
            }
            let Ok(stream) = stream else { continue };
            let serve = Arc::clone(&serve);
            thread::spawn(move || serve(stream));
        }
    });
    (addr, acceptor)
}
