//! Credentials from the command line, the environment and `.netrc`, turned into
//! `Authorization` headers; and header files (`-H @FILE`).
//!
//! A password never goes into a message: errors name the option, the file and the line,
//! never the value. `-u` applies to every job (as curl's does to every URL); a `.netrc`
//! entry only to jobs whose URL names its host. Either way the header is a credential to
//! the library, which drops it on a redirect to another host.

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The environment variable `-u USER` reads the password from.
pub const PASSWORD_VAR: &str = "FETCHPOOL_PASSWORD";

/// `Basic` credentials as an `Authorization` header value.
pub fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// `-u USER[:PASSWORD]`: the `Authorization` value, the password from
/// [`PASSWORD_VAR`] when the argument has none. Never prompts.
pub fn from_user_arg(arg: &str, env: Option<String>) -> anyhow::Result<String> {
    let (user, password) = match arg.split_once(':') {
        Some((user, password)) => (user, password.to_string()),
        None => match env {
            Some(password) => (arg, password),
            None => anyhow::bail!(
                "-u '{}' has no password: set {PASSWORD_VAR} in the environment (kept out of \
                 ps and shell history), or write -u USER:PASSWORD",
                fetchpool::redact::clip(arg, 60)
            ),
        },
    };
    if user.is_empty() {
        anyhow::bail!("-u has an empty user name; write -u USER:PASSWORD or -u USER");
    }
    Ok(basic(user, &password))
}

/// One `machine` (or `default`) entry of a `.netrc` file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// `None` for `default`.
    machine: Option<String>,
    login: Option<String>,
    password: Option<String>,
}

/// A parsed `.netrc`, with curl's semantics: `machine NAME` entries matched by host name
/// (case-insensitive, whatever the scheme and port), the first match winning; `default`
/// matching any host, after all machines; `login` and `password` tokens; `macdef`
/// definitions skipped up to the next blank line; quoted strings with `\"`, `\\`, `\n`,
/// `\r` and `\t` escapes.
#[derive(Debug, Default)]
pub struct Netrc {
    entries: Vec<Entry>,
}

impl Netrc {
    /// The file `--netrc` reads: `$NETRC` when set, else `~/.netrc` (`_netrc` on Windows
    /// when there is no `.netrc`).
    pub fn default_path() -> anyhow::Result<PathBuf> {
        if let Some(p) = std::env::var_os("NETRC").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        let home = std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .ok_or_else(|| {
                anyhow::anyhow!("--netrc: HOME is not set; give the file with --netrc-file FILE")
            })?;
        let home = PathBuf::from(home);
        let dot = home.join(".netrc");
        if cfg!(windows) && !dot.exists() {
            return Ok(home.join("_netrc"));
        }
        Ok(dot)
    }

    /// Reads and parses `path`; a missing or malformed file is an error naming it.
    pub fn read(path: &Path) -> anyhow::Result<Netrc> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the netrc file '{}': {e}; give an existing file with --netrc-file",
                path.display()
            )
        })?;
        Netrc::parse(&text).map_err(|e| anyhow::anyhow!("netrc file '{}': {e}", path.display()))
    }

    /// Parses the text of a `.netrc`. Errors say where, never what a value was.
    pub fn parse(text: &str) -> Result<Netrc, String> {
        let mut tokens = Tokens::new(text);
        let mut entries: Vec<Entry> = Vec::new();
        let mut seen_default = false;
        while let Some(token) = tokens.next()? {
            match token.as_str() {
                "machine" => {
                    let name = tokens
                        .next()?
                        .ok_or("'machine' at the end of the file has no host name")?;
                    if seen_default {
                        return Err(format!(
                            "line {}: 'machine' after 'default'; 'default' must come last",
                            tokens.line
                        ));
                    }
                    entries.push(Entry {
                        machine: Some(name.to_ascii_lowercase()),
                        login: None,
                        password: None,
                    });
                }
                "default" => {
                    seen_default = true;
                    entries.push(Entry {
                        machine: None,
                        login: None,
                        password: None,
                    });
                }
                "login" | "password" | "account" => {
                    let line = tokens.line;
                    let value = tokens
                        .next()?
                        .ok_or_else(|| format!("line {line}: '{token}' has no value"))?;
                    let Some(entry) = entries.last_mut() else {
                        return Err(format!(
                            "line {line}: '{token}' before any 'machine' or 'default'"
                        ));
                    };
                    match token.as_str() {
                        "login" => entry.login = Some(value),
                        "password" => entry.password = Some(value),
                        _ => {}
                    }
                }
                "macdef" => tokens.skip_macro(),
                other => {
                    return Err(format!(
                        "line {}: unknown word '{}' (expected machine, default, login, \
                         password or macdef)",
                        tokens.line,
                        fetchpool::redact::clip(other, 20)
                    ));
                }
            }
        }
        Ok(Netrc { entries })
    }

    /// The `Authorization` value for a request to `url`, or `None`: the first entry for
    /// its host (or `default`), and when the URL names a user, the first such entry with
    /// that login (curl's rule). A URL that has a password of its own gets nothing.
    pub fn authorization(&self, url: &str) -> Option<String> {
        let (user, has_password, host) = url_parts(url)?;
        if has_password {
            return None;
        }
        let host = host.to_ascii_lowercase();
        let entry = self.entries.iter().find(|e| {
            e.machine.as_ref().is_none_or(|m| *m == host)
                && user
                    .as_deref()
                    .is_none_or(|u| e.login.as_deref() == Some(u))
        })?;
        let login = user.or_else(|| entry.login.clone()).unwrap_or_default();
        Some(basic(&login, entry.password.as_deref().unwrap_or("")))
    }
}

/// A URL's user (percent-decoded), whether it has a password, and its host (IPv6 without
/// brackets).
fn url_parts(url: &str) -> Option<(Option<String>, bool, String)> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    };
    let (user, has_password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, _)) => (Some(user), true),
            None => (Some(u), false),
        },
        None => (None, false),
    };
    let user = user.filter(|u| !u.is_empty()).map(percent_decoded);
    Some((user, has_password, host.to_string()))
}

fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The words of a `.netrc`, with the line each ends on.
struct Tokens<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u64,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Tokens {
            chars: text.chars().peekable(),
            line: 1,
        }
    }

    fn next(&mut self) -> Result<Option<String>, String> {
        while let Some(&c) = self.chars.peek() {
            if c == '\n' {
                self.line += 1;
            }
            if c.is_whitespace() {
                self.chars.next();
            } else if c == '#' {
                // A comment to the end of the line (curl skips lines starting with '#').
                while self.chars.peek().is_some_and(|&c| c != '\n') {
                    self.chars.next();
                }
            } else {
                break;
            }
        }
        let Some(&first) = self.chars.peek() else {
            return Ok(None);
        };
        let mut word = String::new();
        if first == '"' {
            self.chars.next();
            loop {
                match self.chars.next() {
                    None => {
                        return Err(format!("line {}: a quoted string is not closed", self.line));
                    }
                    Some('"') => break,
                    Some('\\') => match self.chars.next() {
                        Some('n') => word.push('\n'),
                        Some('r') => word.push('\r'),
                        Some('t') => word.push('\t'),
                        Some(c) => word.push(c),
                        None => {
                            return Err(format!(
                                "line {}: a quoted string is not closed",
                                self.line
                            ));
                        }
                    },
                    Some('\n') => {
                        self.line += 1;
                        word.push('\n');
                    }
                    Some(c) => word.push(c),
                }
            }
        } else {
            while let Some(&c) = self.chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                self.chars.next();
            }
        }
        Ok(Some(word))
    }

    /// Skips a `macdef`: its name and body, up to and including the next blank line.
    fn skip_macro(&mut self) {
        let mut newlines_in_a_row = 0;
        for c in self.chars.by_ref() {
            if c == '\n' {
                self.line += 1;
                newlines_in_a_row += 1;
                if newlines_in_a_row == 2 {
                    return;
                }
            } else if !(c == '\r' || (c.is_whitespace() && newlines_in_a_row > 0)) {
                newlines_in_a_row = 0;
            }
        }
    }
}

/// `-H @FILE`: the headers of `file`, one `Name: value` a line; blank lines and lines
/// starting with `#` are skipped. Errors name the file and line, never a value.
pub fn header_file(file: &str) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        anyhow::anyhow!("-H @{file}: cannot read the header file: {e}; give an existing file")
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            anyhow::bail!(
                "-H @{file}: line {} has no ':'; write each header as 'Name: value'",
                i + 1
            );
        };
        let (k, v) = (k.trim(), v.trim());
        fetchpool::check_header(k, v)
            .map_err(|e| anyhow::anyhow!("-H @{file}: line {}: {e}", i + 1))?;
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(netrc: &str, url: &str) -> Option<String> {
        Netrc::parse(netrc).unwrap().authorization(url)
    }

    #[test]
    fn the_first_machine_for_the_host_wins_then_default() {
        let n = "machine a.example login ann password one\n\
                 machine A.EXAMPLE login bob password two\n\
                 default login anonymous password guest\n";
        assert_eq!(
            auth(n, "https://a.example:8443/x"),
            Some(basic("ann", "one"))
        );
        assert_eq!(
            auth(n, "http://b.example/"),
            Some(basic("anonymous", "guest"))
        );
        // A user in the URL picks that login's entry.
        assert_eq!(auth(n, "http://bob@a.example/"), Some(basic("bob", "two")));
        // A URL with its own password keeps it.
        assert_eq!(auth(n, "http://bob:pw@a.example/"), None);
        assert_eq!(auth("machine x login u password p", "http://y/"), None);
    }

    #[test]
    fn quoted_strings_comments_and_macros() {
        let n = "# my hosts\nmacdef init\ncd /pub\nls\n\nmachine h login \"a b\" password \"p\\\"q\\tr\"\n";
        assert_eq!(auth(n, "http://h/"), Some(basic("a b", "p\"q\tr")));
        let all_on_one_line = "machine h login u password p machine g login v password w";
        assert_eq!(auth(all_on_one_line, "http://g/"), Some(basic("v", "w")));
        assert_eq!(
            auth("machine [::1] login u password p", "http://[::1]:8/"),
            None
        );
        assert_eq!(
            auth("machine ::1 login u password p", "http://[::1]:8/"),
            Some(basic("u", "p"))
        );
    }

    #[test]
    fn malformed_files_say_where_and_never_what() {
        for (text, says) in [
            (
                "machine h login u password \"secret",
                "line 1: a quoted string is not closed",
            ),
            ("login u password secret", "line 1: 'login' before any"),
            (
                "default login u\nmachine h",
                "line 2: 'machine' after 'default'",
            ),
            ("machine h passwd secret", "unknown word 'passwd'"),
        ] {
            let e = Netrc::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn user_arg_reads_the_password_from_the_environment() {
        assert_eq!(from_user_arg("u:p:q", None).unwrap(), basic("u", "p:q"));
        assert_eq!(
            from_user_arg("u", Some("s".into())).unwrap(),
            basic("u", "s")
        );
        let e = from_user_arg("u", None).unwrap_err().to_string();
        assert!(e.contains(PASSWORD_VAR), "{e}");
        assert_eq!(
            basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
