//! What fetchpool shows of URLs and of text it did not write itself.
//!
//! A URL can carry a bearer credential for its whole lifetime: a password in its userinfo
//! (`http://user:pw@host/`) or a signature in its query (presigned S3, GCS and Azure URLs,
//! `?token=…`). Everything fetchpool prints or writes about a job — log lines, error
//! messages, summaries, report lines — shows URLs through [`url`], which replaces those
//! parts with `***` and keeps the rest, so a URL stays recognisable and two runs of one
//! list still show the same text for the same job. [`text`] applies it to every URL inside
//! a message; [`clip`] cuts untrusted text (a list's line, a server's `Location`) to a
//! length a terminal can show.

use std::borrow::Cow;

/// What a hidden part is replaced with.
pub const MASK: &str = "***";

/// The most characters of untrusted text (a job list's line, a `Location`) that a message
/// quotes before cutting it with [`clip`]: 200.
pub const SHOWN_CHARS: usize = 200;

/// Query (and fragment) parameter names whose values are credentials, compared in ASCII
/// lowercase after percent-decoding: the whole name…
const SECRET_NAMES: &[&str] = &[
    "sig", "key", "auth", "jwt", "pwd", "pass", "apikey", "api_key", "api-key",
];
/// …or a part of it (`X-Amz-Signature`, `X-Goog-Credential`, `X-Amz-Security-Token`,
/// `access_token`, `client_secret`, …).
const SECRET_PARTS: &[&str] = &[
    "signature",
    "credential",
    "token",
    "secret",
    "password",
    "passwd",
    "hmac",
];

/// Whether a query parameter called `name` holds a credential: `Signature`, `sig`
/// (Azure SAS), `X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`,
/// `X-Goog-Signature`, `X-Goog-Credential`, `token`, `access_token`, `key`, `api_key`,
/// `password`, `client_secret` and the like, in any case, percent-encoded or not.
pub fn is_secret_param(name: &str) -> bool {
    let name = percent_decoded_lower(name);
    SECRET_NAMES.contains(&name.as_str()) || SECRET_PARTS.iter().any(|p| name.contains(p))
}

/// Whether a request or response header called `name` carries a credential, so that its
/// value is never shown: `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`,
/// and names that read like one (`X-Api-Key`, `X-Auth-Token`, `X-Amz-Security-Token`, …,
/// by the same rule as [`is_secret_param`]); case does not matter.
///
/// ```
/// use fetchpool::redact;
/// assert!(redact::is_secret_header("authorization"));
/// assert!(redact::is_secret_header("X-Api-Key"));
/// assert!(!redact::is_secret_header("Accept"));
/// ```
pub fn is_secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || {
        let bare = lower.strip_prefix("x-").unwrap_or(&lower);
        is_secret_param(bare) || bare.split('-').any(|part| SECRET_NAMES.contains(&part))
    }
}

/// Headers as `Debug` shows them: names and values, with the value of every credential
/// header ([`is_secret_header`]) shown as `***` and URLs' secrets hidden in the others.
pub(crate) struct Headers<'a>(pub(crate) &'a [(String, String)]);

impl std::fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, value)| {
                let shown = if is_secret_header(name) {
                    Cow::Borrowed(MASK)
                } else {
                    text(value)
                };
                (name, shown)
            }))
            .finish()
    }
}

/// `u` with its secrets shown as `***`: the password of its userinfo (`user:***@host`) and
/// the values of credential parameters ([`is_secret_param`]) in its query and fragment.
/// Everything else is kept as it is, so the result is still the URL a reader knows; it is
/// borrowed when there was nothing to hide, and `url(url(u)) == url(u)`.
///
/// ```
/// use fetchpool::redact;
/// assert_eq!(redact::url("http://ann:pw@h/a?x=1"), "http://ann:***@h/a?x=1");
/// assert_eq!(
///     redact::url("https://b.s3.amazonaws.com/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=9f3e"),
///     "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***"
/// );
/// assert_eq!(redact::url("http://h/a.iso"), "http://h/a.iso");
/// ```
pub fn url(u: &str) -> Cow<'_, str> {
    let (before_fragment, fragment) = match u.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (u, None),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let password = password_span(before_query);
    let query_hides = query.is_some_and(params_hide_something);
    let fragment_hides = fragment.is_some_and(params_hide_something);
    if password.is_none() && !query_hides && !fragment_hides {
        return Cow::Borrowed(u);
    }
    let mut out = String::with_capacity(u.len());
    match password {
        Some((start, end)) => {
            out.push_str(&before_query[..start]);
            out.push_str(MASK);
            out.push_str(&before_query[end..]);
        }
        None => out.push_str(before_query),
    }
    if let Some(q) = query {
        out.push('?');
        push_params(&mut out, q);
    }
    if let Some(f) = fragment {
        out.push('#');
        push_params(&mut out, f);
    }
    Cow::Owned(out)
}

/// `s` with every URL in it (a `scheme://…` run of non-blank characters) passed through
/// [`url`]: for messages that quote URLs among other words.
///
/// ```
/// use fetchpool::redact;
/// assert_eq!(
///     redact::text("to 'http://u:pw@h/x' (loop)"),
///     "to 'http://u:***@h/x' (loop)"
/// );
/// ```
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.contains("://") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        // The URL starts at its scheme, just before `://`, and ends at the first character
        // that cannot be part of it in a message; trailing punctuation is the sentence's.
        let start = rest[..at]
            .char_indices()
            .rfind(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>' | '`'))
            .map_or(rest.len(), |i| at + i);
        let end = at
            + rest[at..end]
                .trim_end_matches([')', ']', ',', '.', ';', ':', '!'])
                .len();
        // A userinfo may hold a quote (RFC 3986 allows `'` there): the URL runs at least
        // to its authority's last `@`, so the password is found whatever quotes it.
        let authority = rest[at + 3..]
            .split(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#'))
            .next()
            .unwrap_or("");
        let end = authority
            .rfind('@')
            .map_or(end, |i| end.max(at + 3 + i + 1));
        let shown = url(&rest[start..end]);
        changed |= matches!(shown, Cow::Owned(_));
        out.push_str(&rest[..start]);
        out.push_str(&shown);
        rest = &rest[end.max(at + 3)..];
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `s` cut to at most `max` characters, with an ellipsis and the full length when cut:
/// `'GET /aaaa… (20971520 characters)'`.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} characters)", &s[..cut], s.chars().count())),
    }
}

/// Byte range of the password in `scheme://user:PASSWORD@host…`, when there is one.
fn password_span(before_query: &str) -> Option<(usize, usize)> {
    let authority_start = before_query.find("://")? + 3;
    let authority_len = before_query[authority_start..]
        .find('/')
        .unwrap_or(before_query.len() - authority_start);
    let authority = &before_query[authority_start..authority_start + authority_len];
    // The host follows the last `@`: an unencoded `@` in a password stays hidden.
    let (userinfo, _) = authority.rsplit_once('@')?;
    let colon = userinfo.find(':')?;
    let (start, end) = (
        authority_start + colon + 1,
        authority_start + userinfo.len(),
    );
    (start < end && &before_query[start..end] != MASK).then_some((start, end))
}

fn params_hide_something(params: &str) -> bool {
    params.split('&').any(|p| match p.split_once('=') {
        Some((name, value)) => !value.is_empty() && value != MASK && is_secret_param(name),
        None => false,
    })
}

fn push_params(out: &mut String, params: &str) {
    for (i, p) in params.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match p.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_secret_param(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(p),
        }
    }
}

/// `name` percent-decoded (`X%2DAmz%2DSignature`) and in ASCII lowercase, for comparing.
fn percent_decoded_lower(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_password_is_hidden_user_kept() {
        assert_eq!(url("http://ann:s3cret@h:8080/a"), "http://ann:***@h:8080/a");
        assert_eq!(url("https://ann:p@ss@h/a"), "https://ann:***@h/a");
        assert_eq!(url("http://ann@h/a"), "http://ann@h/a");
        assert_eq!(url("http://ann:@h/a"), "http://ann:@h/a");
        assert_eq!(url("http://h/a@b:c"), "http://h/a@b:c");
        assert_eq!(url("http://h:80/a?x=y@z:w"), "http://h:80/a?x=y@z:w");
        assert_eq!(url("http://a:b@h?sig=1"), "http://a:***@h?sig=***");
    }

    #[test]
    fn presigned_signatures_are_hidden_other_parameters_kept() {
        let s3 = "https://b.s3.amazonaws.com/k.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                  &X-Amz-Credential=AKIA%2F20260101%2Fus-east-1&X-Amz-Date=20260101T000000Z\
                  &X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FwoG\
                  &X-Amz-Signature=abcdef0123";
        assert_eq!(
            url(s3),
            "https://b.s3.amazonaws.com/k.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=***&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600\
             &X-Amz-SignedHeaders=host&X-Amz-Security-Token=***&X-Amz-Signature=***"
        );
        assert_eq!(
            url("https://storage.googleapis.com/b/o?X-Goog-Signature=00ff&x-goog-date=1"),
            "https://storage.googleapis.com/b/o?X-Goog-Signature=***&x-goog-date=1"
        );
        assert_eq!(
            url("https://a.blob.core.windows.net/c/b?sv=2022&sp=r&SIG=abc%3D"),
            "https://a.blob.core.windows.net/c/b?sv=2022&sp=r&SIG=***"
        );
        assert_eq!(
            url("http://h/a?AWSAccessKeyId=AK&Signature=x&Expires=1"),
            "http://h/a?AWSAccessKeyId=AK&Signature=***&Expires=1"
        );
        assert_eq!(
            url("http://h/a?access_token=t&page=2#id_token=j&x=1"),
            "http://h/a?access_token=***&page=2#id_token=***&x=1"
        );
        assert_eq!(
            url("http://h/a?X%2DAmz%2DSignature=s"),
            "http://h/a?X%2DAmz%2DSignature=***"
        );
        assert_eq!(url("http://h/a?key=AIza&q=x"), "http://h/a?key=***&q=x");
    }

    #[test]
    fn nothing_to_hide_is_borrowed_and_redaction_is_idempotent() {
        for u in [
            "http://h/a.iso",
            "http://h/a?sig=&x",
            "http://h/a?signature",
            "not a url",
            "",
            "http://h/%",
            "http://h/a?%=1&%4=2&%zz=3",
        ] {
            assert!(matches!(url(u), Cow::Borrowed(_)), "{u}");
        }
        for u in [
            "http://a:b@h/p?token=t#sig=s",
            "http://a:***@h/p?token=***",
            "https://x/y?Signature=1&Signature=2",
        ] {
            let once = url(u).into_owned();
            assert_eq!(url(&once), once.as_str(), "{u}");
            assert!(matches!(url(&once), Cow::Borrowed(_)), "{u}");
        }
    }

    #[test]
    fn urls_inside_messages_are_hidden_and_the_words_kept() {
        assert_eq!(
            text("failed http://u:pw@h/a?sig=abc: connection broke"),
            "failed http://u:***@h/a?sig=***: connection broke"
        );
        assert_eq!(
            text("from https to plain http (http://h/x?token=t); pass it"),
            "from https to plain http (http://h/x?token=***); pass it"
        );
        assert_eq!(
            text("invalid URL 'http://u:pw@h/a b': x"),
            "invalid URL 'http://u:***@h/a b': x"
        );
        assert_eq!(
            text("a: https://one/?sig=1 and ftp://u:p@two/"),
            "a: https://one/?sig=*** and ftp://u:***@two/"
        );
        assert!(matches!(text("plain words"), Cow::Borrowed(_)));
        assert!(matches!(text("see http://h/a."), Cow::Borrowed(_)));
        assert_eq!(text("://"), "://");
        assert_eq!(text(":// :// x://"), ":// :// x://");
    }

    #[test]
    fn long_text_is_clipped_with_its_length() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc… (4 characters)");
        assert_eq!(clip("ééé", 2), "éé… (3 characters)");
        let long = "x".repeat(20 << 20);
        let shown = clip(&long, SHOWN_CHARS);
        assert_eq!(shown.len(), 200 + "… (20971520 characters)".len());
    }

    #[test]
    fn a_url_after_a_character_of_several_bytes_is_found_without_a_panic() {
        // Found by the `url` fuzz target: the scheme's start was taken one byte after the
        // character before it, inside 'é' here, and slicing there panicked, so printing
        // the error for the list line `éhttp://…` crashed the run.
        assert_eq!(
            text("invalid URL 'éhttp://u:pw@h/x': bad"),
            "invalid URL 'éhttp://u:***@h/x': bad"
        );
        assert_eq!(text("«http://u:pw@h/»"), "«http://u:***@h/»");
        assert_eq!(text("€://x"), "€://x");
    }

    #[test]
    fn a_password_with_a_quote_is_hidden_in_a_message_that_quotes_its_url() {
        // Found by the `url` fuzz target: the URL was cut at the password's `'`, and the
        // password shown in `URL 'http://user:s3'cret@h/p' …` (check_url's messages).
        assert_eq!(
            text("URL 'http://user:s3'cret@h/p' has port 'x'"),
            "URL 'http://user:***@h/p' has port 'x'"
        );
        assert_eq!(
            text("to \"http://u:a\"b@h/\" now"),
            "to \"http://u:***@h/\" now"
        );
        assert_eq!(
            text("'http://h/a' (user@example)"),
            "'http://h/a' (user@example)"
        );
    }
}
