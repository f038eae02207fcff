//! The relay as a registered channel. It shares `[hq]` with the journal's
//! sync (one URL, one token) and is on when that table says `relay = true`.
//! It carries every code HQ may have a channel for; HQ refuses, as not
//! sent, a code it has none for.

use std::any::Any;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::Provider;
use crate::gateway::bill::{keeps, Bill, BillError, BillRow};
use crate::gateway::channel::{BillSource, Channel, ChannelConfig};
use crate::gateway::setup::{self, invalid};
use crate::gateway::{Gateway, SetupError};

pub struct Relay;

/// The registry's entry (`gateway/mod.rs`).
pub static CHANNEL: Relay = Relay;

pub static CARRIES: &[Provider] = &[Provider::Wechat, Provider::Alipay, Provider::Unionpay];

/// WeChat refuses a reverse sooner than 15 s after the pay request, and
/// the till cannot tell which gateway HQ chose: the strictest rule holds
/// unless `[hq] min_revoke_delay_ms` says otherwise.
const DEFAULT_MIN_REVOKE_DELAY_MS: u64 = 15_000;

#[derive(Clone)]
pub struct RelayConfig {
    /// HQ's base URL.
    pub url: String,
    pub token: String,
    pub min_revoke_delay: Duration,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("url", &self.url)
            .field("token", &"<secret>")
            .field("min_revoke_delay", &self.min_revoke_delay)
            .finish()
    }
}

impl Channel for Relay {
    fn name(&self) -> &'static str {
        "hq"
    }

    fn carries(&self) -> &'static [Provider] {
        CARRIES
    }

    fn check_config(&self, table: toml::Value, base: &Path) -> Result<Arc<dyn ChannelConfig>, SetupError> {
        Ok(Arc::new(check(&table, base)?))
    }

    fn parse_bill(&self, input: &mut dyn BillSource, till_id: &str) -> Result<Bill, BillError> {
        parse(BufReader::with_capacity(1 << 16, input), till_id)
    }

    fn bill_help(&self) -> &'static str {
        "the rows HQ relays for the day (JSON lines, as `tillpay-hq` serves them)"
    }

    fn configured_by(&self, table: &toml::Value) -> bool {
        table.get("relay").and_then(toml::Value::as_bool) == Some(true)
    }

    fn is_relay(&self) -> bool {
        true
    }
}

fn check(table: &toml::Value, base: &Path) -> Result<RelayConfig, SetupError> {
    let text = |k: &str| table.get(k).and_then(toml::Value::as_str).map(str::to_string);
    let url = setup::secret_url(text("url"), "hq.url")?;
    let file = setup::resolve(base, PathBuf::from(setup::required(text("token_file"), "hq.token_file")?));
    let token = setup::read_token(&file, "hq.token_file", "the till's token from `tillpay-hq till add`")?;
    let delay = match table.get("min_revoke_delay_ms") {
        None => DEFAULT_MIN_REVOKE_DELAY_MS,
        Some(v) => v
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n <= 120_000)
            .ok_or_else(|| invalid("hq.min_revoke_delay_ms", "must be 0..=120000 (milliseconds)"))?,
    };
    // A shorter wait breaks WeChat's rule; only a test HQ on this machine
    // (plain http is allowed to loopback only) may ask for one.
    if delay < DEFAULT_MIN_REVOKE_DELAY_MS && !url.starts_with("http://") {
        return Err(invalid(
            "hq.min_revoke_delay_ms",
            format!("{delay}: WeChat refuses a reverse sooner than 15 s after the pay request (only a loopback test HQ may shorten it)"),
        ));
    }
    Ok(RelayConfig {
        url,
        token,
        min_revoke_delay: Duration::from_millis(delay),
    })
}

/// HQ's relayed bill: one JSON [`BillRow`] a line. A line that is not one
/// makes the whole bill unreadable, as a garbled gateway bill does.
fn parse(input: impl std::io::BufRead, till_id: &str) -> Result<Bill, BillError> {
    let mut bill = Bill::default();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| BillError::Io(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: BillRow = serde_json::from_str(&line)
            .map_err(|e| BillError::format("HQ", format!("line {}: {e}", i + 1)))?;
        bill.total_rows += 1;
        if keeps(till_id, &row.till) {
            bill.rows.push(row);
        } else {
            bill.other_tills += 1;
        }
    }
    Ok(bill)
}

/// The relayed rows as [`parse`] reads them.
pub(crate) fn to_lines(rows: &[BillRow]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        if let Ok(line) = serde_json::to_vec(r) {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
    out
}

impl ChannelConfig for RelayConfig {
    fn name(&self) -> &'static str {
        "hq"
    }

    fn endpoint(&self) -> &str {
        &self.url
    }

    fn gateway(&self, till_id: &str, http_timeout: Duration) -> Result<Arc<dyn Gateway>, SetupError> {
        Ok(Arc::new(super::client::RelayGateway::new(self, till_id, http_timeout)?))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Fen;
    use crate::gateway::bill::RowKind;

    fn row(till: &str) -> BillRow {
        BillRow {
            provider: Provider::Alipay,
            till: till.into(),
            kind: RowKind::Payment,
            out_trade_no: "T1_A".into(),
            transaction_id: "2026".into(),
            refund_no: None,
            amount: Fen(100),
        }
    }

    #[test]
    fn a_relayed_bill_keeps_this_tills_rows_and_refuses_a_garbled_line() {
        let text = to_lines(&[row("T1"), row("T2"), row("T1")]);
        let bill = parse(&text[..], "T1").expect("parses");
        assert_eq!((bill.rows.len(), bill.other_tills, bill.total_rows), (2, 1, 3));
        assert_eq!(bill.rows[0], row("T1"));
        let mut bad = text.clone();
        bad.extend_from_slice(b"{\"provider\": \n");
        assert!(matches!(parse(&bad[..], "T1"), Err(BillError::Format { .. })));
    }

    #[test]
    fn the_relay_is_on_only_when_hq_says_relay() {
        let t = |s: &str| toml::from_str::<toml::Value>(s).expect("toml");
        assert!(CHANNEL.configured_by(&t("url = \"https://hq\"\nrelay = true")));
        assert!(!CHANNEL.configured_by(&t("url = \"https://hq\"")));
        assert!(!CHANNEL.configured_by(&t("relay = \"yes\"")));
    }
}
