//! A SOCKS5 proxy on loopback (RFC 1928 `CONNECT`, no authentication or RFC 1929
//! user/password) that logs each target it is asked for and the local address of each
//! upstream socket, like [`super::proxy::TestProxy`] does for HTTP proxies.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::relay::{accept_loop, tunnel};

#[derive(Default)]
struct Shared {
    /// (`host:port` as asked, whether it came as a name rather than an address).
    targets: Mutex<Vec<(String, bool)>>,
    upstreams: Mutex<Vec<(String, SocketAddr)>>,
    /// Required `(user, password)`, if any.
    auth: Mutex<Option<(String, String)>>,
    /// Credentials offered, in order.
    offered: Mutex<Vec<(String, String)>>,
    stop: AtomicBool,
}

/// A SOCKS5 proxy on `127.0.0.1` and a random port.
pub struct SocksProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl SocksProxy {
    /// Binds `127.0.0.1:0` and starts accepting.
    pub fn start() -> SocksProxy {
        let shared = Arc::new(Shared::default());
        let (stop, conns) = (shared.clone(), shared.clone());
        let (addr, acceptor) = accept_loop(
            "SOCKS proxy",
            move || stop.stop.load(Ordering::SeqCst),
            move |stream| {
                let _ = serve(&conns, stream);
            },
        );
        SocksProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Demands RFC 1929 user/password authentication with these credentials.
    pub fn require_auth(&self, user: &str, password: &str) {
        *self.shared.auth.lock().unwrap() = Some((user.into(), password.into()));
    }

    /// Every target asked for: `host:port`, and whether it was sent as a name.
    pub fn targets(&self) -> Vec<(String, bool)> {
        self.shared.targets.lock().unwrap().clone()
    }

    /// Credentials clients offered, in order.
    pub fn offered(&self) -> Vec<(String, String)> {
        self.shared.offered.lock().unwrap().clone()
    }

    /// Local addresses of the proxy's own connections to `authority` (`host:port`).
    pub fn upstream_addrs(&self, authority: &str) -> Vec<SocketAddr> {
        self.shared
            .upstreams
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, _)| a == authority)
            .map(|(_, addr)| *addr)
            .collect()
    }
}

impl Drop for SocksProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn read_n(s: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

fn serve(shared: &Shared, mut s: TcpStream) -> io::Result<()> {
    let hello = read_n(&mut s, 2)?;
    let methods = read_n(&mut s, usize::from(hello[1]))?;
    let want = shared.auth.lock().unwrap().clone();
    let method = if want.is_some() { 2 } else { 0 };
    if hello[0] != 5 || !methods.contains(&method) {
        return s.write_all(&[5, 0xff]);
    }
    s.write_all(&[5, method])?;
    if let Some((user, password)) = want {
        let head = read_n(&mut s, 2)?;
        let u = String::from_utf8_lossy(&read_n(&mut s, usize::from(head[1]))?).into_owned();
        let plen = read_n(&mut s, 1)?[0];
        let p = String::from_utf8_lossy(&read_n(&mut s, usize::from(plen))?).into_owned();
        shared.offered.lock().unwrap().push((u.clone(), p.clone()));
        if (u, p) != (user, password) {
            return s.write_all(&[1, 1]);
        }
        s.write_all(&[1, 0])?;
    }
    let req = read_n(&mut s, 4)?;
    let (host, named) = match req[3] {
        1 => {
            let a = read_n(&mut s, 4)?;
            (Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(), false)
        }
        3 => {
            let len = read_n(&mut s, 1)?[0];
            let name = read_n(&mut s, usize::from(len))?;
            (String::from_utf8_lossy(&name).into_owned(), true)
        }
        4 => {
            let a: [u8; 16] = read_n(&mut s, 16)?.try_into().unwrap();
            (format!("[{}]", Ipv6Addr::from(a)), false)
        }
        _ => return s.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]),
    };
    let port = read_n(&mut s, 2)?;
    let target = format!("{host}:{}", u16::from_be_bytes([port[0], port[1]]));
    shared.targets.lock().unwrap().push((target.clone(), named));
    if req[1] != 1 {
        return s.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
    let Ok(up) = TcpStream::connect(&target) else {
        return s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
    };
    shared
        .upstreams
        .lock()
        .unwrap()
        .push((target, up.local_addr()?));
    s.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])?;
    tunnel(s, up);
    Ok(())
}
