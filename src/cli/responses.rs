//! `--responses FILE`: the answers of an API run, one JSON object per memory job as it
//! finishes, so a thousand calls give a thousand lines a program can read.
//!
//! A body is written as the JSON value it is when it parses as JSON, else as a UTF-8
//! string, else as base64; `body_encoding` says which (`json`, `text`, `base64`), so a
//! JSON string body and a plain-text body are told apart. URLs are shown with their
//! secrets hidden, as in the report.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use fetchpool::Outcome;
use serde_json::{Value, json};

/// Longest a finished job's line waits in the buffer before it is written.
const FLUSH: Duration = Duration::from_millis(100);

/// Where captured responses go.
pub struct Responses {
    out: BufWriter<Box<dyn Write>>,
    last_flush: Instant,
    /// The first write error; nothing more is written after it.
    pub error: Option<io::Error>,
}

impl Responses {
    /// Creates `path` (`-` is stdout).
    pub fn create(path: &Path) -> anyhow::Result<Responses> {
        let out: Box<dyn Write> = if path == Path::new("-") {
            Box::new(io::stdout())
        } else {
            Box::new(File::create(path).with_context(|| {
                format!("cannot create the responses file '{}'", path.display())
            })?)
        };
        Ok(Responses {
            out: BufWriter::with_capacity(256 * 1024, out),
            last_flush: Instant::now(),
            error: None,
        })
    }

    /// Writes the line of a finished memory job (other jobs have no line).
    pub fn record(&mut self, outcome: &Outcome, is_memory: bool) {
        if !is_memory || self.error.is_some() {
            return;
        }
        let line = line(outcome).to_string();
        let mut written = writeln!(self.out, "{line}");
        if written.is_ok() && self.last_flush.elapsed() >= FLUSH {
            written = self.out.flush();
            self.last_flush = Instant::now();
        }
        if let Err(e) = written {
            self.error = Some(e);
        }
    }

    /// Writes what is buffered; the first error, if any.
    pub fn finish(mut self) -> Option<io::Error> {
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(e);
        }
        self.error
    }
}

/// One job's line.
pub fn line(outcome: &Outcome) -> Value {
    let report = outcome.to_json();
    let mut v = json!({
        "url": report["url"],
        "id": outcome.job_id,
        "status": report["status"],
        "http_status": outcome.http_status,
        "headers": report.get("headers").cloned().unwrap_or_else(|| json!({})),
    });
    let (body, encoding) = match outcome.body.as_deref() {
        None => (Value::Null, Value::Null),
        Some(bytes) => {
            let (body, encoding) = body(bytes);
            (body, encoding.into())
        }
    };
    v["body"] = body;
    v["body_encoding"] = encoding;
    if let Some(e) = report.get("error").filter(|e| !e.is_null()) {
        v["error"] = e.clone();
    }
    v
}

/// A body as JSON: its value, a string, or base64, and which of the three it is.
pub fn body(bytes: &[u8]) -> (Value, &'static str) {
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        return (value, "json");
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (Value::String(text.to_string()), "text"),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            "base64",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_values_text_or_base64_and_say_which() {
        assert_eq!(body(br#"{"a":[1,2]}"#), (json!({"a": [1, 2]}), "json"));
        assert_eq!(body(b"\"quoted\""), (json!("quoted"), "json"));
        assert_eq!(body(b"plain text"), (json!("plain text"), "text"));
        assert_eq!(body(b""), (json!(""), "text"));
        assert_eq!(body(&[0xff, 0x00, 0x10]), (json!("/wAQ"), "base64"));
    }
}
