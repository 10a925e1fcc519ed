//! What to do next: one line of advice for a failure, chosen by its error kind and
//! message, printed under that kind in the final summary.
//!
//! Hints live here, in the binary, rather than in the library's errors: they name
//! command-line flags, and the library knows nothing of flags.

use fetchpool::ErrorKind;

/// A failure worth advising on: its kind, report message and URL.
pub struct Failure<'a> {
    pub kind: ErrorKind,
    pub message: &'a str,
    pub url: &'a str,
}

/// Advice for `f`, or `None` when the message already says it all.
pub fn hint(f: &Failure<'_>, proxy: Option<&str>) -> Option<String> {
    let m = f.message.to_ascii_lowercase();
    let (host, port) = host_port(f.url);
    // A proxy that answers CONNECT with a status refused the tunnel; ureq words it
    // "proxy server responded 403/…", under kind proxy or (before issue 4's mapping)
    // inside a network error.
    let refused_connect = (f.kind == ErrorKind::Proxy || m.contains("connect proxy failed"))
        && m.contains("proxy server responded");
    if refused_connect {
        let proxy = proxy.map_or_else(|| "the proxy".to_string(), |p| format!("proxy {p}"));
        return Some(format!(
            "{proxy} refused CONNECT to {host}:{port}; many proxies allow CONNECT only to port \
             443: allow port {port} there (Squid: SSL_ports; tinyproxy: ConnectPort) or \
             exclude {host} with NO_PROXY"
        ));
    }
    Some(match f.kind {
        ErrorKind::Tls if m.contains("unknownissuer") || m.contains("unknown issuer") => {
            format!(
                "{host} presents a certificate no trusted CA signed: if it is your own CA, \
                 pass it with --cacert FILE (PEM)"
            )
        }
        ErrorKind::Tls if m.contains("notvalidforname") || m.contains("not valid for name") => {
            format!("{host}'s certificate is for another name: check the URL's host name")
        }
        ErrorKind::Tls if m.contains("expired") || m.contains("notvalidyet") => {
            "the certificate is expired or not yet valid: check this machine's clock".into()
        }
        ErrorKind::Tls => {
            "TLS failed: if the server uses a private CA, pass it with --cacert FILE (PEM)".into()
        }
        ErrorKind::Proxy => {
            let proxy = proxy.map_or_else(|| "the proxy".to_string(), |p| format!("proxy {p}"));
            format!("check {proxy}: is it running, reachable, and does it accept this client?")
        }
        ErrorKind::Connect if m.contains("dns") || m.contains("not found") => {
            format!("{host} does not resolve: check the URL's host name and DNS")
        }
        ErrorKind::Connect => {
            format!("nothing answers at {host}:{port}: check the URL and whether the server is up")
        }
        ErrorKind::Timeout if m.contains("connect") => {
            "raise --connect-timeout, or check the network path to the host".into()
        }
        ErrorKind::Timeout if m.contains("min_rate") => {
            "the server sent slower than --min-rate: lower it or widen --min-rate-window".into()
        }
        ErrorKind::Timeout if m.contains("deadline") => {
            "the job's whole budget ran out: raise --max-time".into()
        }
        ErrorKind::Timeout => {
            "the server stopped sending: raise --idle-timeout if it is just slow".into()
        }
        ErrorKind::Http if m.contains("404") || m.contains("410") => {
            "the server has no such file: check the URLs in the list".into()
        }
        ErrorKind::Http if m.contains("401") || m.contains("403") => {
            "access denied: add credentials with -H 'Authorization: …'".into()
        }
        ErrorKind::Http if m.contains("429") || m.contains("503") => {
            "the server is shedding load: lower -j / --per-host, or add --limit-rate".into()
        }
        ErrorKind::Checksum if m.contains("memory limit") => {
            "the response is larger than a memory job may hold: give the job a path so it \
             is written to a file"
                .into()
        }
        // A resumed body that fails its check is fetched again from zero before it
        // fails, so what is left is a whole fresh download that differs.
        ErrorKind::Checksum => {
            "a fresh download (from byte 0) differs from the list's sha256 or size: the \
             list is out of date, or the server's copy changed or is damaged"
                .into()
        }
        ErrorKind::Io => "check free space and permissions under --output-dir".into(),
        ErrorKind::Dependency => {
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

    fn f<'a>(kind: ErrorKind, message: &'a str, url: &'a str) -> Failure<'a> {
        Failure { kind, message, url }
    }

    #[test]
    fn unknown_issuer_suggests_cacert() {
        let h = hint(
            &f(
                ErrorKind::Tls,
                "TLS failed: invalid peer certificate: UnknownIssuer",
                "https://h:8443/a",
            ),
            None,
        )
        .unwrap();
        assert!(h.contains("--cacert"), "{h}");
        assert!(h.contains("h presents"), "{h}");
    }

    #[test]
    fn refused_connect_names_the_proxy_and_the_port() {
        let h = hint(
            &f(
                ErrorKind::Proxy,
                "proxy error: CONNECT failed: proxy server responded 403/403",
                "http://files:8080/a",
            ),
            Some("http://squid:3128"),
        )
        .unwrap();
        assert!(
            h.contains("proxy http://squid:3128 refused CONNECT to files:8080"),
            "{h}"
        );
        assert!(h.contains("allow port 8080"), "{h}");
    }

    #[test]
    fn an_unreachable_proxy_is_not_called_a_refusal() {
        let h = hint(
            &f(
                ErrorKind::Proxy,
                "proxy error: CONNECT failed: connecting to http://p:3128: connection refused",
                "https://files/a",
            ),
            Some("http://p:3128"),
        )
        .unwrap();
        assert!(
            h.starts_with("check proxy http://p:3128: is it running"),
            "{h}"
        );
    }

    #[test]
    fn checksum_hints_blame_a_fresh_download_or_the_memory_limit_not_a_splice() {
        let h = |m| hint(&f(ErrorKind::Checksum, m, "http://h/a"), None).unwrap();
        let fresh = h("checksum mismatch: expected 1000 bytes, got more than 1000 bytes");
        assert!(
            fresh.starts_with("a fresh download (from byte 0) differs"),
            "{fresh}"
        );
        let memory = h(
            "checksum mismatch: expected at most 1000 bytes (the memory limit; write the body \
             to a file instead), got more than 1000 bytes (the rest was not read)",
        );
        assert!(memory.contains("give the job a path"), "{memory}");
    }

    #[test]
    fn ureqs_connect_refusal_is_recognised_whatever_its_kind() {
        let h = hint(
            &f(
                ErrorKind::Network,
                "connection broke: CONNECT proxy failed: proxy server responded 403/403",
                "https://files.example:8443/a",
            ),
            Some("http://proxy:3128"),
        )
        .unwrap();
        assert!(
            h.starts_with("proxy http://proxy:3128 refused CONNECT to files.example:8443;"),
            "{h}"
        );
    }
}
