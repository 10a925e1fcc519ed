//! What to do next, and the library's messages in the command line's terms: advice for a
//! failure and the flag behind a setting, both chosen by the error's variant.
//!
//! Hints live here, in the binary, rather than in the library's errors: they name
//! command-line flags, and the library knows nothing of flags. They are picked by
//! matching [`Error`] variants and their typed fields, never by the wording of a message.

use fetchpool::{DigestSource, Error, RedirectReason, Setting, TimeoutPhase, TlsReason};

/// The flag (or variable) a setting is given with on the command line.
pub fn flag(setting: Setting) -> &'static str {
    match setting {
        Setting::Workers => "-j",
        Setting::OutputDir => "-o",
        Setting::CaCert => "--cacert",
        Setting::SystemRoots => "--ca-native",
        Setting::ClientCert => "--cert",
        Setting::ClientKey => "--key",
        Setting::Proxy => "--proxy",
        Setting::Shard => "--shard",
        Setting::ShardCount => "--shard-count",
        _ => "--help",
    }
}

/// `e` in the command line's terms: the library's message, with the flag that sets what
/// it names. Reports, failure lines and configuration errors print this.
pub fn message(e: &Error) -> String {
    match e {
        Error::Config {
            setting: Some(setting),
            origin: None,
            ..
        } => format!("{}: {e}", flag(*setting)),
        Error::Redirect {
            reason: RedirectReason::TooMany,
            ..
        } => format!("{e}; raise --max-redirects if this is expected"),
        Error::Redirect {
            reason: RedirectReason::Downgrade,
            ..
        } => format!("{e}; pass --allow-downgrade to follow it"),
        Error::Tls {
            reason: TlsReason::UnknownIssuer,
            ..
        } => e.to_string().replacen(
            "unknown issuer; trust its CA",
            "unknown issuer; trust its CA with --cacert FILE",
            1,
        ),
        _ => e.to_string(),
    }
}

/// Advice for a failure `e` of the job for `url`, or `None` when the message already says
/// it all. `proxy` names the proxy the job went through, when one did.
pub fn hint(e: &Error, url: &str, proxy: Option<&str>) -> Option<String> {
    let (host, port) = host_port(url);
    let the_proxy = || proxy.map_or_else(|| "the proxy".to_string(), |p| format!("proxy {p}"));
    Some(match e {
        Error::Proxy {
            refused_connect: true,
            ..
        } => format!(
            "{} refused CONNECT to {host}:{port}; many proxies allow CONNECT only to port \
             443: allow port {port} there (Squid: SSL_ports; tinyproxy: ConnectPort) or \
             exclude {host} with NO_PROXY",
            the_proxy()
        ),
        Error::Proxy { .. } => format!(
            "check {}: is it running, reachable, and does it accept this client?",
            the_proxy()
        ),
        Error::Tls { reason, .. } => match reason {
            TlsReason::UnknownIssuer => format!(
                "{host} presents a certificate no trusted CA signed: if it is your own CA, \
                 pass it with --cacert FILE (PEM) or add it to the system's trust store"
            ),
            TlsReason::ClientCertRequired => format!(
                "{host} asks for a client certificate: give it with --cert FILE [--key FILE] \
                 (PEM)"
            ),
            TlsReason::ClientCertRefused => format!(
                "{host} refused the client certificate: check that --cert is one its CA \
                 issued, and not expired"
            ),
            TlsReason::NameMismatch => {
                format!("{host}'s certificate is for another name: check the URL's host name")
            }
            TlsReason::Expired | TlsReason::NotValidYet => {
                "the certificate is expired or not yet valid: check this machine's clock".into()
            }
            _ => "TLS failed: if the server uses a private CA, pass it with --cacert FILE (PEM)"
                .into(),
        },
        Error::HostNotFound => {
            format!("{host} does not resolve: check the URL's host name and DNS")
        }
        Error::Connect { .. } => {
            format!("nothing answers at {host}:{port}: check the URL and whether the server is up")
        }
        Error::Timeout { phase, .. } => match phase {
            TimeoutPhase::Connect => {
                "raise --connect-timeout, or check the network path to the host".into()
            }
            TimeoutPhase::MinRate => {
                "the server sent slower than --min-rate: lower it or widen --min-rate-window".into()
            }
            TimeoutPhase::Deadline => "the job's whole budget ran out: raise --max-time".into(),
            _ => "the server stopped sending: raise --idle-timeout if it is just slow".into(),
        },
        Error::Status { code, .. } => match code {
            404 | 410 => "the server has no such file: check the URLs in the list".into(),
            401 | 403 => "access denied: add credentials with -H 'Authorization: …'".into(),
            429 | 503 => {
                "the server is shedding load: lower -j / --per-host, or add --limit-rate".into()
            }
            _ => return None,
        },
        Error::TooLarge { .. } => "the response is larger than a memory job may hold: raise \
                                   --memory-limit, or give the job a path so it is written \
                                   to a file"
            .into(),
        // A resumed body that fails its check is fetched again from zero before it
        // fails, so what is left is a whole fresh download that differs.
        Error::Checksum { .. } => "a fresh download (from byte 0) differs from the list's \
                                   sha256 or size: the list is out of date, or the server's \
                                   copy changed or is damaged"
            .into(),
        Error::Digest { source, .. } => match source {
            DigestSource::List => "a fresh download (from byte 0) differs from the list's \
                                   checksum: the list is out of date, or the server's copy \
                                   changed or is damaged"
                .into(),
            DigestSource::Etag => "the body is not the MD5 its ETag names: the copy is damaged, \
                                   or the store's ETags are not MD5s (drop --etag-md5)"
                .into(),
            _ => "the body differs from the digest the server announced for it: the server's \
                  copy is damaged or changed during the transfer; put a checksum in the list \
                  to decide"
                .into(),
        },
        Error::Io { .. } => "check free space and permissions under --output-dir".into(),
        Error::Dependency { .. } => {
            "these jobs wait for jobs that failed; fixing those retries both".into()
        }
        _ => return None,
    })
}

/// `host` and port of an absolute URL, the port defaulted by scheme.
fn host_port(url: &str) -> (String, u16) {
    match url.parse::<ureq::http::Uri>() {
        Ok(uri) => {
            let default = if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            };
            (
                uri.host().unwrap_or("the host").to_string(),
                uri.port_u16().unwrap_or(default),
            )
        }
        Err(_) => ("the host".into(), 80),
    }
}

/// The proxy the environment names for `url` (curl's variables), its password hidden;
/// only used to word a hint, never to route.
pub fn env_proxy(url: &str) -> Option<String> {
    // The library's own reading of the environment (CGI and `NO_PROXY` rules included),
    // so a hint never names a proxy the run did not use.
    let settings = fetchpool::proxy::ProxySettings::from_env(None, None).ok()?;
    settings.proxy_for(url).map(|p| p.redacted())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unknown_issuer_suggests_cacert() {
        let e = Error::tls(
            TlsReason::UnknownIssuer,
            "invalid peer certificate: UnknownIssuer",
        );
        let h = hint(&e, "https://h:8443/a", None).unwrap();
        assert!(h.contains("--cacert"), "{h}");
        assert!(h.contains("h presents"), "{h}");
    }

    fn refused(message: &str) -> Error {
        Error::Proxy {
            message: message.into(),
            refused_connect: true,
        }
    }

    #[test]
    fn refused_connect_names_the_proxy_and_the_port() {
        let e = refused("CONNECT failed: proxy server responded 403/403");
        let h = hint(&e, "http://files:8080/a", Some("http://squid:3128")).unwrap();
        assert!(
            h.contains("proxy http://squid:3128 refused CONNECT to files:8080"),
            "{h}"
        );
        assert!(h.contains("allow port 8080"), "{h}");
    }

    #[test]
    fn an_unreachable_proxy_is_not_called_a_refusal() {
        let e = Error::proxy("CONNECT failed: connecting to http://p:3128: connection refused");
        let h = hint(&e, "https://files/a", Some("http://p:3128")).unwrap();
        assert!(
            h.starts_with("check proxy http://p:3128: is it running"),
            "{h}"
        );
    }

    #[test]
    fn checksum_hints_blame_a_fresh_download_or_the_memory_limit_not_a_splice() {
        let h = |e: Error| hint(&e, "http://h/a", None).unwrap();
        let fresh = h(Error::Checksum {
            expected: "1000 bytes".into(),
            actual: "more than 1000 bytes".into(),
        });
        assert!(
            fresh.starts_with("a fresh download (from byte 0) differs"),
            "{fresh}"
        );
        let memory = h(Error::too_large(1000, None));
        assert!(memory.contains("give the job a path"), "{memory}");
    }

    #[test]
    fn a_refused_connect_to_an_https_port_names_that_port() {
        let e = refused(
            "proxy http://proxy:3128: CONNECT proxy failed: proxy server responded 403/403",
        );
        let h = hint(
            &e,
            "https://files.example:8443/a",
            Some("http://proxy:3128"),
        )
        .unwrap();
        assert!(
            h.starts_with("proxy http://proxy:3128 refused CONNECT to files.example:8443;"),
            "{h}"
        );
    }

    #[test]
    fn hints_follow_the_variant_not_the_wording() {
        // A message that reads like another failure changes nothing: the variant decides.
        let e = Error::Connect {
            message: "dns not found 404 min_rate deadline".into(),
            source: None,
        };
        let h = hint(&e, "http://h:81/a", None).unwrap();
        assert_eq!(
            h,
            "nothing answers at h:81: check the URL and whether the server is up"
        );
        let h = hint(&Error::HostNotFound, "http://h/a", None).unwrap();
        assert_eq!(h, "h does not resolve: check the URL's host name and DNS");
        let e = Error::Timeout {
            phase: TimeoutPhase::Deadline,
            limit: Some(Duration::from_secs(5)),
        };
        assert_eq!(
            hint(&e, "http://h/a", None).unwrap(),
            "the job's whole budget ran out: raise --max-time"
        );
    }

    #[test]
    fn messages_name_the_flag_of_the_setting() {
        let e = Error::setting(
            Setting::ShardCount,
            "found SLURM_ARRAY_TASK_ID but no count",
        );
        assert_eq!(
            message(&e),
            "--shard-count: found SLURM_ARRAY_TASK_ID but no count"
        );
        let e = Error::Redirect {
            message: "from https to plain http (http://h/a), which is followed only when \
                      downgrades are allowed"
                .into(),
            reason: RedirectReason::Downgrade,
        };
        assert!(message(&e).ends_with("; pass --allow-downgrade to follow it"));
    }
}
