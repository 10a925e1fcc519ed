//! Digests a server announces for the body it sends, and the one rule that judges a body
//! by its digests ([`judge`]).
//!
//! Read from the answer's head before the first byte, so that the body is hashed with
//! their algorithms as it streams: `Repr-Digest` (RFC 9530) and `Digest` (RFC 3230) with
//! sha-256 or sha-512, `Content-MD5`, `x-goog-hash` (md5, crc32c), `x-amz-checksum-sha256`
//! and `-crc32c`, and, only when the configuration asks for it, an ETag that is a plain
//! MD5 (an S3 single-part upload's). A body sent with a `Content-Encoding` has none of
//! them: its digests describe the encoded bytes, not the file.

use base64::Engine as _;
use ureq::http::HeaderMap;

use crate::checksum::{Algorithm, Checksum, DigestSource, Digests, Hasher, Verified};
use crate::error::Error;
use crate::output::validators;

/// A digest the server announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Announced {
    pub(super) algorithm: Algorithm,
    pub(super) hex: String,
    pub(super) source: DigestSource,
}

/// The digests `head` announces for the whole file. `ranged` says the body continues a
/// part (a 206): `Content-MD5` then covers only the range and is not used. `etag_md5`
/// makes a plain 32-hex ETag an MD5.
pub(super) fn announced(head: &HeaderMap, ranged: bool, etag_md5: bool) -> Vec<Announced> {
    let mut out = Vec::new();
    // The common case, without an allocation: no digest header at all.
    if !(has_any(head) || etag_md5 && head.contains_key("etag")) {
        return out;
    }
    if validators::encoded(head) {
        log::debug!("digests of an encoded body describe the encoded bytes; not used");
        return out;
    }
    let mut push = |algorithm: Algorithm, bytes: Option<Vec<u8>>, source: DigestSource| {
        if let Some(bytes) = bytes.filter(|b| b.len() * 2 == algorithm.hex_len()) {
            out.push(Announced {
                algorithm,
                hex: crate::checksum::hex(&bytes),
                source,
            });
        }
    };
    for value in values(head, "repr-digest") {
        for (key, item) in members(&value) {
            // A byte sequence in a structured field: `:BASE64:`.
            let bytes = item
                .strip_prefix(':')
                .and_then(|v| v.strip_suffix(':'))
                .and_then(decode);
            if let Some(algorithm) = http_algorithm(&key) {
                push(algorithm, bytes, DigestSource::ReprDigest);
            }
        }
    }
    for value in values(head, "digest") {
        for (key, item) in members(&value) {
            if let Some(algorithm) = http_algorithm(&key) {
                push(algorithm, decode(&item), DigestSource::Digest);
            }
        }
    }
    if !ranged {
        for value in values(head, "content-md5") {
            push(
                Algorithm::Md5,
                decode(value.trim()),
                DigestSource::ContentMd5,
            );
        }
    }
    for value in values(head, "x-goog-hash") {
        for (key, item) in members(&value) {
            let algorithm = match key.as_str() {
                "md5" => Algorithm::Md5,
                "crc32c" => Algorithm::Crc32c,
                _ => continue,
            };
            push(algorithm, decode(&item), DigestSource::GoogHash);
        }
    }
    // A composite (multipart) checksum is not the object's: S3 marks it with its type, and
    // its value with a `-N` suffix, which does not decode.
    let composite = values(head, "x-amz-checksum-type")
        .iter()
        .any(|t| t.trim().eq_ignore_ascii_case("composite"));
    if !composite {
        for (name, algorithm) in [
            ("x-amz-checksum-sha256", Algorithm::Sha256),
            ("x-amz-checksum-crc32c", Algorithm::Crc32c),
        ] {
            for value in values(head, name) {
                push(algorithm, decode(value.trim()), DigestSource::AmzChecksum);
            }
        }
    }
    if etag_md5 && let Some(md5) = etag_md5_of(head) {
        out.push(Announced {
            algorithm: Algorithm::Md5,
            hex: md5,
            source: DigestSource::Etag,
        });
    }
    out
}

/// The MD5 an S3-style ETag is: a strong ETag of exactly 32 hex digits. A multipart
/// upload's ETag (`"…-N"`) is not an MD5 of the object and gives none.
fn etag_md5_of(head: &HeaderMap) -> Option<String> {
    let etag = head.get("etag")?.to_str().ok()?.trim();
    let inner = etag.strip_prefix('"')?.strip_suffix('"')?;
    (inner.len() == 32 && inner.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| inner.to_ascii_lowercase())
}

/// Whether the head carries any digest header at all.
fn has_any(head: &HeaderMap) -> bool {
    [
        "repr-digest",
        "digest",
        "content-md5",
        "x-goog-hash",
        "x-amz-checksum-sha256",
        "x-amz-checksum-crc32c",
    ]
    .iter()
    .any(|h| head.contains_key(*h))
}

/// Every value of header `name`, as text.
fn values(head: &HeaderMap, name: &str) -> Vec<String> {
    head.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

/// `key=value` members of a comma-separated list, keys lowercased (parameters after `;`
/// dropped).
fn members(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter_map(|m| {
            let m = m.split(';').next().unwrap_or("");
            let (k, v) = m.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect()
}

/// The algorithms `Repr-Digest` and `Digest` are read for.
fn http_algorithm(key: &str) -> Option<Algorithm> {
    match key {
        "sha-256" => Some(Algorithm::Sha256),
        "sha-512" => Some(Algorithm::Sha512),
        _ => None,
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// The hasher a body needs: sha256, the job's algorithm, and, when the job has no
/// checksum, each announced digest's (a job with one hashes nothing more for the server).
pub(super) fn hasher_for(listed: Option<&Checksum>, announced: &[Announced]) -> Hasher {
    match listed {
        Some(c) => Hasher::new([c.algorithm]),
        None => Hasher::new(announced.iter().map(|a| a.algorithm)),
    }
}

/// Judges a body by its digests. The job's checksum decides when it has one: a server
/// digest that disagrees with a body that matches it is logged, not fatal. Without one,
/// every announced digest must match. `Ok` says what was verified, against what.
pub(super) fn judge(
    listed: Option<&Checksum>,
    announced: &[Announced],
    digests: &Digests,
    url: &str,
) -> Result<Option<Verified>, Error> {
    if let Some(want) = listed {
        let got = digests.get(want.algorithm).unwrap_or_default();
        if got != want.hex {
            return Err(Error::Digest {
                algorithm: want.algorithm,
                source: DigestSource::List,
                expected: want.hex.clone(),
                actual: got.to_string(),
            });
        }
        for a in announced {
            if let Some(got) = digests.get(a.algorithm)
                && got != a.hex
            {
                log::warn!(
                    "{}: {} {} ({}) differs from the body, which matches the job's \
                     checksum; the job's checksum decides",
                    crate::redact::url(url),
                    a.algorithm,
                    a.hex,
                    a.source.words()
                );
            }
        }
        return Ok(Some(Verified {
            algorithm: want.algorithm,
            source: DigestSource::List,
        }));
    }
    let mut best: Option<Verified> = None;
    for a in announced {
        let got = digests.get(a.algorithm).unwrap_or_default();
        if got != a.hex {
            return Err(Error::Digest {
                algorithm: a.algorithm,
                source: a.source,
                expected: a.hex.clone(),
                actual: got.to_string(),
            });
        }
        if best.is_none_or(|b| strength(a.algorithm) > strength(b.algorithm)) {
            best = Some(Verified {
                algorithm: a.algorithm,
                source: a.source,
            });
        }
    }
    Ok(best)
}

/// Which of two verified digests a report names: the stronger.
fn strength(a: Algorithm) -> u8 {
    match a {
        Algorithm::Crc32c => 0,
        Algorithm::Md5 => 1,
        Algorithm::Sha1 => 2,
        Algorithm::Sha256 => 3,
        Algorithm::Sha512 => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                ureq::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn each_header_gives_its_digest_in_hex() {
        // md5("hello") = 5d41402abc4b2a76b9719d911017c592; crc32c("hello") = 9a71bb4c.
        let h = head(&[
            ("content-md5", "XUFAKrxLKna5cZ2REBfFkg=="),
            (
                "x-goog-hash",
                "crc32c=mnG7TA==, md5=XUFAKrxLKna5cZ2REBfFkg==",
            ),
            (
                "repr-digest",
                "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:, md5=:x:",
            ),
            (
                "digest",
                "SHA-256=LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
            ),
        ]);
        let a = announced(&h, false, false);
        let sources: Vec<_> = a.iter().map(|a| (a.algorithm, a.source)).collect();
        assert_eq!(
            sources,
            vec![
                (Algorithm::Sha256, DigestSource::ReprDigest),
                (Algorithm::Sha256, DigestSource::Digest),
                (Algorithm::Md5, DigestSource::ContentMd5),
                (Algorithm::Crc32c, DigestSource::GoogHash),
                (Algorithm::Md5, DigestSource::GoogHash),
            ]
        );
        assert_eq!(a[2].hex, "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(a[3].hex, "9a71bb4c");
        assert_eq!(
            a[0].hex,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        // A range's Content-MD5 is the range's only.
        assert_eq!(announced(&h, true, false).len(), 4);
    }

    #[test]
    fn an_encoded_body_and_a_multipart_etag_give_no_digest() {
        let h = head(&[
            ("content-md5", "XUFAKrxLKna5cZ2REBfFkg=="),
            ("content-encoding", "gzip"),
            ("etag", "\"5d41402abc4b2a76b9719d911017c592\""),
        ]);
        assert!(announced(&h, false, true).is_empty());
        let multipart = head(&[("etag", "\"5d41402abc4b2a76b9719d911017c592-3\"")]);
        assert!(announced(&multipart, false, true).is_empty());
        let plain = head(&[("etag", "\"5D41402ABC4B2A76B9719D911017C592\"")]);
        assert!(announced(&plain, false, false).is_empty());
        assert_eq!(
            announced(&plain, false, true)[0].hex,
            "5d41402abc4b2a76b9719d911017c592"
        );
        let composite = head(&[
            ("x-amz-checksum-crc32c", "mnG7TA=="),
            ("x-amz-checksum-type", "COMPOSITE"),
        ]);
        assert!(announced(&composite, false, false).is_empty());
    }
}
