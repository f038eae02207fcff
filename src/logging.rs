//! Logs: human lines on a terminal; under systemd (JOURNAL_STREAM set) no
//! timestamps of our own (journald adds them) and each line starts with its
//! syslog priority `<N>` so `journalctl -p err` filters them.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// The sd-daemon(3) priority prefix of a level.
pub fn priority(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        Level::DEBUG | Level::TRACE => "<7>",
    }
}

/// Formats `<N>LEVEL message key=value…` for journald.
pub struct Journald;

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: format::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = event.metadata().level();
        write!(w, "{}{level} ", priority(level))?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Installs the subscriber: journald style when systemd runs us.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.with_ansi(false).event_format(Journald).try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn journald_lines_carry_priority_and_no_timestamp() {
        let buf = Buf::default();
        let b2 = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || b2.clone())
            .with_ansi(false)
            .event_format(Journald)
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::error!(order = "A1", code = "1345**********6789", "revoke gave up");
            tracing::info!(order = "A2", "paid");
        });
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "<3>ERROR revoke gave up order=\"A1\" code=\"1345**********6789\""
        );
        assert_eq!(lines[1], "<6>INFO paid order=\"A2\"");
    }
}
