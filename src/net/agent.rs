//! Builds the one `ureq::Agent` that all workers share, from the [`Settings`] the pool
//! takes out of its configuration.
//!
//! Every ureq default that would hurt a bulk downloader is set explicitly here: statuses
//! are not errors (a 503 keeps its `Retry-After`), redirects are followed by
//! [`crate::fetch`] (so every hop is checked and recorded), timeouts are on, the idle
//! pool holds a connection per worker, and the agent itself has no proxy: the proxy is
//! chosen per request (per redirect hop) by [`crate::net::proxy::ProxySettings::choose`] and
//! set on that request's config, so ureq's environment reading never applies.
//!
//! The connector chain is ureq's default one with [`AbsoluteFormConnector`] in front:
//! plain-http targets behind an HTTP proxy are sent in absolute form instead of through
//! `CONNECT`, which proxies with packaged defaults refuse for ports other than 443.
//!
//! Names go through [`CachingResolver`] (see `crate::net::resolve`), the proxy's name too.
//!
//! TLS is rustls. The trusted roots are Mozilla's (ureq's default) or, when asked, the
//! system's trust store as curl sees it (`SSL_CERT_FILE` / `SSL_CERT_DIR` when set, else
//! the platform's store, read by rustls-native-certs), plus any extra CA files; ureq's
//! [`RootCerts`] is either "the built-in roots" or "exactly these", so anything but the
//! default is given as whole certificates. [`tls_config`] reads and checks every file
//! (CA files, the system store, a client certificate and its key) once, when the pool is
//! built, so that a bad one fails before any request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
use ureq::unversioned::transport::{
    ConnectProxyConnector, Connector, RustlsConnector, SocksConnector, TcpConnector,
};

use crate::error::Error;
use crate::error::Setting;
use crate::net::absolute_form::AbsoluteFormConnector;
use crate::net::resolve::CachingResolver;
use crate::net::reuse;

/// Bytes each connection reads from its socket at most at once: ureq's default is
/// 128 KiB; 80 KiB costs a few more reads per megabyte (microseconds) and, with the
/// worker's buffer of the same size, keeps a 20-worker pool's memory below curl's for
/// the same job. It must exceed the largest response header (ureq's 64 KiB limit): a
/// header that fills the buffer would read as a closed connection, not as too large.
pub(crate) const INPUT_BUFFER: usize = 80 * 1024;

/// What the agent is built from: the parts of the pool's configuration that shape
/// connections (see the configuration for each one's default and unit).
pub(crate) struct Settings<'a> {
    /// Worker threads: the idle pool keeps a connection for each.
    pub(crate) workers: usize,
    /// Extra PEM files of trusted certificates.
    pub(crate) ca_certs: &'a [PathBuf],
    /// Trust the system's store instead of Mozilla's roots.
    pub(crate) system_roots: bool,
    /// A PEM client certificate (chain), and the file of its key when not in it.
    pub(crate) client_cert: Option<(&'a Path, Option<&'a Path>)>,
    /// Time to open a connection.
    pub(crate) connect_timeout: Duration,
    /// Time a read or a write may wait.
    pub(crate) idle_timeout: Duration,
    /// The `User-Agent` header's value.
    pub(crate) user_agent: &'a str,
}

/// The TLS side of the agent: its roots and client certificate, every file read and
/// checked now.
pub(crate) fn tls_config(settings: &Settings<'_>) -> Result<TlsConfig, Error> {
    let mut tls = TlsConfig::builder();
    if settings.system_roots || !settings.ca_certs.is_empty() {
        let mut roots = if settings.system_roots {
            system_roots()?
        } else {
            mozilla_roots()
        };
        for path in settings.ca_certs {
            roots.extend(read_ca_file(path)?);
        }
        tls = tls.root_certs(RootCerts::Specific(Arc::new(roots)));
    }
    if let Some((cert, key)) = settings.client_cert {
        tls = tls.client_cert(Some(read_client_cert(cert, key)?));
    }
    Ok(tls
        .unversioned_rustls_crypto_provider(Arc::new(crypto_provider()))
        .build())
}

/// ring's provider with the AES-128-GCM suites offered first: servers that follow the
/// client's order (nginx and OpenSSL's default) then pick them over AES-256-GCM, which
/// costs 14 AES rounds a block instead of 10, on both ends of every byte of body. The
/// set of suites is ring's default one, only its order changes.
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    use rustls::CipherSuite;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    provider
}

/// Mozilla's roots as whole certificates (the same list as ureq's built-in one).
fn mozilla_roots() -> Vec<Certificate<'static>> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect()
}

/// The system's trust store: the file `SSL_CERT_FILE` and the folders `SSL_CERT_DIR`
/// name when either is set (an unreadable one is an error), else the platform's store.
/// A system without a store (a bare container) falls back to Mozilla's roots.
fn system_roots() -> Result<Vec<Certificate<'static>>, Error> {
    let loaded = rustls_native_certs::load_native_certs();
    let named: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .into_iter()
        .filter_map(|v| std::env::var_os(v).map(|p| format!("{v}={}", p.to_string_lossy())))
        .collect();
    if !named.is_empty() && (loaded.certs.is_empty() || !loaded.errors.is_empty()) {
        let why = loaded.errors.first().map_or_else(
            || "it holds no certificate".to_string(),
            ToString::to_string,
        );
        return Err(Error::setting(
            Setting::SystemRoots,
            format!(
                "cannot read the system trust store that {} names: {why}; point it at a PEM \
                 file (or folder) of CA certificates, or unset it",
                named.join(" and ")
            ),
        ));
    }
    for e in &loaded.errors {
        log::debug!("system trust store: {e}");
    }
    if loaded.certs.is_empty() {
        log::warn!(
            "the system has no trust store (no CA certificates found); using Mozilla's roots"
        );
        return Ok(mozilla_roots());
    }
    // The platform's store is often both a bundle and a folder of the same certificates.
    let mut certs = loaded.certs;
    certs.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
    certs.dedup_by(|a, b| a.as_ref() == b.as_ref());
    Ok(certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect())
}

/// A client certificate chain from the PEM file `cert`, with its private key from `key`
/// or, without one, from `cert` too. Each file is read and the key checked against the
/// certificate now: a mismatch would otherwise fail every handshake.
pub(crate) fn read_client_cert(cert: &Path, key_file: Option<&Path>) -> Result<ClientCert, Error> {
    let read = |path: &Path, setting: Setting| {
        std::fs::read(path).map_err(|e| {
            let what = match setting {
                Setting::ClientKey => "the client certificate's key file",
                _ => "client certificate file",
            };
            Error::setting(
                setting,
                format!("cannot read {what} '{}': {e}", path.display()),
            )
        })
    };
    let pem = read(cert, Setting::ClientCert)?;
    let mut chain = Vec::new();
    let mut key_in_cert = None;
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => chain.push(c),
            Ok(PemItem::PrivateKey(k)) => key_in_cert = Some(k),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::setting(
                    Setting::ClientCert,
                    format!(
                        "client certificate file '{}' is not valid PEM: {e}",
                        cert.display()
                    ),
                ));
            }
        }
    }
    if chain.is_empty() {
        return Err(Error::setting(
            Setting::ClientCert,
            format!(
                "client certificate file '{}' holds no certificate; give a PEM file with a \
                 CERTIFICATE block",
                cert.display()
            ),
        ));
    }
    let key: PrivateKey<'static> = match key_file {
        Some(path) => {
            let pem = read(path, Setting::ClientKey)?;
            let found = ureq::tls::parse_pem(&pem).find_map(|item| match item {
                Ok(PemItem::PrivateKey(k)) => Some(k),
                _ => None,
            });
            found.ok_or_else(|| {
                Error::setting(
                    Setting::ClientKey,
                    format!(
                        "key file '{}' holds no private key; give a PEM file with a PRIVATE \
                         KEY block (unencrypted)",
                        path.display()
                    ),
                )
            })?
        }
        None => key_in_cert.ok_or_else(|| {
            Error::setting(
                Setting::ClientKey,
                format!(
                    "client certificate file '{}' holds no private key; give the key's file too",
                    cert.display()
                ),
            )
        })?,
    };
    // The check rustls makes when the first handshake uses them, made now.
    let der_chain: Vec<rustls::pki_types::CertificateDer<'static>> = chain
        .iter()
        .map(|c| rustls::pki_types::CertificateDer::from(c.der().to_vec()))
        .collect();
    let der_key = rustls::pki_types::PrivateKeyDer::try_from(key.der().to_vec()).map_err(|e| {
        Error::setting(
            Setting::ClientKey,
            format!("the client key is not usable: {e}"),
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    if let Err(e) = rustls::sign::CertifiedKey::from_der(der_chain, der_key, &provider) {
        return Err(Error::setting(
            Setting::ClientKey,
            format!(
                "the key in '{}' does not fit the client certificate '{}' ({e}); give the key \
                 that belongs to it",
                key_file.unwrap_or(cert).display(),
                cert.display()
            ),
        ));
    }
    Ok(ClientCert::new_with_certs(&chain, key))
}

/// The shared agent, with the TLS side [`tls_config`] made; `opened` is the pool's record
/// of which threads opened a connection (see [`reuse`]).
pub(crate) fn build(
    settings: &Settings<'_>,
    tls: &TlsConfig,
    opened: &Arc<reuse::Opened>,
) -> Result<ureq::Agent, Error> {
    // A host has at most one connection per worker in use (the per-host cap is never above
    // the worker count), so that many idle ones cover every host.
    let idle = settings.workers.max(4);
    let agent_config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_connect(Some(settings.connect_timeout))
        .timeout_per_read(Some(settings.idle_timeout))
        .timeout_per_write(Some(settings.idle_timeout))
        .max_idle_connections(idle * 2)
        .max_idle_connections_per_host(idle)
        .proxy(None)
        // ureq keeps 128 KiB for each direction of every connection by default; requests
        // are small, so the output side gets 16 KiB (bodies still stream through it).
        .input_buffer_size(INPUT_BUFFER)
        .output_buffer_size(16 * 1024)
        .tls_config(tls.clone())
        .user_agent(settings.user_agent)
        .build();
    // The marker tells a stale pooled connection from a fresh one, and connections are
    // probed once per reuse rather than twice (see `reuse`); the absolute-form connector
    // sends plain-http targets to an HTTP proxy without CONNECT.
    let connector = reuse::Marker(Arc::clone(opened))
        .chain(AbsoluteFormConnector::default())
        .chain(SocksConnector::default())
        .chain(ConnectProxyConnector::default())
        .chain(TcpConnector::default())
        .chain(reuse::ProbeOnReuse)
        .chain(RustlsConnector::default());
    Ok(ureq::Agent::with_parts(
        agent_config,
        connector,
        CachingResolver::default(),
    ))
}

/// Every certificate in a PEM file; a file without one is an error, as is one that
/// cannot be read or parsed.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, Error> {
    let fix = "give a PEM file with at least one CERTIFICATE block";
    let pem = std::fs::read(path).map_err(|e| {
        Error::setting(
            Setting::CaCert,
            format!("cannot read CA file '{}': {e}; {fix}", path.display()),
        )
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::setting(
                    Setting::CaCert,
                    format!("CA file '{}' is not valid PEM: {e}; {fix}", path.display()),
                ));
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::config(format!(
            "CA file '{}' holds no certificate; {fix}",
            path.display()
        )));
    }
    // rustls skips certificates it cannot parse as trust anchors; refuse them here instead.
    for c in &certs {
        let der = rustls::pki_types::CertificateDer::from(c.der());
        let mut store = rustls::RootCertStore::empty();
        if store.add(der).is_err() {
            return Err(Error::config(format!(
                "CA file '{}' holds a certificate that is not a valid X.509 CA certificate; {fix}",
                path.display()
            )));
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CipherSuite;

    #[test]
    fn crypto_provider_offers_aes_128_gcm_first_and_ring_s_suites_only() {
        let ours: Vec<CipherSuite> = crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(ours[0], CipherSuite::TLS13_AES_128_GCM_SHA256);
        let mut ours_sorted: Vec<u16> = ours.iter().map(|s| u16::from(*s)).collect();
        let mut ring: Vec<u16> = rustls::crypto::ring::default_provider()
            .cipher_suites
            .iter()
            .map(|s| u16::from(s.suite()))
            .collect();
        ours_sorted.sort_unstable();
        ring.sort_unstable();
        assert_eq!(ours_sorted, ring);
    }
}
