//! The TOML config (docs/operations.md#configure): unknown keys are errors, every value is
//! checked, and every error names its key. Secrets live in files named by the
//! config, read here with an OpenSSH-style permission check.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::{is_valid_id, Provider};
use crate::gateway::channel::ChannelConfig;
use crate::gateway::{setup, Gateway, SetupError, CHANNELS};

mod hq_sync;
mod web;

pub use hq_sync::HqConfig;
pub use web::WebConfig;

pub const DEFAULT_PATH: &str = "/etc/tillpay/tillpay.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl From<SetupError> for ConfigError {
    fn from(e: SetupError) -> ConfigError {
        ConfigError::Invalid {
            key: e.key,
            message: e.message,
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub till: TillConfig,
    pub pos: PosConfig,
    pub scanner: Option<ScannerConfig>,
    pub payment: PaymentConfig,
    /// One checked table per configured channel (`[wechat]`, `[alipay]`,
    /// …), in the order of the registry.
    pub channels: Vec<Arc<dyn ChannelConfig>>,
    /// `[routes]`: which channel carries each provider's codes, when the
    /// config says; see [`Config::route`].
    pub routes: Vec<(Provider, String)>,
    /// `[web]`: the browser POS interface, when configured.
    pub web: Option<WebConfig>,
    /// `[hq]`: the merchant's HQ the journal syncs to, when configured.
    pub hq: Option<HqConfig>,
}

#[derive(Debug, Clone)]
pub struct TillConfig {
    pub id: String,
    pub state_dir: PathBuf,
}

impl TillConfig {
    pub fn journal_path(&self) -> PathBuf {
        self.state_dir.join("journal.sqlite")
    }
}

#[derive(Debug, Clone)]
pub struct PosConfig {
    pub socket: PathBuf,
    pub socket_mode: u32,
    pub allowed_uids: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct ScannerConfig {
    pub device: PathBuf,
    pub baud: u32,
    pub frame_gap: Duration,
    pub kind: ScannerKind,
}

/// How the gun talks to the till.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScannerKind {
    /// USB-COM or RS232: bytes on a tty.
    #[default]
    Serial,
    /// USB keyboard mode: key events on an evdev node, grabbed.
    Hid {
        layout: crate::scanner::hid::Layout,
        /// Keys further apart than this are a person typing, not a scan.
        max_key_gap: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentConfig {
    pub scan_timeout: Duration,
    pub poll_interval: Duration,
    pub pay_timeout: Duration,
    pub revoke_interval: Duration,
    pub revoke_max_attempts: u32,
    pub http_timeout: Duration,
    pub max_amount: u64,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        PaymentConfig {
            scan_timeout: Duration::from_millis(120_000),
            poll_interval: Duration::from_millis(5_000),
            pay_timeout: Duration::from_millis(30_000),
            revoke_interval: Duration::from_millis(2_000),
            revoke_max_attempts: 5,
            http_timeout: Duration::from_millis(10_000),
            max_amount: 500_000,
        }
    }
}

// ---- raw TOML shape -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    till: Option<RawTill>,
    pos: Option<RawPos>,
    scanner: Option<RawScanner>,
    payment: Option<RawPayment>,
    web: Option<web::RawWeb>,
    hq: Option<hq_sync::RawHq>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTill {
    id: Option<String>,
    state_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPos {
    socket: Option<PathBuf>,
    socket_mode: Option<String>,
    allowed_uids: Option<Vec<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScanner {
    kind: Option<String>,
    device: Option<PathBuf>,
    baud: Option<u32>,
    frame_gap_ms: Option<u64>,
    layout: Option<String>,
    max_key_gap_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPayment {
    scan_timeout_ms: Option<u64>,
    poll_interval_ms: Option<u64>,
    pay_timeout_ms: Option<u64>,
    revoke_interval_ms: Option<u64>,
    revoke_max_attempts: Option<u32>,
    http_timeout_ms: Option<u64>,
    max_amount: Option<u64>,
}

// ---- loading -------------------------------------------------------------

impl Config {
    /// Reads and checks the config file and the secret files it names.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Checks config text; `origin` names it in errors and anchors relative
    /// secret paths.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            path: origin.to_path_buf(),
            message: message.trim_end().replace('\n', " "),
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let base = origin.parent().unwrap_or(Path::new("."));
        // Each channel checks its own table; what is left is tillpay's.
        let mut channels = Vec::new();
        const OWN: [&str; 7] = ["till", "pos", "scanner", "payment", "routes", "web", "hq"];
        for channel in CHANNELS {
            // A table that is tillpay's own as well (`[hq]`) stays for it.
            let t = if OWN.contains(&channel.name()) {
                table.get(channel.name()).cloned()
            } else {
                table.remove(channel.name())
            };
            if let Some(t) = t.filter(|t| channel.configured_by(t)) {
                channels.push(channel.check_config(t, base)?);
            }
        }
        let routes = check_routes(table.remove("routes"), &channels)?;
        if let Some(key) = table.keys().find(|k| !OWN.contains(&k.as_str())) {
            let channels: Vec<&str> = CHANNELS.iter().map(|c| c.name()).collect();
            return Err(invalid(
                key,
                format!(
                    "unknown table: tillpay knows {} and the channels {}",
                    OWN.join(", "),
                    channels.join(", ")
                ),
            ));
        }
        let raw: Raw = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
        if channels.is_empty() {
            let names: Vec<String> = CHANNELS.iter().map(|c| format!("[{}]", c.name())).collect();
            return Err(invalid(
                &names.join(" / "),
                format!(
                    "no payment provider is configured: add one of the tables {}",
                    names.join(", ")
                ),
            ));
        }
        Ok(Config {
            till: check_till(raw.till)?,
            pos: check_pos(raw.pos.unwrap_or_default())?,
            scanner: raw.scanner.map(check_scanner).transpose()?,
            payment: check_payment(raw.payment.unwrap_or_default())?,
            channels,
            routes,
            web: raw.web.map(|w| web::check(w, base)).transpose()?,
            hq: raw.hq.map(|h| hq_sync::check(h, base)).transpose()?,
        })
    }

    /// The config of the channel named `name`, when it is configured.
    pub fn channel(&self, name: &str) -> Option<&dyn ChannelConfig> {
        self.channels
            .iter()
            .map(|c| c.as_ref())
            .find(|c| c.name() == name)
    }

    /// The channel that carries `provider`'s codes: the one `[routes]`
    /// names, else the first configured channel that carries it (the
    /// wallet's own before an acquirer, in registry order); `None` when no
    /// configured channel does, and the till refuses those codes (1003).
    pub fn route(&self, provider: Provider) -> Option<&str> {
        if let Some((_, name)) = self.routes.iter().find(|(p, _)| *p == provider) {
            return Some(name);
        }
        crate::gateway::carrying(provider)
            .map(|ch| ch.name())
            .find(|n| self.channel(n).is_some())
    }

    /// The concrete config of one channel, for code that knows it.
    pub fn channel_as<T: 'static>(&self) -> Option<&T> {
        self.channels.iter().find_map(|c| c.as_any().downcast_ref())
    }

    /// The gateway clients of the configured channels. A key or
    /// certificate that does not load is an error naming its config key.
    pub fn gateways(&self) -> Result<Vec<Arc<dyn Gateway>>, ConfigError> {
        self.channels
            .iter()
            .map(|c| Ok(c.gateway(&self.till.id, self.payment.http_timeout)?))
            .collect()
    }

    /// Which channel carries each provider, by the channel's name, for
    /// the engine (see [`Config::route`]).
    pub fn routing(&self) -> Vec<(Provider, String)> {
        Provider::ALL
            .into_iter()
            .filter_map(|p| Some((p, self.route(p)?.to_string())))
            .collect()
    }
}

/// `[routes]`: provider = "channel", each channel configured and able to
/// carry that provider's codes.
fn check_routes(
    table: Option<toml::Value>,
    channels: &[Arc<dyn ChannelConfig>],
) -> Result<Vec<(Provider, String)>, ConfigError> {
    let Some(table) = table else {
        return Ok(Vec::new());
    };
    let toml::Value::Table(table) = table else {
        return Err(invalid("routes", "must be a table: provider = \"channel\""));
    };
    let mut routes = Vec::new();
    for (key, value) in table {
        let at = format!("routes.{key}");
        let provider = Provider::parse(&key).ok_or_else(|| {
            let all: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
            invalid(
                &at,
                format!("no such provider: tillpay knows {}", all.join(", ")),
            )
        })?;
        let name = value
            .as_str()
            .ok_or_else(|| invalid(&at, "must be a channel's name in quotes"))?;
        let channel = crate::gateway::channel(name)
            .ok_or_else(|| invalid(&at, format!("{name:?} is not a channel")))?;
        if !channel.carries().contains(&provider) {
            return Err(invalid(
                &at,
                format!("the {name} channel does not carry {provider} codes"),
            ));
        }
        if !channels.iter().any(|c| c.name() == name) {
            return Err(invalid(
                &at,
                format!("the {name} channel is not configured: add its [{name}] table"),
            ));
        }
        routes.push((provider, name.to_string()));
    }
    Ok(routes)
}

fn check_till(raw: Option<RawTill>) -> Result<TillConfig, ConfigError> {
    let raw = raw.ok_or_else(|| invalid("till", "the [till] table is required"))?;
    let id = setup::required(raw.id, "till.id")?;
    if !is_valid_id(&id) {
        return Err(invalid(
            "till.id",
            format!("{id:?} must be 1-32 characters of A-Z a-z 0-9 _ -"),
        ));
    }
    let state_dir = raw
        .state_dir
        .unwrap_or_else(|| PathBuf::from("/var/lib/tillpay"));
    if state_dir.as_os_str().is_empty() {
        return Err(invalid("till.state_dir", "must not be empty"));
    }
    Ok(TillConfig { id, state_dir })
}

fn check_pos(raw: RawPos) -> Result<PosConfig, ConfigError> {
    let mode_text = raw.socket_mode.unwrap_or_else(|| "0660".to_string());
    let socket_mode = u32::from_str_radix(&mode_text, 8)
        .ok()
        .filter(|m| *m <= 0o777 && mode_text.len() <= 4)
        .ok_or_else(|| {
            invalid(
                "pos.socket_mode",
                format!("{mode_text:?} is not an octal file mode such as \"0660\""),
            )
        })?;
    if socket_mode & 0o600 != 0o600 {
        return Err(invalid(
            "pos.socket_mode",
            format!("{mode_text:?} must let the owner read and write"),
        ));
    }
    Ok(PosConfig {
        socket: raw
            .socket
            .unwrap_or_else(|| PathBuf::from("/run/tillpay/pos.sock")),
        socket_mode,
        allowed_uids: raw.allowed_uids.unwrap_or_default(),
    })
}

fn check_scanner(raw: RawScanner) -> Result<ScannerConfig, ConfigError> {
    let device = setup::required(raw.device, "scanner.device")?;
    let baud = raw.baud.unwrap_or(9600);
    const BAUDS: [u32; 8] = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200];
    if !BAUDS.contains(&baud) {
        return Err(invalid(
            "scanner.baud",
            format!("{baud} is not one of {BAUDS:?}"),
        ));
    }
    let kind = match raw.kind.as_deref().unwrap_or("serial") {
        "serial" => {
            for (set, key) in [
                (raw.layout.is_some(), "scanner.layout"),
                (raw.max_key_gap_ms.is_some(), "scanner.max_key_gap_ms"),
            ] {
                if set {
                    return Err(invalid(key, "is for kind = \"hid\" only"));
                }
            }
            ScannerKind::Serial
        }
        "hid" => ScannerKind::Hid {
            layout: raw
                .layout
                .as_deref()
                .unwrap_or("us")
                .parse()
                .map_err(|e: String| invalid("scanner.layout", e))?,
            max_key_gap: ranged(raw.max_key_gap_ms, 50, 5, 1_000, "scanner.max_key_gap_ms")?,
        },
        other => {
            return Err(invalid(
                "scanner.kind",
                format!("{other:?} must be \"serial\" or \"hid\" (a gun in keyboard mode)"),
            ))
        }
    };
    // A keyboard-mode gun's frame ends at its Enter; the gap only closes a
    // frame whose Enter never came, and must outlast a slow typist's keys
    // so that they are reported as typing, not as one-digit scans.
    let gap_default = if matches!(kind, ScannerKind::Hid { .. }) {
        300
    } else {
        50
    };
    let gap = ranged(
        raw.frame_gap_ms,
        gap_default,
        5,
        2_000,
        "scanner.frame_gap_ms",
    )?;
    Ok(ScannerConfig {
        device,
        baud,
        frame_gap: gap,
        kind,
    })
}

fn ranged(
    v: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
    key: &str,
) -> Result<Duration, ConfigError> {
    let v = v.unwrap_or(default);
    if v < min || v > max {
        return Err(invalid(key, format!("{v} ms is outside {min}..={max}")));
    }
    Ok(Duration::from_millis(v))
}

fn check_payment(raw: RawPayment) -> Result<PaymentConfig, ConfigError> {
    let d = PaymentConfig::default();
    let ms = |dur: Duration| dur.as_millis() as u64;
    let poll_interval = ranged(
        raw.poll_interval_ms,
        ms(d.poll_interval),
        10,
        60_000,
        "payment.poll_interval_ms",
    )?;
    let pay_timeout = ranged(
        raw.pay_timeout_ms,
        ms(d.pay_timeout),
        100,
        600_000,
        "payment.pay_timeout_ms",
    )?;
    if poll_interval > pay_timeout {
        return Err(invalid(
            "payment.poll_interval_ms",
            "must not be longer than payment.pay_timeout_ms",
        ));
    }
    let revoke_max_attempts = raw.revoke_max_attempts.unwrap_or(d.revoke_max_attempts);
    if !(1..=100).contains(&revoke_max_attempts) {
        return Err(invalid(
            "payment.revoke_max_attempts",
            format!("{revoke_max_attempts} is outside 1..=100"),
        ));
    }
    let max_amount = raw.max_amount.unwrap_or(d.max_amount);
    if !(1..=10_000_000_000).contains(&max_amount) {
        return Err(invalid(
            "payment.max_amount",
            format!("{max_amount} fen is outside 1..=10000000000"),
        ));
    }
    Ok(PaymentConfig {
        scan_timeout: ranged(
            raw.scan_timeout_ms,
            ms(d.scan_timeout),
            100,
            3_600_000,
            "payment.scan_timeout_ms",
        )?,
        poll_interval,
        pay_timeout,
        revoke_interval: ranged(
            raw.revoke_interval_ms,
            ms(d.revoke_interval),
            10,
            600_000,
            "payment.revoke_interval_ms",
        )?,
        revoke_max_attempts,
        http_timeout: ranged(
            raw.http_timeout_ms,
            ms(d.http_timeout),
            100,
            120_000,
            "payment.http_timeout_ms",
        )?,
        max_amount,
    })
}

#[cfg(test)]
mod tests;
