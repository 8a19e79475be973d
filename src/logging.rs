//! Logs through `tracing`: human-readable lines by default, one JSON object per line with
//! `--log-format json`; either way to stderr, filtered by `PASAR_LOG` (default `warn`).
//!
//! Every line passes through [`redact`] before it is written, so that a bot token inside an
//! HTTP client's error (Telegram puts the token in the URL path), a WhatsApp access token, or a
//! phone number (WhatsApp's user ids are phone numbers) never reaches a log, whichever code
//! logged it. Addresses are never logged by this code; the tests check the lot.

use regex::Regex;
use std::borrow::Cow;
use std::io::Write;
use std::sync::LazyLock;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for journald, Loki and the like).
    Json,
}

/// Starts logging; call once, first thing.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PASAR_LOG").unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(RedactingStderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}

static SECRETS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // A Telegram bot token (`123456789:AA...`), also inside `.../bot<token>/getUpdates`.
        (r"\d{5,}:[A-Za-z0-9_-]{30,}", "[token]"),
        // A Meta (WhatsApp) access token, and any bearer credential.
        (r"EAA[A-Za-z0-9]{20,}", "[token]"),
        (r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}", "Bearer [token]"),
        // An Indonesian phone number, local (08...) or international (62 8..., +62 8...),
        // with or without separators: all but the last three digits hidden.
        (r"(?:\+?62[ .-]?|\b0)8[0-9](?:[ .-]?[0-9]){6,11}", "[phone]"),
    ]
    .into_iter()
    .filter_map(|(pattern, with)| Regex::new(pattern).ok().map(|r| (r, with)))
    .collect()
});

/// A log line with tokens and phone numbers replaced.
pub fn redact(line: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(line);
    for (pattern, with) in SECRETS.iter() {
        if pattern.is_match(&out) {
            out = Cow::Owned(pattern.replace_all(&out, *with).into_owned());
        }
    }
    out
}

/// stderr, one redacted line (event) at a time.
struct RedactingStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = LineBuffer;

    fn make_writer(&'a self) -> LineBuffer {
        LineBuffer(Vec::with_capacity(256))
    }
}

/// Collects one formatted event; redacts and writes it when dropped.
struct LineBuffer(Vec<u8>);

impl Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().lock().write_all(redact(&line).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_phone_numbers_are_hidden_and_the_rest_kept() {
        let cases = [
            (
                "getUpdates failed: error sending request for url (https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_-x/getUpdates)",
                "getUpdates failed: error sending request for url (https://api.telegram.org/bot[token]/getUpdates)",
            ),
            ("authorization: Bearer EAAGm0PX4ZCpsBAKZAZBabcdefghijkl123", "authorization: Bearer [token]"),
            ("token=EAAGm0PX4ZCpsBAKZAZBabcdefghijkl123 x", "token=[token] x"),
            ("user=6281234567890 held", "user=[phone] held"),
            ("nomor 0812-3456-7890 salah", "nomor [phone] salah"),
            ("to +62 812 3456 789.", "to [phone]."),
            (
                "order BLB-0017 total 38000 at 07:00-09:00, chat 5551234567",
                "order BLB-0017 total 38000 at 07:00-09:00, chat 5551234567",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(redact(line), want, "{line}");
        }
    }
}
