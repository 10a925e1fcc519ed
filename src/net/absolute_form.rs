//! Plain-http targets through an HTTP proxy without `CONNECT`, the way curl does it.
//!
//! ureq 3 reaches every target behind an HTTP proxy through a `CONNECT`
//! tunnel, also `http://` ones. Squid's default configuration and tinyproxy's
//! `ConnectPort` allow `CONNECT` only to port 443, so such proxies refuse every
//! plain-http download. curl instead sends plain-http requests to the proxy in
//! absolute form (`GET http://host:port/path HTTP/1.1`, RFC 9112 §3.2.2) with
//! `Proxy-Authorization` on each request. This module does the same inside
//! ureq's transport layer:
//!
//! - [`AbsoluteFormConnector`] goes first in the connector chain. For an `http`
//!   target whose config carries an `http`/`https` proxy it opens the socket (and
//!   TLS, for an `https` proxy) to the proxy and hands back an
//!   [`AbsoluteFormTransport`]; for anything else it passes, and ureq's own
//!   SOCKS / `CONNECT` / TCP / TLS connectors do as before.
//! - [`AbsoluteFormTransport`] rewrites the request line of each request it
//!   sends: ureq-proto always writes origin form (`GET /path HTTP/1.1`), and
//!   the transport inserts `http://host:port` before the path and the
//!   `Proxy-Authorization` header after the line. Headers and body pass untouched.
//!
//! Pooling: ureq keys pooled connections by (scheme, target authority, proxy),
//! so a connection made here is reused only for the same target through the
//! same proxy; that is what lets the transport fix the target's origin when it
//! is created. Keep-alive works as with direct connections (one proxy
//! connection per target and worker); curl would also share one proxy
//! connection between targets, which ureq's pool key does not allow.
//!
//! How a request start is recognised: a fresh transport, and again after every
//! read, expects a request; the first write after that is rewritten only if it
//! begins with an origin-form request line (`TOKEN SP /… SP HTTP/1.x CRLF`). A
//! request body sent after a `100 Continue` wait is a write after a read, but is
//! left alone unless it itself begins with such a line.

use std::fmt;

use ureq::Error;
use ureq::http::Uri;
use ureq::http::uri::Scheme;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, RustlsConnector, TcpConnector,
    Transport,
};

/// Connector that routes `http://` targets behind an `http`/`https` proxy as
/// absolute-form requests. Put it first in the chain (as `crate::net::agent` does):
///
/// ```text
/// use crate::net::absolute_form::AbsoluteFormConnector;
/// use ureq::unversioned::resolver::DefaultResolver;
/// use ureq::unversioned::transport::{
///     ConnectProxyConnector, Connector, RustlsConnector, SocksConnector, TcpConnector,
/// };
///
/// let connector = ()
///     .chain(AbsoluteFormConnector::default())
///     .chain(SocksConnector::default())
///     .chain(ConnectProxyConnector::default())
///     .chain(TcpConnector::default())
///     .chain(RustlsConnector::default());
/// let config = ureq::Agent::config_builder().proxy(None).build();
/// let agent = ureq::Agent::with_parts(config, connector, DefaultResolver::default());
/// ```
#[derive(Default)]
pub struct AbsoluteFormConnector {
    /// TLS to an `https://` proxy; kept so rustls' client config is built once.
    tls: RustlsConnector,
}

impl fmt::Debug for AbsoluteFormConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AbsoluteFormConnector")
    }
}

impl<In: Transport> Connector<In> for AbsoluteFormConnector {
    type Out = Either<In, AbsoluteFormTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        if let Some(t) = chained {
            return Ok(Some(Either::A(t)));
        }
        let Some(proxy) = details.config.proxy() else {
            return Ok(None);
        };
        let over_tls = match proxy.protocol() {
            ureq::ProxyProtocol::Http => false,
            ureq::ProxyProtocol::Https => true,
            _ => return Ok(None),
        };
        let target = details.uri;
        if target.scheme() != Some(&Scheme::HTTP) || proxy.is_no_proxy(target) {
            return Ok(None);
        }
        let Some(host) = target.host() else {
            return Ok(None);
        };
        let origin = match target.port_u16() {
            Some(port) => format!("http://{host}:{port}"),
            None => format!("http://{host}"),
        };
        let proxy_scheme = if over_tls { "https" } else { "http" };
        let proxy_name = format!("{proxy_scheme}://{}:{}", proxy.host(), proxy.port());
        let proxy_uri: Uri = format!("{proxy_name}/")
            .parse()
            .map_err(|_| Error::InvalidProxyUrl)?;

        let failed = |e: Error| match e {
            e @ Error::Timeout(_) => e,
            e => Error::ConnectProxyFailed(format!("connecting to {proxy_name}: {e}")),
        };
        let addrs = details
            .resolver
            .resolve(&proxy_uri, details.config, details.timeout)
            .map_err(failed)?;
        let proxy_details = ConnectionDetails {
            uri: &proxy_uri,
            addrs,
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        let tcp = Connector::<()>::connect(&TcpConnector::default(), &proxy_details, None)
            .map_err(failed)?;
        let inner: Box<dyn Transport> = if over_tls {
            let tls = self.tls.connect(&proxy_details, tcp).map_err(failed)?;
            Box::new(tls.ok_or(Error::ConnectionFailed)?)
        } else {
            Box::new(tcp.ok_or(Error::ConnectionFailed)?)
        };

        let proxy_auth = (proxy.username().is_some() || proxy.password().is_some()).then(|| {
            let creds = format!(
                "{}:{}",
                proxy.username().unwrap_or_default(),
                proxy.password().unwrap_or_default()
            );
            format!(
                "Proxy-Authorization: Basic {}\r\n",
                base64(creds.as_bytes())
            )
        });
        log::debug!("absolute-form requests for {origin} via {proxy_name}");
        Ok(Some(Either::B(AbsoluteFormTransport {
            inner,
            origin,
            proxy_auth,
            expect_request: true,
        })))
    }
}

/// A connection to a proxy that sends each request in absolute form for one
/// target origin. Made by [`AbsoluteFormConnector`].
pub struct AbsoluteFormTransport {
    inner: Box<dyn Transport>,
    /// `http://host[:port]` of the target; fixed because ureq's pool key holds it.
    origin: String,
    /// The whole header line, CRLF included. Never logged.
    proxy_auth: Option<String>,
    /// Set when the next write may start a request (see the module docs).
    expect_request: bool,
}

impl fmt::Debug for AbsoluteFormTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbsoluteFormTransport")
            .field("origin", &self.origin)
            .field("proxy_auth", &self.proxy_auth.as_ref().map(|_| "***"))
            .field("inner", &self.inner)
            .finish()
    }
}

impl AbsoluteFormTransport {
    fn send_all(&mut self, mut bytes: &[u8], timeout: NextTimeout) -> Result<(), Error> {
        while !bytes.is_empty() {
            let out = self.inner.buffers().output();
            let n = out.len().min(bytes.len());
            out[..n].copy_from_slice(&bytes[..n]);
            self.inner.transmit_output(n, timeout)?;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

impl Transport for AbsoluteFormTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        if !std::mem::take(&mut self.expect_request) {
            return self.inner.transmit_output(amount, timeout);
        }
        let out = &self.inner.buffers().output()[..amount];
        let Some(rewritten) = to_absolute_form(out, &self.origin, self.proxy_auth.as_deref())
        else {
            return self.inner.transmit_output(amount, timeout);
        };
        self.send_all(&rewritten, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.expect_request = true;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    /// TLS, if any, is to the proxy, not to the target.
    fn is_tls(&self) -> bool {
        false
    }
}

/// Rewrites `METHOD /path HTTP/1.x\r\n…` into `METHOD {origin}/path HTTP/1.x\r\n{auth}…`.
/// `None` when `out` does not start with an origin-form request line.
fn to_absolute_form(out: &[u8], origin: &str, auth: Option<&str>) -> Option<Vec<u8>> {
    let head = &out[..out.len().min(16 * 1024)];
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = &head[..line_end];
    let sp = line.iter().position(|&b| b == b' ')?;
    let is_tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if sp == 0 || !line[..sp].iter().all(is_tchar) {
        return None;
    }
    let rest = &line[sp + 1..];
    let target_len = rest.len().checked_sub(9)?;
    let (target, version) = rest.split_at(target_len);
    if target.first() != Some(&b'/')
        || target.contains(&b' ')
        || !(version == b" HTTP/1.1" || version == b" HTTP/1.0")
    {
        return None;
    }
    let auth = auth.unwrap_or("");
    let mut v = Vec::with_capacity(out.len() + origin.len() + auth.len());
    v.extend_from_slice(&out[..=sp]);
    v.extend_from_slice(origin.as_bytes());
    v.extend_from_slice(&out[sp + 1..line_end + 2]);
    v.extend_from_slice(auth.as_bytes());
    v.extend_from_slice(&out[line_end + 2..]);
    Some(v)
}

/// Standard base64 with padding (RFC 4648), for `Proxy-Authorization: Basic`.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::proxy::ProxySettings;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::Duration;
    use ureq::unversioned::resolver::DefaultResolver;
    use ureq::unversioned::transport::{ConnectProxyConnector, SocksConnector};

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (i, o) in cases {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn request_line_is_rewritten_and_auth_inserted() {
        let req = b"GET /a/b?q=1 HTTP/1.1\r\nHost: h:8\r\n\r\n";
        let out = to_absolute_form(
            req,
            "http://h:8",
            Some("Proxy-Authorization: Basic eA==\r\n"),
        );
        assert_eq!(
            String::from_utf8(out.unwrap()).unwrap(),
            "GET http://h:8/a/b?q=1 HTTP/1.1\r\nProxy-Authorization: Basic eA==\r\nHost: h:8\r\n\r\n"
        );
        // Not a request line: body bytes, asterisk-form, already absolute.
        assert!(to_absolute_form(b"{\"json\": 1}\r\n", "http://h", None).is_none());
        assert!(to_absolute_form(b"OPTIONS * HTTP/1.1\r\n\r\n", "http://h", None).is_none());
        assert!(to_absolute_form(b"GET http://h/ HTTP/1.1\r\n\r\n", "http://h", None).is_none());
        assert!(to_absolute_form(b"GET /x HTTP/1.1", "http://h", None).is_none());
    }

    /// A std-only origin that answers every request with its path as the body,
    /// keeping connections alive, and counts the connections it accepted.
    fn origin() -> (u16, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let conns = Arc::new(AtomicUsize::new(0));
        let c = conns.clone();
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                c.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut w = s;
                    while let Some((line, _)) = read_head(&mut r) {
                        let path = line.split(' ').nth(1).unwrap_or("").to_string();
                        let body = format!("origin:{path}");
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if w.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, conns)
    }

    /// Reads a request or response head: the first line and the header lines.
    fn read_head(r: &mut impl BufRead) -> Option<(String, Vec<String>)> {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).ok()? == 0 {
                return None;
            }
            if h == "\r\n" {
                break;
            }
            headers.push(h.trim_end().to_string());
        }
        Some((line.trim_end().to_string(), headers))
    }

    #[derive(Default)]
    struct ProxyLog {
        /// (request line, Proxy-Authorization value) per request received.
        requests: Vec<(String, Option<String>)>,
        connections: usize,
    }

    /// A forward proxy like Squid's default: refuses `CONNECT` to anything but
    /// 443, answers absolute-form requests by fetching from the origin over one
    /// upstream connection per client connection, and logs what it saw.
    fn proxy() -> (u16, Arc<Mutex<ProxyLog>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(ProxyLog::default()));
        let lg = log.clone();
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                lg.lock().unwrap().connections += 1;
                let lg = lg.clone();
                thread::spawn(move || serve_proxy_client(s, &lg));
            }
        });
        (port, log)
    }

    fn serve_proxy_client(s: TcpStream, log: &Mutex<ProxyLog>) {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let mut upstream: Option<(String, BufReader<TcpStream>)> = None;
        while let Some((line, headers)) = read_head(&mut r) {
            let auth = headers
                .iter()
                .find_map(|h| h.strip_prefix("Proxy-Authorization: "))
                .map(str::to_string);
            log.lock().unwrap().requests.push((line.clone(), auth));
            let mut parts = line.split(' ');
            let (method, target) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            let Some(rest) = target.strip_prefix("http://") else {
                let why = if method == "CONNECT" {
                    "403 Forbidden"
                } else {
                    "400 Bad Request"
                };
                let _ = write!(
                    w,
                    "HTTP/1.1 {why}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                return;
            };
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            if upstream.as_ref().map(|u| u.0.as_str()) != Some(authority) {
                let conn = TcpStream::connect(authority).unwrap();
                upstream = Some((authority.to_string(), BufReader::new(conn)));
            }
            let up = &mut upstream.as_mut().unwrap().1;
            let mut req = format!("{method} {path} HTTP/1.1\r\n");
            for h in headers.iter().filter(|h| !h.starts_with("Proxy-")) {
                req.push_str(h);
                req.push_str("\r\n");
            }
            req.push_str("\r\n");
            up.get_mut().write_all(req.as_bytes()).unwrap();
            let (status, rh) = read_head(up).unwrap();
            let len: usize = rh
                .iter()
                .find_map(|h| h.strip_prefix("Content-Length: "))
                .map(|v| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; len];
            up.read_exact(&mut body).unwrap();
            let mut resp = format!("{status}\r\n");
            for h in &rh {
                resp.push_str(h);
                resp.push_str("\r\n");
            }
            resp.push_str("\r\n");
            if w.write_all(resp.as_bytes())
                .and_then(|_| w.write_all(&body))
                .is_err()
            {
                return;
            }
        }
    }

    fn agent(with_absolute_form: bool) -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build();
        if with_absolute_form {
            let connector =
                ().chain(AbsoluteFormConnector::default())
                    .chain(SocksConnector::default())
                    .chain(ConnectProxyConnector::default())
                    .chain(TcpConnector::default())
                    .chain(RustlsConnector::default());
            ureq::Agent::with_parts(config, connector, DefaultResolver::default())
        } else {
            ureq::Agent::new_with_config(config)
        }
    }

    /// GET `url` with the proxy that `settings` choose for it (per request, as
    /// fetchpool does for each redirect hop).
    fn get(agent: &ureq::Agent, settings: &ProxySettings, url: &str) -> Result<String, Error> {
        let proxy = settings.choose(&url.parse().unwrap()).map(|p| p.to_ureq());
        let mut resp = agent.get(url).config().proxy(proxy).build().call()?;
        assert_eq!(resp.status(), 200);
        resp.body_mut().read_to_string()
    }

    #[test]
    fn ureq_alone_tunnels_plain_http_and_a_connect_restricted_proxy_refuses() {
        let (origin_port, origin_conns) = origin();
        let (proxy_port, log) = proxy();
        let settings = ProxySettings::new(Some(&format!("http://127.0.0.1:{proxy_port}")), None);
        let url = format!("http://127.0.0.1:{origin_port}/file");
        let err = get(&agent(false), &settings.unwrap(), &url).unwrap_err();
        assert!(matches!(err, Error::ConnectProxyFailed(_)), "{err}");
        let log = log.lock().unwrap();
        assert!(
            log.requests[0].0.starts_with("CONNECT 127.0.0.1:"),
            "{:?}",
            log.requests
        );
        assert_eq!(origin_conns.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn plain_http_goes_through_the_proxy_in_absolute_form_over_one_connection() {
        let (origin_port, origin_conns) = origin();
        let (proxy_port, log) = proxy();
        let settings = ProxySettings::new(
            Some(&format!("http://ann:s%3Ac@127.0.0.1:{proxy_port}")),
            None,
        )
        .unwrap();
        let agent = agent(true);
        for name in ["a", "b", "c"] {
            let url = format!("http://127.0.0.1:{origin_port}/{name}?x=1");
            assert_eq!(
                get(&agent, &settings, &url).unwrap(),
                format!("origin:/{name}?x=1")
            );
        }
        let log = log.lock().unwrap();
        let lines: Vec<_> = log.requests.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            lines,
            ["a", "b", "c"].map(|n| format!("GET http://127.0.0.1:{origin_port}/{n}?x=1 HTTP/1.1"))
        );
        // "ann:s:c" in base64, on every request (not only on the first).
        for (_, auth) in &log.requests {
            assert_eq!(auth.as_deref(), Some("Basic YW5uOnM6Yw=="));
        }
        assert_eq!(
            log.connections, 1,
            "keep-alive connection to the proxy reused"
        );
        assert_eq!(
            origin_conns.load(Ordering::SeqCst),
            1,
            "only the proxy's upstream"
        );
    }

    #[test]
    fn pooled_proxy_connections_are_never_shared_between_targets() {
        let (port_a, _) = origin();
        let (port_b, _) = origin();
        let (proxy_port, log) = proxy();
        let settings = ProxySettings::new(Some(&format!("127.0.0.1:{proxy_port}")), None).unwrap();
        let agent = agent(true);
        for i in 0..2 {
            for port in [port_a, port_b] {
                let url = format!("http://127.0.0.1:{port}/{i}");
                assert_eq!(
                    get(&agent, &settings, &url).unwrap(),
                    format!("origin:/{i}")
                );
            }
        }
        let log = log.lock().unwrap();
        for (line, auth) in &log.requests {
            assert!(line.starts_with("GET http://127.0.0.1:"), "{line}");
            assert_eq!(auth, &None);
        }
        assert_eq!(log.requests.len(), 4);
        assert_eq!(log.connections, 2, "one pooled proxy connection per target");
    }

    #[test]
    fn no_proxy_target_goes_direct_through_the_same_agent() {
        let (origin_port, origin_conns) = origin();
        let (proxy_port, log) = proxy();
        let settings = ProxySettings::new(
            Some(&format!("http://127.0.0.1:{proxy_port}")),
            Some("127.0.0.1"),
        )
        .unwrap();
        let url = format!("http://127.0.0.1:{origin_port}/direct");
        assert_eq!(
            get(&agent(true), &settings, &url).unwrap(),
            "origin:/direct"
        );
        assert_eq!(log.lock().unwrap().connections, 0);
        assert_eq!(origin_conns.load(Ordering::SeqCst), 1);
    }
}
