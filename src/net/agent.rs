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
//! TLS is rustls with Mozilla's roots (ureq's default). Extra CA files replace that
//! default with the same roots as whole certificates plus the files' certificates,
//! because ureq's [`RootCerts`] is either "the built-in roots" or "exactly these".

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
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
    /// Connections per host at most.
    pub(crate) per_host: usize,
    /// Extra PEM files of trusted certificates.
    pub(crate) ca_certs: &'a [PathBuf],
    /// Time to open a connection.
    pub(crate) connect_timeout: Duration,
    /// Time a read or a write may wait.
    pub(crate) idle_timeout: Duration,
    /// The `User-Agent` header's value.
    pub(crate) user_agent: &'a str,
}

/// The shared agent; `opened` is the pool's record of which threads opened a connection
/// (see [`reuse`]).
pub(crate) fn build(
    settings: &Settings<'_>,
    opened: &Arc<reuse::Opened>,
) -> Result<ureq::Agent, Error> {
    let idle = settings.workers.max(settings.per_host).max(4);
    let mut tls = TlsConfig::builder();
    if !settings.ca_certs.is_empty() {
        let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        for path in settings.ca_certs {
            roots.extend(read_ca_file(path)?);
        }
        tls = tls.root_certs(RootCerts::Specific(Arc::new(roots)));
    }
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
        .tls_config(tls.build())
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
