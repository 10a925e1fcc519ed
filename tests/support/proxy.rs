//! An in-process forward proxy on loopback: absolute-form requests (`GET http://host/…`)
//! are relayed over a kept-alive upstream connection, `CONNECT host:port` opens a tunnel.
//! It logs every request it is asked to carry and the local address of every upstream
//! connection it opens, so a test can prove that an origin saw nobody but the proxy.
//!
//! Like Squid's packaged configuration it can refuse `CONNECT` to ports other than 443
//! ([`TestProxy::connect_only_to`]), and like any proxy with users it can demand
//! `Proxy-Authorization` ([`TestProxy::require_auth`]).

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::relay::{accept_loop, exchange, read_head, tunnel};

/// One request the proxy was asked to carry.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyRequest {
    /// `GET`, `CONNECT`, …
    pub method: String,
    /// The request target as sent: `http://127.0.0.1:PORT/path` or `127.0.0.1:PORT`.
    pub target: String,
    /// The `Proxy-Authorization` header, if any.
    pub auth: Option<String>,
}

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<ProxyRequest>>,
    /// (target authority, local address of the proxy's socket to it).
    upstreams: Mutex<Vec<(String, SocketAddr)>>,
    connections: Mutex<usize>,
    connect_ports: Mutex<Option<Vec<u16>>>,
    auth: Mutex<Option<String>>,
    stop: AtomicBool,
}

/// A forward proxy on `127.0.0.1` and a random port.
pub struct TestProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TestProxy {
    /// Binds `127.0.0.1:0` and starts accepting.
    pub fn start() -> TestProxy {
        let shared = Arc::new(Shared::default());
        let (stop, conns) = (shared.clone(), shared.clone());
        let (addr, acceptor) = accept_loop(
            "test proxy",
            move || stop.stop.load(Ordering::SeqCst),
            move |stream| {
                *lock(&conns.connections) += 1;
                serve(&conns, stream);
            },
        );
        TestProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`, for `--proxy`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Refuses `CONNECT` (403) to any port not in `ports`, as Squid's `SSL_ports` does.
    pub fn connect_only_to(&self, ports: &[u16]) {
        *lock(&self.shared.connect_ports) = Some(ports.to_vec());
    }

    /// Answers 407 unless `Proxy-Authorization` equals `value` (e.g. `Basic dTpw`).
    pub fn require_auth(&self, value: &str) {
        *lock(&self.shared.auth) = Some(value.to_string());
    }

    /// Every request the proxy was asked to carry, in arrival order.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        lock(&self.shared.log).clone()
    }

    /// `METHOD TARGET` of every request, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect()
    }

    /// Local addresses of the proxy's own connections to `authority` (`host:port`).
    pub fn upstream_addrs(&self, authority: &str) -> Vec<SocketAddr> {
        lock(&self.shared.upstreams)
            .iter()
            .filter(|(a, _)| a == authority)
            .map(|(_, addr)| *addr)
            .collect()
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> usize {
        *lock(&self.shared.connections)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn serve(shared: &Shared, stream: TcpStream) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut client = BufReader::new(read_half);
    let mut writer = stream;
    let mut upstream: Option<(String, BufReader<TcpStream>)> = None;
    while let Ok(Some(head)) = read_head(&mut client) {
        let mut parts = head.line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let auth = head.header("proxy-authorization").map(str::to_string);
        lock(&shared.log).push(ProxyRequest {
            method: method.clone(),
            target: target.clone(),
            auth: auth.clone(),
        });
        let refuse = |w: &mut TcpStream, status: &str, extra: &str| {
            let _ = write!(
                w,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
        };
        if let Some(want) = lock(&shared.auth).clone()
            && auth.as_deref() != Some(want.as_str())
        {
            refuse(
                &mut writer,
                "407 Proxy Authentication Required",
                "Proxy-Authenticate: Basic realm=\"test\"\r\n",
            );
            return;
        }
        if method == "CONNECT" {
            let port: u16 = target
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(0);
            if let Some(ports) = lock(&shared.connect_ports).as_ref()
                && !ports.contains(&port)
            {
                refuse(&mut writer, "403 Forbidden", "");
                return;
            }
            let Some(server) = dial(shared, &target) else {
                refuse(&mut writer, "502 Bad Gateway", "");
                return;
            };
            if writer
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .is_err()
            {
                return;
            }
            // Bytes the client sent after the CONNECT head are still in our buffer.
            let pending = client.buffer().to_vec();
            let mut s = server;
            if !pending.is_empty() && s.write_all(&pending).is_err() {
                return;
            }
            tunnel(writer, s);
            return;
        }
        let Some(rest) = target.strip_prefix("http://") else {
            refuse(&mut writer, "400 Bad Request", "");
            return;
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        if upstream.as_ref().map(|u| u.0.as_str()) != Some(authority) {
            let Some(conn) = dial(shared, authority) else {
                refuse(&mut writer, "502 Bad Gateway", "");
                return;
            };
            upstream = Some((authority.to_string(), BufReader::new(conn)));
        }
        let up = &mut upstream.as_mut().unwrap().1;
        let version = head.line.rsplit(' ').next().unwrap_or("HTTP/1.1");
        let line = format!("{method} {path} {version}");
        // The reader's socket is a clone of `writer`'s: the response goes out through it.
        match exchange(&head, line, &mut client, up) {
            Ok(true) => {}
            _ => return,
        }
    }
}

fn dial(shared: &Shared, authority: &str) -> Option<TcpStream> {
    let conn = TcpStream::connect(authority).ok()?;
    let local = conn.local_addr().ok()?;
    lock(&shared.upstreams).push((authority.to_string(), local));
    Some(conn)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
