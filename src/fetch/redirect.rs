//! Redirect policy: which `Location` is followed (scheme, downgrade, loops, the hop
//! limit), how it resolves against the URL it came from (RFC 3986), and which request
//! headers a hop to another host drops.

use crate::error::Error;
use crate::error::RedirectReason;

pub(super) fn is_credential(name: &str) -> bool {
    name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("cookie")
}

/// Checks a redirect and returns the absolute URL it points to.
pub(crate) fn follow(
    cfg: &crate::config::Config,
    from: &str,
    location: &str,
    start: &str,
    seen: &[String],
) -> Result<String, Error> {
    if seen.len() as u32 >= cfg.max_redirects {
        return Err(Error::Redirect {
            message: format!("more than {} redirects", cfg.max_redirects),
            reason: RedirectReason::TooMany,
        });
    }
    let next = resolve(from, location);
    let scheme = scheme_of(&next).unwrap_or("").to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(Error::Redirect {
            reason: RedirectReason::Other,
            message: format!(
                "to '{}': only http and https redirects are followed",
                crate::redact::clip(&crate::redact::url(&next), crate::redact::SHOWN_CHARS)
            ),
        });
    }
    if scheme == "http" && from.to_ascii_lowercase().starts_with("https:") && !cfg.allow_downgrade {
        return Err(Error::Redirect {
            message: format!(
                "from https to plain http ({next}), which is followed only when downgrades \
                 are allowed"
            ),
            reason: RedirectReason::Downgrade,
        });
    }
    crate::job::check_url(&next).map_err(|e| Error::redirect(format!("to an invalid URL: {e}")))?;
    if next == from || next == start || seen.contains(&next) {
        return Err(Error::redirect(format!("loop: {next} was already visited")));
    }
    Ok(next)
}

/// `scheme://authority` of an absolute URL, lowercase.
pub(super) fn host_of(url: &str) -> String {
    crate::url::host_key(url)
}

/// The scheme of an absolute URI (RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" /
/// "." )` before the first `:`), or `None` for a relative reference.
pub(crate) fn scheme_of(reference: &str) -> Option<&str> {
    let (scheme, _) = reference.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(scheme)
}

/// Resolves a `Location` value against the URL it came from (RFC 3986 §5.2, without
/// the rarely used corners). A reference with a scheme is absolute whatever follows it
/// (`data:…`, `mailto:…`, `file:/etc/passwd`): it is returned as it is, never read as a
/// path on the same host.
pub(crate) fn resolve(base: &str, reference: &str) -> String {
    let reference = reference.trim();
    if scheme_of(reference).is_some() {
        return reference.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    if let Some(net) = reference.strip_prefix("//") {
        return format!("{scheme}://{net}");
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let base_path_full = &rest[authority_end..];
    let base_path = base_path_full.split(['?', '#']).next().unwrap_or("");
    let (ref_path, ref_tail) = match reference.find(['?', '#']) {
        Some(i) => (&reference[..i], &reference[i..]),
        None => (reference, ""),
    };
    let merged = if ref_path.starts_with('/') {
        ref_path.to_string()
    } else if ref_path.is_empty() {
        if ref_tail.starts_with('#') {
            let q = base_path_full.split('#').next().unwrap_or("");
            return format!("{scheme}://{authority}{q}{ref_tail}");
        }
        base_path.to_string()
    } else {
        let dir = match base_path.rfind('/') {
            Some(i) => &base_path[..=i],
            None => "/",
        };
        format!("{dir}{ref_path}")
    };
    format!(
        "{scheme}://{authority}{}{ref_tail}",
        remove_dot_segments(&merged)
    )
}

fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i == segments.len() - 1;
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_locations_resolve_like_rfc3986() {
        let base = "http://a/b/c/d;p?q";
        for (r, want) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../g", "http://a/g"),
            ("https://other:8443/x", "https://other:8443/x"),
            ("g:h", "g:h"),
            ("data:text/plain,hi", "data:text/plain,hi"),
            ("file:/etc/passwd", "file:/etc/passwd"),
            ("./file:/etc/passwd", "http://a/b/c/file:/etc/passwd"),
            ("1a:b", "http://a/b/c/1a:b"),
        ] {
            assert_eq!(resolve(base, r), want, "resolving {r}");
        }
    }

    #[test]
    fn schemes_follow_rfc3986_syntax() {
        assert_eq!(scheme_of("javascript:alert(1)"), Some("javascript"));
        assert_eq!(scheme_of("view-source+x.y:foo"), Some("view-source+x.y"));
        assert_eq!(scheme_of("HTTP://h/"), Some("HTTP"));
        assert_eq!(scheme_of("/a:b"), None);
        assert_eq!(scheme_of("1a:b"), None);
        assert_eq!(scheme_of(":x"), None);
        assert_eq!(scheme_of("a b:c"), None);
        assert_eq!(scheme_of("no-colon"), None);
    }
}
