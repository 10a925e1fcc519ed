//! URL text: the per-host key, the resource key and percent-decoding, each written once
//! and read by the plan check, the scheduler, the attempt, the resume path and the proxy
//! settings. URLs are scanned as text rather than parsed: these run once per job or per
//! hop, and a scan cannot disagree with itself.

/// The host part a per-host limit applies to: `scheme://host:port`, lowercase.
pub(crate) fn host_key(url: &str) -> String {
    let mut key = String::new();
    write_host_key(url, &mut key);
    key
}

/// Writes the key of `url`'s host into `out` (cleared first) as `scheme://host:port`,
/// lowercase, with the scheme's default port filled in: jobs with one key share the
/// per-host limit. Scans the URL rather than parsing it, since it runs once per job on
/// the scheduler's thread; a URL without `://` is its own key.
pub(crate) fn write_host_key(url: &str, out: &mut String) {
    out.clear();
    let Some((scheme, rest)) = url.split_once("://") else {
        out.push_str(url);
        return;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.strip_prefix('[') {
        // An IPv6 literal keeps its brackets, as URIs write it.
        Some(v6) => match v6.split_once(']') {
            Some((addr, tail)) => (&hostport[..addr.len() + 2], tail.strip_prefix(':')),
            None => (hostport, None),
        },
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    for c in scheme.chars() {
        out.push(c.to_ascii_lowercase());
    }
    out.push_str("://");
    for c in host.chars() {
        out.push(c.to_ascii_lowercase());
    }
    out.push(':');
    match port.filter(|p| !p.is_empty()) {
        // As a number: `:0080` is port 80, and must share its limit.
        Some(p) => match p.parse::<u16>() {
            Ok(n) => {
                use std::fmt::Write;
                let _ = write!(out, "{n}");
            }
            Err(_) => out.push_str(p),
        },
        None if scheme.eq_ignore_ascii_case("https") => out.push_str("443"),
        None => out.push_str("80"),
    }
}

/// What identifies the resource behind `url` across runs: scheme, host and port (as the
/// per-host key writes them) and the path, without userinfo, query or fragment. Signed
/// URLs (S3, GCS) change their query each time they are made; their file stays the same.
/// Resume sidecars, the validator store and retrying failed jobs match on this (with the
/// output path); `If-Range` and `If-None-Match` guard against a different version.
///
/// ```
/// assert_eq!(
///     fetchpool::resource_key("https://u:pw@B.example/k/a.bin?X-Amz-Signature=1#f"),
///     "https://b.example:443/k/a.bin"
/// );
/// ```
pub fn resource_key(url: &str) -> String {
    let mut key = host_key(url);
    if let Some((_, rest)) = url.split_once("://") {
        let after = rest.find(['/', '?', '#']).map_or("", |i| &rest[i..]);
        let path = after.split(['?', '#']).next().unwrap_or("");
        key.push_str(if path.is_empty() { "/" } else { path });
    }
    key
}

/// The `Authorization: Basic` value for the `user:password` in `url`'s userinfo
/// (percent-decoded), or `None` when it has no password or the userinfo does not decode.
/// Sent to the URL's host only: a hop to another host drops it with the other credentials.
pub(crate) fn userinfo_basic(url: &str) -> Option<String> {
    use base64::Engine as _;
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    let pair = format!(
        "{}:{}",
        percent_decode_utf8(user)?,
        percent_decode_utf8(password)?
    );
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// Decodes `%XX` escapes into bytes. A `%` not followed by two hex digits is kept as it
/// stands, or, when `strict`, makes the text invalid (`None`).
fn percent_decode(s: &str, strict: bool) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let digits = (bytes.get(i + 1).copied().and_then(hex_val))
                .zip(bytes.get(i + 2).copied().and_then(hex_val));
            match digits {
                Some((h, l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                None if strict => return None,
                None => {}
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(out)
}

/// `s` with its `%XX` escapes decoded; a stray `%` stays, and bytes that are not UTF-8
/// become U+FFFD. For names derived from a URL.
pub(crate) fn percent_decode_lossy(s: &str) -> String {
    let bytes = percent_decode(s, false).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `s` with its `%XX` escapes decoded, or `None` when an escape is malformed or the
/// result is not UTF-8. For credentials, where a guess would be wrong.
pub(crate) fn percent_decode_utf8(s: &str) -> Option<String> {
    String::from_utf8(percent_decode(s, true)?).ok()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_match_a_full_uri_parse() {
        let by_uri = |url: &str| {
            let uri: ureq::http::Uri = url.parse().unwrap();
            let scheme = uri.scheme_str().unwrap().to_ascii_lowercase();
            let default = if scheme == "https" { 443 } else { 80 };
            let host = uri.host().unwrap().to_ascii_lowercase();
            format!("{scheme}://{host}:{}", uri.port_u16().unwrap_or(default))
        };
        for url in [
            "http://example.com/a",
            "HTTPS://Example.COM",
            "https://example.com:8443/x?y=1#z",
            "http://user:pw@Host.example:81/p",
            "http://a@b@c.example/p",
            "http://[::1]:8080/x",
            "https://[2001:DB8::1]/",
            "http://127.0.0.1?q=a/b",
            "http://h.example#frag",
        ] {
            assert_eq!(host_key(url), by_uri(url), "{url}");
        }
        assert_eq!(host_key("not a url"), "not a url");
    }

    #[test]
    fn a_port_with_leading_zeros_shares_the_host_key_of_its_number() {
        // Found by the `url` fuzz target: `:0080` was a host of its own, outside the
        // per-host limit of `:80`.
        assert_eq!(host_key("http://h:0080/a"), "http://h:80");
        assert_eq!(
            host_key("http://[2001:DB8::1]:0080/x"),
            "http://[2001:db8::1]:80"
        );
        assert_eq!(host_key("https://h:000443"), "https://h:443");
        assert_eq!(host_key("http://h:8080"), "http://h:8080");
    }

    #[test]
    fn percent_decoding_lossy_keeps_stray_percents_and_strict_refuses_them() {
        assert_eq!(percent_decode_lossy("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(percent_decode_lossy("%ff"), "\u{fffd}");
        assert_eq!(
            percent_decode_utf8("us%40er%3A"),
            Some("us@er:".to_string())
        );
        assert_eq!(percent_decode_utf8("a%zz"), None);
        assert_eq!(percent_decode_utf8("a%+1"), None, "a sign is no hex digit");
        assert_eq!(percent_decode_utf8("a%4"), None);
        assert_eq!(percent_decode_utf8("%ff"), None);
    }
}
