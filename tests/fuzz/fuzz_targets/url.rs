//! URLs from lists and from servers: checks, redirects, proxies, NO_PROXY.
//!
//! The first byte picks the check, the rest is its input (`base NUL location` where two
//! strings are needed):
//! - 0: the URL check and the per-host key: an accepted URL has no blank or control
//!   byte, and its key is the one a full URI parse gives.
//! - 1: a `Location` followed from a base URL: the next URL is http(s), valid, free of
//!   CR/LF and controls; a scheme other than http(s) is refused; a relative reference
//!   stays on the base's host; https never silently drops to http.
//! - 2: a proxy URL: a parsed proxy has a host and port, and its shown forms
//!   (`Display`, `Debug`, `redacted`) never hold the password.
//! - 3: a NO_PROXY list and a host (`list NUL host`): `*` matches every host, a listed
//!   name matches itself and its subdomains, never a longer name.
//! - 4: URL redaction: a shown URL never holds the userinfo password or a credential
//!   parameter's value, keeps everything else, is stable when redacted again, and a URL
//!   quoted in a message is masked as well.
#![no_main]

use fetchpool::fuzzing::{check_url, follow, host_key};
use fetchpool::proxy::{NoProxy, ProxyChoice};
use fetchpool::{Config, ErrorKind, redact};
use libfuzzer_sys::fuzz_target;

const BASE: &str = "http://example.com/dir/page?q=1";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (a, b) = text.split_once('\0').unwrap_or((&text, ""));
    match mode % 5 {
        0 => url(&text),
        1 => location(a, b, mode & 0x80 != 0),
        2 => proxy(&text),
        3 => no_proxy(a, b),
        _ => redaction(&text),
    }
});

fn url(s: &str) {
    if check_url(s).is_err() {
        return;
    }
    assert!(
        !s.bytes().any(|b| b.is_ascii_control() || b == b' '),
        "accepted {s:?}"
    );
    let uri: fetchpool::fuzzing::Uri = s.parse().expect("an accepted URL parses");
    let scheme = uri.scheme_str().unwrap().to_ascii_lowercase();
    assert!(scheme == "http" || scheme == "https", "{s:?}");
    let default = if scheme == "https" { 443 } else { 80 };
    let host = uri.host().unwrap().to_ascii_lowercase();
    let by_uri = format!("{scheme}://{host}:{}", uri.port_u16().unwrap_or(default));
    assert_eq!(host_key(s), by_uri, "host key of {s:?}");
}

/// The RFC 3986 scheme of a reference, if it has one: `ALPHA *( ALPHA / DIGIT / "+" /
/// "-" / "." ) ":"`.
fn scheme_of(reference: &str) -> Option<&str> {
    let (scheme, _) = reference.split_once(':')?;
    let mut chars = scheme.chars();
    (chars.next()?.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

fn location(base: &str, loc: &str, downgrade: bool) {
    let base = if check_url(base).is_ok() { base } else { BASE };
    let mut cfg = Config::default();
    cfg.allow_downgrade = downgrade;
    let _ = fetchpool::fuzzing::resolve(base, loc);
    let result = follow(&cfg, base, loc, base, &[]);
    let trimmed = loc.trim();
    if let Some(scheme) = scheme_of(trimmed)
        && !scheme.eq_ignore_ascii_case("http")
        && !scheme.eq_ignore_ascii_case("https")
    {
        let e = result.expect_err(&format!("followed {loc:?} (scheme {scheme:?})"));
        assert_eq!(e.kind(), ErrorKind::Redirect);
        return;
    }
    match result {
        Ok(next) => {
            assert!(
                !next.bytes().any(|b| b.is_ascii_control() || b == b' '),
                "{base} + {loc:?} → {next:?}"
            );
            check_url(&next).unwrap_or_else(|e| panic!("{loc:?} → {next:?}: {e}"));
            if !downgrade
                && base
                    .get(..6)
                    .is_some_and(|s| s.eq_ignore_ascii_case("https:"))
            {
                assert!(
                    next.get(..6)
                        .is_some_and(|s| s.eq_ignore_ascii_case("https:")),
                    "{base} → {next}"
                );
            }
            if scheme_of(trimmed).is_none() && !trimmed.starts_with("//") {
                assert_eq!(
                    host_key(&next),
                    host_key(base),
                    "{base} + {loc:?} → {next:?}"
                );
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Redirect, "{e}");
            // A plain relative reference of unreserved characters always resolves.
            let plain = !trimmed.is_empty()
                && !trimmed.starts_with("//")
                && trimmed
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~/?=&".contains(&b));
            assert!(
                !plain || e.to_string().contains("loop"),
                "{base} + {loc:?} refused: {e}"
            );
        }
    }
}

fn proxy(s: &str) {
    let Ok(p) = ProxyChoice::parse(s) else {
        return;
    };
    assert!(!p.host().is_empty() && p.port() > 0, "{s:?}");
    // The shown forms are built from the parts alone: the password can only appear
    // where the user name or the host repeats it.
    let creds = match (p.username(), p.password()) {
        (Some(u), Some(_)) => format!("{u}:***@"),
        (Some(u), None) => format!("{u}@"),
        _ => String::new(),
    };
    let want = format!("{}://{creds}{}:{}", p.scheme(), p.host(), p.port());
    assert_eq!(p.redacted(), want, "{s:?}");
    assert_eq!(p.to_string(), want);
    assert_eq!(format!("{p:?}"), format!("ProxyChoice({want})"));
    if p.username().is_none() {
        let again = ProxyChoice::parse(&p.redacted()).expect("a redacted proxy URL parses");
        assert_eq!(again, p, "{s:?} → {}", p.redacted());
    }
}

fn no_proxy(list: &str, host: &str) {
    let np = NoProxy::parse(list);
    let hit = np.matches(host);
    if list.trim() == "*" {
        assert!(hit, "'*' must match {host:?}");
        return;
    }
    let name_like = |s: &str| {
        !s.is_empty()
            && s.parse::<std::net::IpAddr>().is_err()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !s.starts_with('.')
            && !s.ends_with('.')
            && s.bytes().any(|b| b.is_ascii_alphabetic())
    };
    for entry in list.split([',', ' ', '\t']).filter(|e| name_like(e)) {
        let lower = entry.to_ascii_lowercase();
        assert!(
            np.matches(entry),
            "{list:?} does not match its own entry {entry:?}"
        );
        assert!(
            np.matches(&format!("www.{lower}")),
            "{list:?}: subdomain of {entry:?}"
        );
        assert!(
            np.matches(&lower.to_ascii_uppercase()),
            "{list:?}: case of {entry:?}"
        );
        let longer = format!("x{lower}");
        if !list.split([',', ' ', '\t']).any(|e| {
            let e = e
                .trim_end_matches('.')
                .trim_start_matches('.')
                .to_ascii_lowercase();
            !e.is_empty() && (longer == e || longer.ends_with(&format!(".{e}")))
        }) {
            assert!(!np.matches(&longer), "{list:?} matches {longer:?}");
        }
    }
}

/// The password of `scheme://user:PASSWORD@host…` as RFC 3986 reads it: the authority
/// ends at the first `/`, `?` or `#`, the host follows its last `@`.
fn password_of(u: &str) -> Option<&str> {
    password_span(u).map(|(start, end)| &u[start..end])
}

/// Where [`password_of`] is in `u`, as a byte range.
fn password_span(u: &str) -> Option<(usize, usize)> {
    let u = &u[..u.find(['?', '#']).unwrap_or(u.len())];
    let from = u.find("://")? + 3;
    let rest = &u[from..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let colon = userinfo.find(':')?;
    let span = (from + colon + 1, from + userinfo.len());
    (span.0 < span.1).then_some(span)
}

/// `(name, value)` of each `&`-separated parameter of `params`.
fn params(params: &str) -> Vec<(&str, Option<&str>)> {
    params
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        })
        .collect()
}

fn redaction(u: &str) {
    let shown = redact::url(u);
    assert_eq!(redact::url(&shown), shown, "redacting twice changes {u:?}");
    let split = |s: &str| -> (String, Option<String>, Option<String>) {
        let (b, f) = match s.split_once('#') {
            Some((b, f)) => (b, Some(f.to_string())),
            None => (s, None),
        };
        let (b, q) = match b.split_once('?') {
            Some((b, q)) => (b, Some(q.to_string())),
            None => (b, None),
        };
        (b.to_string(), q, f)
    };
    let (before, query, fragment) = split(u);
    let (shown_before, shown_query, shown_fragment) = split(&shown);
    // The password is masked; scheme, host and path are kept as they are.
    match password_of(u) {
        Some(pw) if pw != redact::MASK => {
            assert_eq!(password_of(&shown), Some(redact::MASK), "{u:?} → {shown:?}");
            let (start, end) = password_span(u).unwrap();
            let want = format!("{}{}{}", &before[..start], redact::MASK, &before[end..]);
            assert_eq!(shown_before, want, "{u:?} → {shown:?}");
        }
        _ => assert_eq!(shown_before, before, "{u:?} → {shown:?}"),
    }
    // Each credential parameter's value is masked, every other parameter kept.
    for (orig, shown) in [(&query, &shown_query), (&fragment, &shown_fragment)] {
        let (Some(orig), Some(shown)) = (orig, shown) else {
            assert_eq!(orig.is_some(), shown.is_some(), "{u:?}");
            continue;
        };
        let (a, b) = (params(orig), params(shown));
        assert_eq!(a.len(), b.len(), "{u:?} → {shown:?}");
        for ((name, value), (shown_name, shown_value)) in a.into_iter().zip(b) {
            assert_eq!(name, shown_name, "{u:?}");
            match value {
                Some(v) if redact::is_secret_param(name) && !v.is_empty() => {
                    assert_eq!(shown_value, Some(redact::MASK), "{name}={v} in {u:?}")
                }
                _ => assert_eq!(shown_value, value, "{name} in {u:?}"),
            }
        }
    }
    // A URL quoted in a message is masked as `url` masks it, as error messages are shown;
    // its password stays hidden however it is quoted.
    let ends = |c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>' | '`');
    if u.contains("://") && !u.contains(ends) && !u.ends_with([')', ']', ',', '.', ';', ':', '!']) {
        let message = format!("failed {u}: boom");
        let want = format!("failed {shown}: boom");
        // The message's URL starts after the last character that cannot be in a scheme.
        let scheme_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
        if u[..u.find("://").unwrap()].chars().all(scheme_ok)
            && !u[u.find("://").unwrap() + 3..].contains("://")
        {
            assert_eq!(redact::text(&message), want, "{u:?}");
        }
    }
    // Any URL fetchpool accepts (from a list or a redirect) can be quoted in an error.
    if let Some(pw) = password_of(u).filter(|p| *p != redact::MASK && check_url(u).is_ok()) {
        let (start, end) = password_span(u).unwrap();
        let leaked = format!("URL '{}@", &u[..end]);
        debug_assert_eq!(&u[start..end], pw);
        let message = format!("URL '{u}' refused");
        let text = redact::text(&message);
        assert!(
            !text.starts_with(&leaked),
            "password {pw:?} shown in {text:?}"
        );
    }
}
