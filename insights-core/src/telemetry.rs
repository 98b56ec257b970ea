//! Logging with redaction by construction.
//!
//! Every formatted log line, text or JSON, passes through
//! [`RedactingMakeWriter`] before it reaches its sink. It masks phone
//! numbers, e-mail addresses and SIP/Tel/other URIs wherever they appear
//! (messages, fields, span fields, error chains). Code is still expected to
//! log ids instead of personal data; this layer is the safety net.
//! Names and transcript text cannot be recognised by pattern, so they are
//! kept out by construction: `#[tracing::instrument(skip(...))]` and
//! logging ids only.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::LazyLock;

use regex::Regex;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};

static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}").ok()
});
static URI: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"(?i)\b(?:sips?|tel|mailto|https?):[^\s"'<>,;\\]+"#).ok());
// International numbers (`+` or `00` prefix, optional separators) and
// national numbers written with separators, e.g. `(425) 555-0100`.
static PHONE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"\+\d[\d \t().-]{5,20}\d|\b00\d{8,15}\b|\(?\b\d{2,5}\)?[ .-]\d{3,4}[ .-]\d{3,5}\b|\b\d{9,15}\b",
    )
    .ok()
});

/// Replaces the matches of `re` with `mask`, except where the match is part
/// of a larger token such as a UUID, a hex id or a file name.
fn mask_standalone<'a>(
    re: &Regex,
    input: Cow<'a, str>,
    mask: &str,
    check_context: bool,
) -> Cow<'a, str> {
    let s = input.as_ref();
    let mut out = String::new();
    let mut last = 0;
    let mut changed = false;
    for m in re.find_iter(s) {
        if check_context {
            let before = s[..m.start()].chars().next_back();
            let after = s[m.end()..].chars().next();
            let joined = |c: Option<char>| {
                c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            };
            // A run of digits inside a decimal number (`secs=0.123456789`,
            // `1234567890.5`) is a measurement, not a phone number.
            let mut back = s[..m.start()].chars().rev();
            let mut ahead = s[m.end()..].chars();
            let decimal = |sep: Option<char>, digit: Option<char>| {
                matches!(sep, Some('.' | ',')) && digit.is_some_and(|c| c.is_ascii_digit())
            };
            let in_decimal =
                decimal(back.next(), back.next()) || decimal(ahead.next(), ahead.next());
            if joined(before) || joined(after) || in_decimal {
                continue;
            }
        }
        out.push_str(&s[last..m.start()]);
        out.push_str(mask);
        last = m.end();
        changed = true;
    }
    if !changed {
        return input;
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

/// Masks personal identifiers in `line`: e-mail addresses → `[email]`,
/// URIs → `[uri]`, phone numbers → `[phone]`.
pub fn redact(line: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(line);
    if let Some(re) = URI.as_ref() {
        out = mask_standalone(re, out, "[uri]", false);
    }
    if let Some(re) = EMAIL.as_ref() {
        out = mask_standalone(re, out, "[email]", false);
    }
    if let Some(re) = PHONE.as_ref() {
        out = mask_standalone(re, out, "[phone]", true);
    }
    out
}

/// A [`MakeWriter`] that redacts each log record before passing it on.
#[derive(Clone, Debug)]
pub struct RedactingMakeWriter<M> {
    inner: M,
}

impl<M> RedactingMakeWriter<M> {
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

/// Buffers one record and writes it, redacted, when dropped or flushed.
pub struct RedactingWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        let red = redact(&text);
        self.inner.write_all(red.as_bytes())?;
        self.buf.clear();
        self.inner.flush()
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        // Emit whole lines as soon as they are complete.
        if b.ends_with(b"\n") {
            self.emit()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.emit()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.emit();
    }
}

impl<'a, M> MakeWriter<'a> for RedactingMakeWriter<M>
where
    M: MakeWriter<'a>,
{
    type Writer = RedactingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.inner.make_writer(),
            buf: Vec::new(),
        }
    }
}

/// Builds the process's subscriber writing to `writer` (through the
/// redactor). Used by [`init`] and by tests, so tests check the real path.
pub fn subscriber<W>(
    settings: &LogSettings,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = RedactingMakeWriter::new(writer);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    match settings.format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.with_ansi(false).finish()),
    }
}

/// Installs the global subscriber writing to stderr.
pub fn init(settings: &LogSettings) -> Result<(), String> {
    tracing::subscriber::set_global_default(subscriber(settings, io::stderr))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn captured(format: LogFormat, f: impl FnOnce()) -> String {
        let cap = Capture::default();
        let settings = LogSettings {
            format,
            level: "trace".into(),
        };
        let sub = subscriber(&settings, cap.clone());
        tracing::subscriber::with_default(sub, f);
        let bytes = cap.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn log_personal_data() {
        let rec = "0198f0c4-5e1a-7cde-8f00-123456789012";
        let span = tracing::info_span!("call", caller = "+1 (425) 555-0100");
        let _g = span.enter();
        tracing::info!(
            recording = rec,
            email = "jane.doe@contoso.com",
            "participant joined from sip:jane.doe@contoso.com"
        );
        tracing::warn!(
            number = "004930123456",
            uri = "tel:+442079460958",
            "callee (425) 555-0199 rang 20971520 bytes"
        );
        let err = std::io::Error::other("upload for bob@example.org failed");
        tracing::error!(error = %err, "retrying");
    }

    #[test]
    fn personal_identifiers_are_masked_in_text_and_json_logs() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let out = captured(format, log_personal_data);
            for secret in [
                "555-0100",
                "555-0199",
                "jane.doe",
                "contoso.com",
                "4930123456",
                "2079460958",
                "bob@example.org",
            ] {
                assert!(
                    !out.contains(secret),
                    "{format:?} log leaks `{secret}`:\n{out}"
                );
            }
            assert!(
                out.contains("[phone]") && out.contains("[email]") && out.contains("[uri]"),
                "{out}"
            );
            // Ids and byte counts survive.
            assert!(
                out.contains("0198f0c4-5e1a-7cde-8f00-123456789012"),
                "{out}"
            );
            assert!(out.contains("participant joined from"), "{out}");
            assert!(out.contains("20971520 bytes"), "{out}");
        }
    }

    #[test]
    fn decimal_numbers_are_not_phone_numbers() {
        for s in [
            "decoded secs=0.123456789 ratio=1234567890.5",
            "took 0,123456789 s",
            "elapsed=12.3456789012s",
        ] {
            assert_eq!(redact(s), s);
        }
        // A number at the end of a sentence is still masked.
        assert_eq!(redact("call from 4930123456."), "call from [phone].");
        assert_eq!(
            redact("call from 4930123456, then"),
            "call from [phone], then"
        );
    }

    #[test]
    fn redact_leaves_plain_text_alone() {
        let s = "stored recording 0198f0c4-5e1a-7cde-8f00-123456789012 at 2026-11-22T10:00:00Z in 35 ms";
        assert_eq!(redact(s), s);
    }
}
