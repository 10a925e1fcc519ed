//! Checksum files as job lists: the lines `sha256sum`, `sha512sum`, `sha1sum` and
//! `md5sum` write (`HEX  PATH`, `HEX *PATH` in binary mode, a leading `\` when the path
//! holds a backslash or a line break) and the BSD tag form (`SHA256 (PATH) = HEX`) that
//! mirrors publish as `SHA256SUMS`, `SHA512SUMS` or `MD5SUMS`. Each line is a job for
//! `BASE/PATH` into `PATH`, verified with the line's digest; the algorithm is the tag's,
//! or for the GNU form the digest's length (32 hex digits md5, 40 sha1, 64 sha256, 128
//! sha512).
//!
//! [`line`] tells such a line from the other list formats (a URL, a TSV or a JSON line
//! never starts with hex digits and two spaces, nor with a tag and ` (`), and [`checksum_file_line`]
//! writes one back, escaped as `sha256sum` does, so that `sha256sum -c` reads it.

use std::path::Path;

use crate::checksum::{Algorithm, Checksum};
use crate::redact::{SHOWN_CHARS, clip};

/// A checksum-file line: its path as written (unescaped) and its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SumLine {
    pub(crate) path: String,
    pub(crate) checksum: Checksum,
}

/// The line as a checksum-file line, if it is one: `None` when it is in another format,
/// `Some(Err)` when it is one but wrong.
pub(crate) fn line(text: &str) -> Option<Result<SumLine, String>> {
    gnu(text).or_else(|| bsd(text))
}

/// `HEX  PATH` or `HEX *PATH`, optionally starting with `\` (escaped path).
fn gnu(text: &str) -> Option<Result<SumLine, String>> {
    let (escaped, rest) = match text.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let hex_len = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
    if hex_len == 0 {
        return None;
    }
    let after = &rest[hex_len..];
    let path = after
        .strip_prefix("  ")
        .or_else(|| after.strip_prefix(" *"))?;
    let algorithm = match hex_len {
        32 => Algorithm::Md5,
        40 => Algorithm::Sha1,
        64 => Algorithm::Sha256,
        128 => Algorithm::Sha512,
        _ => {
            return Some(Err(format!(
                "checksum-file line with a digest of {hex_len} hex digits; md5, sha1, sha256 \
                 and sha512 have 32, 40, 64 and 128"
            )));
        }
    };
    Some(finish(&rest[..hex_len], algorithm, path, escaped))
}

/// `ALGO (PATH) = HEX`, as `sha256sum --tag` and BSD's tools write it.
fn bsd(text: &str) -> Option<Result<SumLine, String>> {
    let (escaped, rest) = match text.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (tag, rest) = rest.split_once(" (")?;
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    let (path, hex) = rest.rsplit_once(") = ")?;
    let Some(algorithm) = Algorithm::from_name(tag).filter(|a| *a != Algorithm::Crc32c) else {
        return Some(Err(format!(
            "checksum-file line tagged '{}'; MD5, SHA1, SHA256 and SHA512 are known",
            clip(tag, SHOWN_CHARS)
        )));
    };
    Some(finish(hex.trim(), algorithm, path, escaped))
}

fn finish(hex: &str, algorithm: Algorithm, path: &str, escaped: bool) -> Result<SumLine, String> {
    let checksum = Checksum::new(algorithm, hex);
    checksum.check().map_err(|e| e.to_string())?;
    let path = if escaped {
        unescape(path)?
    } else {
        path.to_string()
    };
    let path = path.strip_prefix("./").unwrap_or(&path).to_string();
    if path.is_empty() {
        return Err("checksum-file line without a path".to_string());
    }
    Ok(SumLine { path, checksum })
}

/// Undoes `sha256sum`'s escapes: `\\`, `\n` and `\r`.
fn unescape(path: &str) -> Result<String, String> {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => {
                return Err(format!(
                    "checksum-file path '{}' has an unknown escape '\\{}'",
                    clip(path, SHOWN_CHARS),
                    other.map_or(String::new(), String::from)
                ));
            }
        }
    }
    Ok(out)
}

/// The URL of `path` under `base`: each segment percent-encoded (all but letters, digits
/// and `-._~!$&'()*+,;=:@`), joined to `base` with one `/`.
pub(crate) fn url_under(base: &str, path: &str) -> String {
    let mut url = base.trim_end_matches('/').to_string();
    for segment in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        url.push('/');
        for b in segment.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
                url.push(b as char);
            } else {
                url.push_str(&format!("%{b:02X}"));
            }
        }
    }
    url
}

/// One line of a `sha256sum -c` file for `path` (relative, `/`-separated) with `sha256`,
/// newline included; a path with a backslash or a line break is escaped as `sha256sum`
/// escapes it.
///
/// ```
/// use std::path::Path;
/// let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// assert_eq!(fetchpool::checksum_file_line(sha, Path::new("d/a.bin")), format!("{sha}  d/a.bin\n"));
/// ```
pub fn checksum_file_line(sha256: &str, path: &Path) -> String {
    let path = path.to_string_lossy();
    if path.contains(['\\', '\n', '\r']) {
        let escaped = path
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r");
        format!("\\{sha256}  {escaped}\n")
    } else {
        format!("{sha256}  {path}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn gnu_and_bsd_lines_give_path_and_checksum() {
        let l = line(&format!("{SHA}  dir/a b.iso")).unwrap().unwrap();
        assert_eq!(l.path, "dir/a b.iso");
        assert_eq!(l.checksum.algorithm, Algorithm::Sha256);
        let l = line(&format!("{} *./x.bin", "a".repeat(32)))
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.path.as_str(), l.checksum.algorithm),
            ("x.bin", Algorithm::Md5)
        );
        let l = line(&format!("SHA512 (pool/b.deb) = {}", "B".repeat(128)))
            .unwrap()
            .unwrap();
        assert_eq!(l.path, "pool/b.deb");
        assert_eq!(l.checksum.hex, "b".repeat(128));
        let l = line(&format!("\\{SHA}  back\\\\slash\\nnewline"))
            .unwrap()
            .unwrap();
        assert_eq!(l.path, "back\\slash\nnewline");
        assert_eq!(
            checksum_file_line(SHA, Path::new("back\\slash\nnewline")),
            format!("\\{SHA}  back\\\\slash\\nnewline\n")
        );
    }

    #[test]
    fn other_formats_are_not_checksum_lines() {
        for other in [
            "http://h/a.bin",
            &format!("http://h/a\ta.bin\t{SHA}"),
            "{\"url\":\"http://h/a\"}",
            "deadbeef",
            "http://h/a (1).bin",
            "  http://h/indented",
        ] {
            assert!(line(other).is_none(), "{other}");
        }
        assert!(line(&format!("{}  x", "a".repeat(30))).unwrap().is_err());
        assert!(line("WHIRLPOOL (x) = 00").unwrap().is_err());
    }

    #[test]
    fn urls_encode_each_segment() {
        assert_eq!(
            url_under("http://h/m/", "./d/a b#1.iso"),
            "http://h/m/d/a%20b%231.iso"
        );
        assert_eq!(url_under("http://h", "x"), "http://h/x");
    }
}
