//! https for tests: a throwaway CA made at test time ([`TestCa`]) and a TLS front
//! ([`TlsFront`]) that terminates TLS with a certificate of that CA and relays each
//! request in plain HTTP to a [`super::TestServer`], whose logs and routes then serve as
//! the https server's. Certificates can be valid, expired or for another name; a front
//! can demand a client certificate issued by a CA of the test's ([`TlsFront::requiring_client_cert`]).

use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::relay::{exchange, read_head};
use super::server::TestServer;

/// A certificate authority that exists only for one test.
pub struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Which server certificate a [`TlsFront`] presents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Leaf {
    /// Valid now, for `127.0.0.1` and `localhost`.
    Valid,
    /// For `127.0.0.1` and `localhost`, but expired in 2001.
    Expired,
    /// Valid now, but only for `other.example`.
    OtherName,
}

impl TestCa {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate in PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the CA certificate to `dir/name` and returns the path, for `--cacert`.
    pub fn write_pem(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// Issues a client certificate (for `name`) and writes it and its key to
    /// `dir/NAME.crt` and `dir/NAME.key` (PEM), for `--cert` and `--key`.
    pub fn write_client_cert(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (crt, pem) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&pem, key.serialize_pem()).unwrap();
        (crt, pem)
    }

    fn issue(&self, leaf: Leaf) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let names = match leaf {
            Leaf::OtherName => vec!["other.example".to_string()],
            _ => vec!["127.0.0.1".to_string(), "localhost".to_string()],
        };
        let mut params = CertificateParams::new(names).unwrap();
        if leaf == Leaf::Expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone()], key)
    }
}

/// A TLS listener on `127.0.0.1` and a random port in front of a plain [`TestServer`].
pub struct TlsFront {
    addr: SocketAddr,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TlsFront {
    /// Serves https with `leaf` (issued by `ca`) and relays to `backend`.
    pub fn start(ca: &TestCa, leaf: Leaf, backend: &TestServer) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS front");
        Self::on(listener, ca, leaf, backend)
    }

    /// As [`TlsFront::start`], on a listener the caller bound.
    pub fn on(listener: TcpListener, ca: &TestCa, leaf: Leaf, backend: &TestServer) -> TlsFront {
        Self::serve(listener, ca, leaf, backend, None)
    }

    /// As [`TlsFront::start`], refusing every client without a certificate that
    /// `clients` issued.
    pub fn requiring_client_cert(
        ca: &TestCa,
        leaf: Leaf,
        backend: &TestServer,
        clients: &TestCa,
    ) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS front");
        Self::serve(listener, ca, leaf, backend, Some(clients))
    }

    fn serve(
        listener: TcpListener,
        ca: &TestCa,
        leaf: Leaf,
        backend: &TestServer,
        clients: Option<&TestCa>,
    ) -> TlsFront {
        let addr = listener.local_addr().unwrap();
        let (chain, key) = ca.issue(leaf);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match clients {
            None => builder.with_no_client_auth(),
            Some(clients) => {
                let mut roots = rustls::RootCertStore::empty();
                let der = rustls::pki_types::pem::PemObject::from_pem_slice(clients.pem.as_bytes())
                    .unwrap();
                roots.add(der).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, key).unwrap();
        let config = Arc::new(config);
        let backend = backend.addr();
        let peers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (peers, stop) = (peers.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(peer) = stream.peer_addr() {
                        peers.lock().unwrap().push(peer);
                    }
                    let config = config.clone();
                    thread::spawn(move || relay(config, stream, backend));
                }
            })
        };
        TlsFront {
            addr,
            peers,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// `https://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("https://{}{slash}{path}", self.addr)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Addresses of the clients whose connections were accepted, in order.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.lock().unwrap().clone()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn relay(config: Arc<rustls::ServerConfig>, stream: TcpStream, backend: SocketAddr) {
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut client = BufReader::new(rustls::StreamOwned::new(conn, stream));
    let Ok(up) = TcpStream::connect(backend) else {
        return;
    };
    let mut upstream = BufReader::new(up);
    // A handshake the client rejects ends here, as a read error.
    while let Ok(Some(head)) = read_head(&mut client) {
        let line = head.line.clone();
        if !matches!(exchange(&head, line, &mut client, &mut upstream), Ok(true)) {
            return;
        }
    }
}
