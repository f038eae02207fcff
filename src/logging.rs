//! Logs: human lines on a terminal; under systemd (JOURNAL_STREAM set) no
//! timestamps of our own (journald adds them) and each line starts with its
//! syslog priority `<N>` so `journalctl -p err` filters them.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

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

/// What `RUST_LOG` asks for: a level (`debug`), and levels per module
/// (`info,tillpay::gateway=debug`); `info` when unset. A value that does
/// not parse is said on stderr and `info` is used.
fn filter() -> Targets {
    filter_of(std::env::var("RUST_LOG").ok().as_deref())
}

fn filter_of(rust_log: Option<&str>) -> Targets {
    let default = Targets::new().with_default(Level::INFO);
    match rust_log {
        Some(v) if !v.trim().is_empty() => v.parse().unwrap_or_else(|e| {
            eprintln!("tillpay: RUST_LOG={v:?} is not a log filter ({e}): logging at info");
            default
        }),
        _ => default,
    }
}

/// Installs the subscriber: journald style when systemd runs us.
pub fn init() {
    // A plain per-module level filter, not the regex-based EnvFilter: the
    // daemon's code stays smaller, and a till needs no more.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder
            .with_ansi(false)
            .event_format(Journald)
            .finish()
            .with(filter())
            .try_init()
    } else {
        builder.finish().with(filter()).try_init()
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn rust_log_takes_a_level_and_levels_per_module_and_falls_back_to_info() {
        use tracing::Level;
        let f = super::filter_of(Some("warn,tillpay::gateway=debug"));
        assert!(f.would_enable("tillpay::gateway::wechat", &Level::DEBUG));
        assert!(!f.would_enable("tillpay::engine", &Level::INFO));
        assert!(f.would_enable("tillpay::engine", &Level::WARN));
        for unset in [None, Some(""), Some("=??=")] {
            let f = super::filter_of(unset);
            assert!(f.would_enable("tillpay", &Level::INFO), "{unset:?}");
            assert!(!f.would_enable("tillpay", &Level::DEBUG), "{unset:?}");
        }
    }

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
