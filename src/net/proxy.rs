//! Which proxy, if any, carries the request for one URL — decided the way curl decides.
//!
//! fetchpool chooses a proxy per target (and so per redirect hop) instead of
//! handing ureq one proxy for every scheme: ureq's `Proxy::try_from_env` takes
//! the first of `ALL_PROXY`/`HTTPS_PROXY`/`HTTP_PROXY` for all schemes and its
//! `NO_PROXY` matching differs from curl's. This module owns the rules
//! (explicit `--proxy` and `--no-proxy`, the environment, curl's `NO_PROXY`
//! matching) and the validated [`ProxyChoice`] that comes out of them. It reads
//! the environment only through [`ProxySettings::from_env`] or a lookup closure
//! given to [`ProxySettings::with_env`].
//!
//! The rules, with their sources:
//! - `--proxy URL` wins over the environment; `--proxy ''` means "no proxy" and
//!   turns the environment off (curl's `-x ""`, `lib/url.c`).
//! - Otherwise `<scheme>_proxy` in lowercase, then in uppercase, then
//!   `all_proxy`, then `ALL_PROXY`; the first one set wins, and a set but empty
//!   variable means "no proxy" (curl's `detect_proxy()` in `lib/url.c`).
//! - `HTTP_PROXY` in uppercase: curl never reads it, because under CGI the
//!   request header `Proxy:` arrives as `HTTP_PROXY` and would let a client pick
//!   the proxy ("httpoxy"). fetchpool reads it only when `REQUEST_METHOD` is
//!   unset, i.e. when not running as a CGI script (what Go's `net/http` does):
//!   the risk curl guards against stays closed, and a user who exported only
//!   `HTTP_PROXY` is not silently sent around the proxy.
//! - `--no-proxy LIST` overrides `no_proxy`, which overrides `NO_PROXY`; the
//!   list applies to explicit and environment proxies alike, as in curl.
//! - A proxy URL without a scheme is `http://`; the port defaults to 443 for
//!   `https://` proxies and 1080 for the others (curl's `CURLOPT_PROXYPORT`).
//!
//! [`NoProxy`] documents the matching rules.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use ureq::http::Uri;

/// The protocol spoken to the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyScheme {
    /// Plain HTTP to the proxy: `CONNECT` for https targets, absolute-form
    /// requests for http targets (see `crate::net::absolute_form`).
    Http,
    /// TLS to the proxy, then as [`ProxyScheme::Http`].
    Https,
    /// SOCKS5; the target's name is resolved locally.
    Socks5,
    /// SOCKS5; the proxy resolves the target's name.
    Socks5h,
}

impl ProxyScheme {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            "socks5" => Some(Self::Socks5),
            "socks5h" => Some(Self::Socks5h),
            _ => None,
        }
    }

    /// The scheme as written in a proxy URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Socks5 => "socks5",
            Self::Socks5h => "socks5h",
        }
    }

    /// curl's default ports: 443 for https proxies, 1080 for all others.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Https => 443,
            _ => 1080,
        }
    }

    fn to_ureq(self) -> ureq::ProxyProtocol {
        match self {
            Self::Http => ureq::ProxyProtocol::Http,
            Self::Https => ureq::ProxyProtocol::Https,
            Self::Socks5 => ureq::ProxyProtocol::Socks5,
            Self::Socks5h => ureq::ProxyProtocol::Socks5h,
        }
    }
}

impl fmt::Display for ProxyScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a proxy URL was refused. The caller wraps it in its configuration error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyError {
    /// Where the URL came from: `proxy` (the configured proxy) or the variable's name.
    pub source: String,
    /// What is wrong, naming the fix where there is one. Never contains a password.
    pub message: String,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

impl std::error::Error for ProxyError {}

/// One validated proxy: scheme, host, port and optional credentials.
///
/// `Display` and `Debug` show [`ProxyChoice::redacted`], never the password.
///
/// ```
/// use fetchpool::proxy::{ProxyChoice, ProxyScheme};
/// let p = ProxyChoice::parse("http://ann:s3cret@proxy.example:3128").unwrap();
/// assert_eq!(p.scheme(), ProxyScheme::Http);
/// assert_eq!(p.port(), 3128);
/// assert_eq!(p.to_string(), "http://ann:***@proxy.example:3128");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyChoice {
    scheme: ProxyScheme,
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    /// Built once so that each request clones an `Arc`, and so that equal
    /// choices give equal ureq pool keys.
    ureq: ureq::Proxy,
}

impl ProxyChoice {
    /// Parses `[scheme://][user[:password]@]host[:port][/]`.
    ///
    /// The scheme defaults to `http`; user and password are percent-decoded;
    /// IPv6 hosts go in brackets.
    pub fn parse(url: &str) -> Result<Self, ProxyError> {
        Self::parse_from(url, "proxy")
    }

    fn parse_from(url: &str, source: &str) -> Result<Self, ProxyError> {
        let err = |message: String| ProxyError {
            source: source.to_string(),
            message,
        };
        let url = url.trim();
        let (scheme, rest) = match url.find("://") {
            Some(i) => {
                let s = &url[..i];
                let scheme = ProxyScheme::parse(s).ok_or_else(|| {
                    err(format!(
                        "unsupported proxy scheme '{s}' (use http://, https://, socks5:// or socks5h://)"
                    ))
                })?;
                (scheme, &url[i + 3..])
            }
            None => (ProxyScheme::Http, url),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !path.is_empty() && path != "/" {
            return Err(err(format!(
                "a proxy URL has no path or query, found '{path}'"
            )));
        }
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport).map_err(err)?;
        if host.is_empty() {
            return Err(err(format!(
                "proxy URL has no host (expected {scheme}://HOST[:PORT])"
            )));
        }
        let port = port.unwrap_or(scheme.default_port());
        let (username, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.find(':') {
                    Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                    None => (ui, None),
                };
                let u = crate::url::percent_decode_utf8(u).ok_or_else(|| {
                    err("proxy user name is not valid percent-encoded UTF-8".into())
                })?;
                let p = p
                    .map(|p| {
                        crate::url::percent_decode_utf8(p).ok_or_else(|| {
                            err("proxy password is not valid percent-encoded UTF-8".into())
                        })
                    })
                    .transpose()?;
                (Some(u), p)
            }
        };

        let mut builder = ureq::Proxy::builder(scheme.to_ureq())
            .host(&host)
            .port(port);
        if let Some(u) = &username {
            builder = builder.username(u);
        }
        if let Some(p) = &password {
            builder = builder.password(p);
        }
        let ureq = builder
            .build()
            .map_err(|e| err(format!("ureq refused the proxy: {e}")))?;

        Ok(ProxyChoice {
            scheme,
            host,
            port,
            username,
            password,
            ureq,
        })
    }

    /// The protocol spoken to the proxy.
    pub fn scheme(&self) -> ProxyScheme {
        self.scheme
    }

    /// The proxy's host; IPv6 addresses keep their brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port, defaulted as curl does when the URL has none.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The decoded user name, if the URL had credentials.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The decoded password. Keep it out of logs: use [`ProxyChoice::redacted`].
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The URL with the password replaced by `***`: safe for logs and reports.
    pub fn redacted(&self) -> String {
        let creds = match (&self.username, &self.password) {
            (Some(u), Some(_)) => format!("{u}:***@"),
            (Some(u), None) => format!("{u}@"),
            _ => String::new(),
        };
        format!("{}://{}{}:{}", self.scheme, creds, self.host, self.port)
    }

    /// The same proxy as ureq's type, for `ConfigBuilder::proxy`. Cheap (an `Arc` clone).
    pub(crate) fn to_ureq(&self) -> ureq::Proxy {
        self.ureq.clone()
    }
}

impl fmt::Display for ProxyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for ProxyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyChoice({})", self.redacted())
    }
}

/// Splits `host[:port]` or `[v6][:port]`.
fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("unclosed '[' in proxy host '{s}'"))?;
        let v6 = &rest[..end];
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("'{v6}' is not an IPv6 address"))?;
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected '{after}' after proxy host")),
        };
        (format!("[{v6}]"), port)
    } else {
        match s.rfind(':') {
            Some(i) => (s[..i].to_string(), Some(&s[i + 1..])),
            None => (s.to_string(), None),
        }
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if !host.starts_with('[') && !host.chars().all(valid) {
        return Err(format!("'{host}' is not a valid proxy host name"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("proxy port '{p}' is not a number from 1 to 65535")),
        },
    };
    Ok((host, port))
}

/// A `NO_PROXY` list, matched with curl's rules (`lib/noproxy.c`, curl 7.86+).
///
/// - Entries are separated by commas and/or blanks; `*` alone matches every host.
/// - A name matches itself and its subdomains; a leading dot is optional and a
///   trailing dot ignored, in the entry and in the host: `example.com` and
///   `.example.com` both match `example.com` and `www.example.com`, never
///   `nonexample.com`. Case-insensitive.
/// - An IP host matches IP entries only (no DNS), exactly or by CIDR range
///   (`192.168.0.0/16`, `fe80::/10`); IPv6 entries are written without brackets.
///   A name entry never matches an IP host and vice versa (`localhost` does not
///   cover `127.0.0.1`).
/// - Ports: an entry matches its host on every port. curl has no `host:port`
///   entries: such an entry never matches there, nor here (a warning is logged).
///
/// Two deliberate differences from curl, both only where curl is accidental:
/// an explicit `/0` prefix matches the whole address family (curl treats `/0` as
/// "no prefix", i.e. an exact match), and IPv6 prefixes that are not a multiple
/// of 8 bits are compared bit by bit (curl's `Curl_cidr6_match` inverts the test
/// on the partial byte).
///
/// ```
/// let np = fetchpool::proxy::NoProxy::parse("example.com, 10.0.0.0/8");
/// assert!(np.matches("www.example.com") && np.matches("10.1.2.3"));
/// assert!(!np.matches("nonexample.com") && !np.matches("127.0.0.1"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    names: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    /// Parses a list; never fails (curl ignores what it can't match).
    pub fn parse(list: &str) -> Self {
        let mut np = NoProxy::default();
        // curl: the list is "*" exactly, or a list in which "*" is just a name.
        if list.trim() == "*" {
            np.all = true;
            return np;
        }
        for token in list.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
            let (addr, bits) = match token.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (token, None),
            };
            if let Ok(ip) = addr.parse::<IpAddr>() {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                match bits.map(str::parse::<u8>) {
                    None => np.nets.push((ip, max)),
                    Some(Ok(b)) if b <= max => np.nets.push((ip, b)),
                    // curl rejects a bad prefix length inside the match: never matches.
                    Some(_) => {
                        log::warn!("NO_PROXY entry '{token}' has an invalid prefix length; ignored")
                    }
                }
                continue;
            }
            let name = token.trim_end_matches('.');
            let name = name.strip_prefix('.').unwrap_or(name);
            if name.is_empty() {
                continue;
            }
            if let Some((_, port)) = name.rsplit_once(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
            {
                log::warn!(
                    "NO_PROXY entry '{token}' has a port: entries match a host on every port \
                     (as in curl), so this entry never matches; write it without ':{port}'"
                );
            }
            np.names.push(name.to_ascii_lowercase());
        }
        np
    }

    /// True when the list has no entry at all (an empty `--no-proxy ''`).
    pub fn is_empty(&self) -> bool {
        !self.all && self.names.is_empty() && self.nets.is_empty()
    }

    /// Whether `host` (a URL's host: a name, an IPv4 address or a bracketed or
    /// bare IPv6 address) bypasses the proxy.
    pub fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        if host.is_empty() {
            return false;
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self
                .nets
                .iter()
                .any(|&(net, bits)| ip_in_net(ip, net, bits));
        }
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        self.names.iter().any(|entry| {
            name == *entry
                || (name.len() > entry.len()
                    && name.ends_with(entry.as_str())
                    && name.as_bytes()[name.len() - entry.len() - 1] == b'.')
        })
    }
}

fn ip_in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => prefix_eq(&a.octets(), &n.octets(), bits),
        (IpAddr::V6(a), IpAddr::V6(n)) => prefix_eq(&a.octets(), &n.octets(), bits),
        _ => false,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] ^ b[full]) & mask == 0
}

/// The proxy rules for a run: explicit settings plus, when asked, the environment.
///
/// ```
/// use fetchpool::proxy::ProxySettings;
/// let env = |k: &str| match k {
///     "https_proxy" => Some("http://proxy.corp:3128".to_string()),
///     "NO_PROXY" => Some("internal.corp, 10.0.0.0/8".to_string()),
///     _ => None,
/// };
/// let s = ProxySettings::with_env(None, None, env).unwrap();
/// let url = "https://example.org/f".parse().unwrap();
/// assert_eq!(s.choose(&url).unwrap().host(), "proxy.corp");
/// assert!(s.choose(&"https://git.internal.corp/".parse().unwrap()).is_none());
/// assert!(s.choose(&"http://example.org/".parse().unwrap()).is_none()); // no http_proxy
/// ```
#[derive(Clone, Debug, Default)]
pub struct ProxySettings {
    http: Option<ProxyChoice>,
    https: Option<ProxyChoice>,
    no_proxy: NoProxy,
}

impl ProxySettings {
    /// No proxy at all: every request goes direct.
    pub fn direct() -> Self {
        Self::default()
    }

    /// From explicit settings only; the environment is not read.
    ///
    /// `proxy`: the proxy URL (`Some("")` means no proxy). `no_proxy`: a NO_PROXY-style host list.
    pub fn new(proxy: Option<&str>, no_proxy: Option<&str>) -> Result<Self, ProxyError> {
        Self::with_env(proxy, no_proxy, |_| None)
    }

    /// From explicit settings plus the process environment.
    pub fn from_env(proxy: Option<&str>, no_proxy: Option<&str>) -> Result<Self, ProxyError> {
        Self::with_env(proxy, no_proxy, |k| std::env::var(k).ok())
    }

    /// From explicit settings plus variables looked up with `env` (a test seam
    /// for [`ProxySettings::from_env`]). Every proxy URL that applies is
    /// validated here, so a bad variable fails before any download starts.
    pub fn with_env(
        proxy: Option<&str>,
        no_proxy: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ProxyError> {
        let no_proxy = match no_proxy {
            Some(list) => NoProxy::parse(list),
            None => env("no_proxy")
                .or_else(|| env("NO_PROXY"))
                .map(|l| NoProxy::parse(&l))
                .unwrap_or_default(),
        };
        if let Some(p) = proxy {
            let choice = if p.trim().is_empty() {
                None
            } else {
                Some(ProxyChoice::parse_from(p, "proxy")?)
            };
            return Ok(ProxySettings {
                http: choice.clone(),
                https: choice,
                no_proxy,
            });
        }
        let cgi = env("REQUEST_METHOD").is_some();
        let http_names: &[&str] = if cgi {
            &["http_proxy", "all_proxy", "ALL_PROXY"]
        } else {
            &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        };
        if cgi && env("HTTP_PROXY").is_some() {
            log::warn!(
                "HTTP_PROXY is ignored when REQUEST_METHOD is set (CGI, \"httpoxy\"); use http_proxy"
            );
        }
        let https_names = &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];
        Ok(ProxySettings {
            http: env_proxy(http_names, &env)?,
            https: env_proxy(https_names, &env)?,
            no_proxy,
        })
    }

    /// The proxy for `url`, or `None` to connect directly (no proxy configured
    /// for its scheme, `NO_PROXY` matched, or a scheme other than http/https).
    pub fn choose(&self, url: &Uri) -> Option<&ProxyChoice> {
        let proxy = match url.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => self.http.as_ref(),
            Some(s) if s.eq_ignore_ascii_case("https") => self.https.as_ref(),
            _ => None,
        }?;
        let host = url.host().unwrap_or("");
        if self.no_proxy.matches(host) {
            log::debug!("{host}: NO_PROXY matches, connecting directly");
            return None;
        }
        Some(proxy)
    }

    /// [`ProxySettings::choose`] for URL text; a URL that does not parse gets no proxy.
    pub fn proxy_for(&self, url: &str) -> Option<&ProxyChoice> {
        self.choose(&url.parse().ok()?)
    }

    /// The `NO_PROXY` list in force.
    pub fn no_proxy(&self) -> &NoProxy {
        &self.no_proxy
    }
}

/// The first variable of `names` that is set decides; empty means "no proxy".
fn env_proxy(
    names: &[&str],
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<ProxyChoice>, ProxyError> {
    for name in names {
        if let Some(v) = env(name) {
            if v.trim().is_empty() {
                return Ok(None);
            }
            return ProxyChoice::parse_from(&v, name).map(Some);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// curl's `tests/unit/unit1614.c` (the `Curl_check_noproxy` table as of curl
    /// 8.x, where a plain `example.com` also matches `www.example.com`; 7.86's
    /// table still said no), plus the examples of curl's `--noproxy` and
    /// `CURLOPT_NOPROXY` documentation.
    #[test]
    fn no_proxy_table_from_curl() {
        #[rustfmt::skip]
        let table: &[(&str, &str, bool)] = &[
            // unit1614.c
            ("www.example.com", "localhost,.example.com,.example.de", true),
            ("www.example.com.", "localhost,.example.com,.example.de", true),
            ("example.com", "localhost,.example.com,.example.de", true),
            ("example.com.", "localhost,.example.com,.example.de", true),
            ("www.example.com", "localhost,.example.com.,.example.de", true),
            ("www.example.com", "localhost,www.example.com.,.example.de", true),
            ("example.com", "localhost,example.com,.example.de", true),
            ("example.com.", "localhost,example.com,.example.de", true),
            ("nexample.com", "localhost,example.com,.example.de", false),
            ("www.example.com", "localhost,example.com,.example.de", true),
            ("127.0.0.1", "127.0.0.1,localhost", true),
            ("127.0.0.1", "127.0.0.1,localhost,", true),
            ("127.0.0.1", "127.0.0.1/8,localhost,", true),
            ("127.0.0.1", "127.0.0.1/28,localhost,", true),
            ("127.0.0.1", "127.0.0.1/31,localhost,", true),
            ("127.0.0.1", "localhost,127.0.0.1", true),
            ("localhost", "localhost,127.0.0.1", true),
            ("localhost", "127.0.0.1,localhost", true),
            ("foobar", "barfoo", false),
            ("foobar", "foobar", true),
            ("192.168.0.1", "foobar", false),
            ("192.168.0.1", "192.168.0.0/16", true),
            ("192.168.0.1", "192.168.0.0/24", true),
            ("192.168.0.1", "192.168.0.0/32", false),
            ("192.168.0.1", "192.168.0.0", false),
            ("192.168.1.1", "192.168.0.0/24", false),
            ("192.168.1.1", "foo, bar, 192.168.0.0/24", false),
            ("192.168.1.1", "foo, bar, 192.168.0.0/16", true),
            ("[::1]", "foo, bar, 192.168.0.0/16", false),
            ("[::1]", "foo, bar, ::1/64", true),
            ("bar", "foo, bar, ::1/64", true),
            ("BAr", "foo, bar, ::1/64", true),
            ("BAr", "foo,,,,,              bar, ::1/64", true),
            ("www.example.com", "foo, .example.com", true),
            ("www.example.com", "www2.example.com, .example.net", false),
            ("example.com", ".example.com, .example.net", true),
            ("nonexample.com", ".example.com, .example.net", false),
            // CURLOPT_NOPROXY: "ample.com" matches ample.com, ample.com:80 (any
            // port) and www.ample.com, not www.example.com or ample.com.org.
            ("ample.com", "ample.com", true),
            ("www.ample.com", "ample.com", true),
            ("www.example.com", "ample.com", false),
            ("ample.com.org", "ample.com", false),
            // --noproxy docs: local.com matches www.local.com, not www.notlocal.com.
            ("www.local.com", "local.com", true),
            ("www.notlocal.com", "local.com", false),
            // CURLOPT_NOPROXY: IPv6 entries without brackets.
            ("[::1]", "example.com,::1,localhost", true),
            ("::1", "example.com,::1,localhost", true),
            // CIDR (curl 7.86.0): "192.168.0.0/16" matches all of 192.168.*.
            ("192.168.254.3", "192.168.0.0/16", true),
            ("192.169.0.1", "192.168.0.0/16", false),
            // "*" alone matches everything; inside a list it is just a name.
            ("anything.example", "*", true),
            ("10.1.2.3", " * ", true),
            ("anything.example", "foo,*", false),
            // No DNS: a name entry does not cover its address and vice versa.
            ("127.0.0.1", "localhost", false),
            ("localhost", "127.0.0.1", false),
            // An entry with a port never matches (curl has no port entries).
            ("example.com", "example.com:8080", false),
            // Empty list: nothing bypasses.
            ("example.com", "", false),
        ];
        for &(host, list, want) in table {
            assert_eq!(
                NoProxy::parse(list).matches(host),
                want,
                "host {host:?} against {list:?}"
            );
        }
    }

    /// curl's CIDR checks (`Curl_cidr4_match` / `Curl_cidr6_match` in unit1614.c),
    /// with prefix 0 meaning "no prefix" there written here as no prefix.
    #[test]
    fn cidr_table_from_curl() {
        #[rustfmt::skip]
        let table: &[(&str, &str, bool)] = &[
            ("192.160.0.1", "192.160.0.1/33", false),
            ("192.160.0.1", "192.160.0.1/32", true),
            ("192.160.0.1", "192.160.0.1", true),
            ("192.160.0.1", "192.160.0.1/24", true),
            ("192.160.0.1", "192.160.0.1/26", true),
            ("192.160.0.1", "192.160.0.1/20", true),
            ("192.160.0.1", "192.160.0.1/18", true),
            ("192.160.0.1", "192.160.0.1/12", true),
            ("192.160.0.1", "192.160.0.1/8", true),
            ("192.160.0.1", "10.0.0.1/8", false),
            ("192.160.0.1", "10.0.0.1/32", false),
            ("192.160.0.1", "10.0.0.1", false),
            ("::1", "::1", true),
            ("::1", "::1/128", true),
            ("::1", "0:0::1/128", true),
            ("::1", "0:0::1/129", false),
            ("fe80::ab47:4396:55c9:8474", "fe80::ab47:4396:55c9:8474/64", true),
            // Bit-level prefixes (see the type's docs for the curl difference).
            ("fe80::1", "fe80::/10", true),
            ("fec0::1", "fe80::/10", false),
            ("10.200.0.1", "10.128.0.0/9", true),
            ("10.100.0.1", "10.128.0.0/9", false),
            ("1.2.3.4", "0.0.0.0/0", true),
            ("::1", "0.0.0.0/0", false),
        ];
        for &(ip, net, want) in table {
            assert_eq!(NoProxy::parse(net).matches(ip), want, "{ip} in {net}");
        }
    }

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn chosen(s: &ProxySettings, url: &str) -> Option<String> {
        s.choose(&url.parse().unwrap()).map(|p| p.to_string())
    }

    #[test]
    fn env_picks_per_scheme_like_curl() {
        let s = ProxySettings::with_env(
            None,
            None,
            env_of(&[
                ("http_proxy", "http://h:1"),
                ("HTTPS_PROXY", "http://s:2"),
                ("ALL_PROXY", "socks5h://a:3"),
            ]),
        )
        .unwrap();
        assert_eq!(chosen(&s, "http://x/").as_deref(), Some("http://h:1"));
        assert_eq!(chosen(&s, "https://x/").as_deref(), Some("http://s:2"));
        assert_eq!(chosen(&s, "ftp://x/"), None);
    }

    #[test]
    fn env_lowercase_wins_and_all_proxy_is_the_fallback() {
        let s = ProxySettings::with_env(
            None,
            None,
            env_of(&[
                ("https_proxy", "http://lower:1"),
                ("HTTPS_PROXY", "http://upper:2"),
                ("all_proxy", "http://all:3"),
                ("ALL_PROXY", "http://ALL:4"),
            ]),
        )
        .unwrap();
        assert_eq!(chosen(&s, "https://x/").as_deref(), Some("http://lower:1"));
        assert_eq!(chosen(&s, "http://x/").as_deref(), Some("http://all:3"));
    }

    #[test]
    fn uppercase_http_proxy_is_read_unless_cgi() {
        let plain = ProxySettings::with_env(None, None, env_of(&[("HTTP_PROXY", "http://p:1")]));
        assert_eq!(
            chosen(&plain.unwrap(), "http://x/").as_deref(),
            Some("http://p:1")
        );
        // httpoxy: under CGI the Proxy: request header becomes HTTP_PROXY.
        let cgi = ProxySettings::with_env(
            None,
            None,
            env_of(&[("HTTP_PROXY", "http://evil:1"), ("REQUEST_METHOD", "GET")]),
        );
        assert_eq!(chosen(&cgi.unwrap(), "http://x/"), None);
    }

    #[test]
    fn empty_variable_means_no_proxy_for_that_scheme() {
        let s = ProxySettings::with_env(
            None,
            None,
            env_of(&[("https_proxy", ""), ("ALL_PROXY", "http://all:1")]),
        )
        .unwrap();
        assert_eq!(chosen(&s, "https://x/"), None);
        assert_eq!(chosen(&s, "http://x/").as_deref(), Some("http://all:1"));
    }

    #[test]
    fn explicit_proxy_overrides_env_and_empty_disables_it() {
        let env = env_of(&[("https_proxy", "http://env:1"), ("no_proxy", "x")]);
        let s = ProxySettings::with_env(Some("http://flag:2"), None, &env).unwrap();
        assert_eq!(chosen(&s, "https://y/").as_deref(), Some("http://flag:2"));
        assert_eq!(chosen(&s, "http://y/").as_deref(), Some("http://flag:2"));
        // NO_PROXY from the environment applies to --proxy too (as in curl).
        assert_eq!(chosen(&s, "https://x/"), None);
        let off = ProxySettings::with_env(Some(""), None, &env).unwrap();
        assert_eq!(chosen(&off, "https://y/"), None);
    }

    #[test]
    fn no_proxy_flag_overrides_env_even_when_empty() {
        let env = env_of(&[("https_proxy", "http://p:1"), ("NO_PROXY", "*")]);
        assert_eq!(
            chosen(
                &ProxySettings::with_env(None, None, &env).unwrap(),
                "https://a/"
            ),
            None
        );
        let s = ProxySettings::with_env(None, Some(""), &env).unwrap();
        assert_eq!(chosen(&s, "https://a/").as_deref(), Some("http://p:1"));
        let env2 = env_of(&[
            ("https_proxy", "http://p:1"),
            ("no_proxy", "a"),
            ("NO_PROXY", "*"),
        ]);
        let s = ProxySettings::with_env(None, None, &env2).unwrap();
        assert_eq!(chosen(&s, "https://b/").as_deref(), Some("http://p:1"));
    }

    #[test]
    fn bad_proxy_urls_have_clear_errors() {
        let e = ProxyChoice::parse("ftp://p:1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy: unsupported proxy scheme 'ftp' (use http://, https://, socks5:// or socks5h://)"
        );
        let e = ProxyChoice::parse("http://:3128").unwrap_err();
        assert!(e.message.contains("no host"), "{e}");
        let e = ProxyChoice::parse("http://p:99999").unwrap_err();
        assert!(e.message.contains("port '99999'"), "{e}");
        let e = ProxyChoice::parse("http://p:1/path").unwrap_err();
        assert!(e.message.contains("no path"), "{e}");
        let e = ProxySettings::with_env(None, None, env_of(&[("https_proxy", "gopher://g")]))
            .unwrap_err();
        assert_eq!(e.source, "https_proxy");
        assert!(ProxyChoice::parse("socks4://p").is_err());
    }

    #[test]
    fn parses_defaults_credentials_and_ipv6() {
        let p = ProxyChoice::parse("proxy.local").unwrap();
        assert_eq!(
            (p.scheme(), p.host(), p.port()),
            (ProxyScheme::Http, "proxy.local", 1080)
        );
        let p = ProxyChoice::parse("HTTPS://proxy.local/").unwrap();
        assert_eq!((p.scheme(), p.port()), (ProxyScheme::Https, 443));
        let p = ProxyChoice::parse("socks5h://u%40x:p%3Aw@[::1]:9050").unwrap();
        assert_eq!(p.host(), "[::1]");
        assert_eq!(p.port(), 9050);
        assert_eq!(p.username(), Some("u@x"));
        assert_eq!(p.password(), Some("p:w"));
        let u = p.to_ureq();
        assert_eq!(u.protocol(), ureq::ProxyProtocol::Socks5h);
        assert_eq!(
            (u.port(), u.username(), u.password()),
            (9050, Some("u@x"), Some("p:w"))
        );
        assert!(!u.resolve_target());
        assert!(
            ProxyChoice::parse("socks5://h")
                .unwrap()
                .to_ureq()
                .resolve_target()
        );
    }

    #[test]
    fn password_never_shown() {
        let p = ProxyChoice::parse("http://ann:hunter2@p:8080").unwrap();
        for shown in [p.to_string(), format!("{p:?}"), p.redacted()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("ann:***@p:8080"), "{shown}");
        }
        let s = ProxySettings::new(Some("http://ann:hunter2@p:8080"), None).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
