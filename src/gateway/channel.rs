//! A channel as the rest of tillpay sees it, besides its gateway calls:
//! which payment codes it takes, its config table, its bill parser and its
//! own `tillpay doctor` checks. Each channel folder exports one `CHANNEL`
//! implementing [`Channel`]; the `channels!` line in `gateway/mod.rs`
//! registers it (docs/architecture.md#adding-a-channel).

use std::any::Any;
use std::fmt;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::bill::{Bill, BillError};
use super::setup::SetupError;
use super::Gateway;
use crate::domain::Provider;

/// A readable, seekable bill source: a file, or bytes in memory.
pub trait BillSource: Read + Seek {}
impl<T: Read + Seek> BillSource for T {}

pub trait Channel: Sync {
    /// The channel's name everywhere: its config table (`[wechat]`), the
    /// journal's `channel` column, a Payment's `channel`, the
    /// `--<name>-bill` flag.
    fn name(&self) -> &'static str;

    /// Whose payment codes it carries: the wallet's own gateway one, an
    /// acquirer several.
    fn carries(&self) -> &'static [Provider];

    /// Checks the channel's config table; `base` is the folder relative
    /// paths start from. Errors name the key (`wechat.mch_id`).
    fn check_config(
        &self,
        table: toml::Value,
        base: &Path,
    ) -> Result<Arc<dyn ChannelConfig>, SetupError>;

    /// Reads a day's bill as the gateway serves it (or as a file given
    /// on the command line), keeping this till's rows only. Streams: a
    /// big merchant account's bill is never held whole.
    fn parse_bill(&self, input: &mut dyn BillSource, till_id: &str) -> Result<Bill, BillError>;

    /// What the bill file given as `--<name>-bill` is, for `--help`.
    fn bill_help(&self) -> &'static str;

    /// Whether `table` turns this channel on. A channel's table is its
    /// own, so its presence does (the default); the HQ relay shares
    /// `[hq]` with the journal's sync and is on only when it says so.
    fn configured_by(&self, table: &toml::Value) -> bool {
        let _ = table;
        true
    }

    /// A channel that hands calls to the merchant's HQ instead of a
    /// gateway: HQ itself cannot use it.
    fn is_relay(&self) -> bool {
        false
    }
}

/// One channel's checked config: it builds the gateway client and knows
/// what `tillpay doctor` should look at.
pub trait ChannelConfig: fmt::Debug + Send + Sync {
    /// The [`Channel::name`] of the channel it configures.
    fn name(&self) -> &'static str;

    /// The gateway's address, for the reachability and clock checks.
    fn endpoint(&self) -> &str;

    /// The gateway client. A key or certificate that does not load is an
    /// error naming its config key.
    fn gateway(
        &self,
        till_id: &str,
        http_timeout: Duration,
    ) -> Result<Arc<dyn Gateway>, SetupError>;

    /// The channel's own checks for `tillpay doctor` (a certificate about
    /// to expire, say), beside the ones every channel gets.
    fn doctor(&self) -> Vec<Finding> {
        Vec::new()
    }

    /// For code that knows the concrete channel (its tests, the demo).
    fn as_any(&self) -> &dyn Any;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Ok,
    Warn,
    Fail,
}

/// One line of `tillpay doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub health: Health,
    pub what: String,
    pub detail: String,
}

impl Finding {
    pub fn new(health: Health, what: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            health,
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// The registered channel named `name`.
pub fn channel(name: &str) -> Option<&'static dyn Channel> {
    super::CHANNELS.iter().copied().find(|c| c.name() == name)
}

/// The channels that carry `provider`'s codes, in registry order.
pub fn carrying(provider: Provider) -> impl Iterator<Item = &'static dyn Channel> {
    super::CHANNELS
        .iter()
        .copied()
        .filter(move |c| c.carries().contains(&provider))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken_by(s: &str) -> Option<Provider> {
        crate::domain::recognise(s).map(|c| c.provider())
    }

    #[test]
    fn codes_are_the_providers_whose_length_and_prefix_they_have() {
        assert_eq!(taken_by("134567890123456789"), Some(Provider::Wechat));
        assert_eq!(taken_by("104567890123456789"), Some(Provider::Wechat));
        assert_eq!(taken_by("164567890123456789"), None);
        assert_eq!(taken_by("13456789012345678"), None);
        assert_eq!(taken_by("2845678901234567"), Some(Provider::Alipay));
        assert_eq!(taken_by("304567890123456789012345"), Some(Provider::Alipay));
        assert_eq!(taken_by("3045678901234567890123456"), None);
        assert_eq!(taken_by("244567890123456789"), None);
        assert_eq!(taken_by("6901234567892"), None, "an EAN-13 is not a code");
        assert_eq!(taken_by("13456789012345678x"), None);
        assert_eq!(taken_by("6212345678901234567"), Some(Provider::Unionpay));
        assert_eq!(
            taken_by("621234567890123456"),
            None,
            "UnionPay's are 19 digits"
        );
        assert_eq!(taken_by(""), None);
    }

    #[test]
    fn every_channel_is_registered_once_and_found_by_name() {
        for ch in crate::gateway::CHANNELS {
            let n = ch.name();
            let same = crate::gateway::CHANNELS
                .iter()
                .filter(|c| c.name() == n)
                .count();
            assert_eq!(same, 1, "{n}");
            assert!(channel(n).is_some(), "{n}");
            assert!(!ch.carries().is_empty(), "{n} carries nothing");
        }
        for p in [Provider::Wechat, Provider::Alipay] {
            assert!(carrying(p).next().is_some(), "{p}");
        }
    }

    /// A channel is one folder: no code outside `gateway/<name>/` names a
    /// channel's module or matches on a channel, except the simulator and
    /// the demo (which stand for the gateways), the fuzz targets and
    /// `domain::Provider`.
    #[test]
    fn no_code_outside_a_channels_folder_knows_the_channel() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let names: Vec<String> = crate::gateway::CHANNELS
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let variants = ["Provider::Wechat", "Provider::Alipay", "Provider::Unionpay"];
        let mut offences = Vec::new();
        let mut stack = vec![src.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("src readable") {
                let path = entry.expect("entry").path();
                let rel = path
                    .strip_prefix(&src)
                    .expect("under src")
                    .to_string_lossy()
                    .to_string();
                let own = names
                    .iter()
                    .any(|n| rel.starts_with(&format!("gateway/{n}")));
                // The simulator and the demo stand for the gateways; the
                // fuzz targets feed each channel's parsers by name.
                let apart = rel.starts_with("sim") || rel.starts_with("demo") || rel == "fuzz.rs";
                if own || apart || rel == "domain.rs" {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if rel.ends_with("tests.rs") || rel.contains("/tests/") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("readable");
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                for (i, line) in code.lines().enumerate() {
                    let line = line.trim_start();
                    if line.starts_with("//") {
                        continue;
                    }
                    let module = names.iter().any(|n| line.contains(&format!("{n}::")));
                    if module || variants.iter().any(|v| line.contains(v)) {
                        offences.push(format!("src/{rel}:{}: {line}", i + 1));
                    }
                }
            }
        }
        assert!(
            offences.is_empty(),
            "channel code outside its folder:\n{}",
            offences.join("\n")
        );
    }
}
