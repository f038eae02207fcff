//! `tillpay-hq.toml`: where HQ listens, its database, and the operators'
//! API token. Every mistake names its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// A libpq connection string (`host=… dbname=…` or `postgresql://…`).
    pub database_url: String,
    pub pool_size: usize,
    /// The bearer token of the fleet API (operators, their tools).
    pub api_token: String,
    /// The merchant's gateway accounts (`[wechat]`, `[alipay]`,
    /// `[acquirer]`, as on a till): for fleet reconciliation's bills.
    pub channels: Vec<std::sync::Arc<dyn tillpay::gateway::channel::ChannelConfig>>,
    /// How long HQ waits for a gateway's answer to a relayed call. A
    /// till's own `http_timeout_ms` should be longer, or it gives up first.
    pub gateway_timeout: std::time::Duration,
    /// Behind a load balancer: the console takes a client's address from
    /// the last `X-Forwarded-For` entry (the one the balancer added), for
    /// its login limit and audit log.
    pub trust_forwarded_for: bool,
    /// Where operators reach the console (`https://hq.example.com`): a
    /// POST from any other origin is refused. Unset, the request's Host
    /// decides.
    pub console_origin: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    gateway_timeout_ms: Option<u64>,
    trust_forwarded_for: Option<bool>,
    console_origin: Option<String>,
    database: Option<RawDatabase>,
    api: Option<RawApi>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    /// The connection string itself, when it holds no password.
    url: Option<String>,
    /// Or a file holding it (mode 0600), when it does.
    url_file: Option<PathBuf>,
    pool_size: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    token_file: Option<PathBuf>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8740";

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Syntax {
            path: origin.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        };
        let mut table: toml::Table = toml::from_str(text).map_err(syntax)?;
        let base = origin.parent().unwrap_or(Path::new("."));
        // Each channel checks its own table, as on a till.
        let mut channels = Vec::new();
        // The relay is a till's way to HQ, not a gateway HQ can call.
        for ch in tillpay::gateway::CHANNELS.iter().filter(|c| !c.is_relay()) {
            if let Some(t) = table.remove(ch.name()) {
                let c = ch.check_config(t, base).map_err(|e| ConfigError::Invalid {
                    key: e.key,
                    message: e.message,
                })?;
                channels.push(c);
            }
        }
        let raw: Raw = toml::Value::Table(table).try_into().map_err(syntax)?;
        let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{listen_text:?} is not an address and port such as \"{DEFAULT_LISTEN}\""),
            )
        })?;
        let db = raw
            .database
            .ok_or_else(|| invalid("database", "the [database] table is required"))?;
        let database_url = match (db.url, db.url_file) {
            (Some(u), None) => u,
            (None, Some(f)) => secret(&resolve(base, f), "database.url_file")?,
            (Some(_), Some(_)) => {
                return Err(invalid("database.url", "give url or url_file, not both"))
            }
            (None, None) => return Err(invalid("database.url", "is required (or url_file)")),
        };
        database_url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| {
                invalid(
                    "database.url",
                    format!("not a PostgreSQL connection string: {e}"),
                )
            })?;
        let pool_size = db.pool_size.unwrap_or(16);
        if !(1..=512).contains(&pool_size) {
            return Err(invalid(
                "database.pool_size",
                format!("{pool_size} is outside 1..=512"),
            ));
        }
        let api = raw.api.ok_or_else(|| {
            invalid(
                "api.token_file",
                "the [api] table with token_file is required",
            )
        })?;
        let token_path = resolve(
            base,
            api.token_file
                .ok_or_else(|| invalid("api.token_file", "is required"))?,
        );
        let api_token = secret(&token_path, "api.token_file")?;
        if api_token.len() < 24 {
            return Err(invalid(
                "api.token_file",
                format!(
                    "{} must hold a token of 24 characters or more",
                    token_path.display()
                ),
            ));
        }
        let console_origin = match raw.console_origin {
            None => None,
            Some(o) => {
                let o = o.trim_end_matches('/').to_string();
                let scheme_host = o
                    .strip_prefix("https://")
                    .or_else(|| o.strip_prefix("http://"))
                    .filter(|rest| !rest.is_empty() && !rest.contains('/'));
                if scheme_host.is_none() {
                    return Err(invalid(
                        "console_origin",
                        format!(
                            "{o:?} is not an origin such as \"https://hq.example.com\" (no path)"
                        ),
                    ));
                }
                Some(o)
            }
        };
        let gateway_timeout_ms = raw.gateway_timeout_ms.unwrap_or(8000);
        if !(100..=60_000).contains(&gateway_timeout_ms) {
            return Err(invalid(
                "gateway_timeout_ms",
                format!("{gateway_timeout_ms} is outside 100..=60000"),
            ));
        }
        Ok(Config {
            listen,
            database_url,
            pool_size,
            api_token,
            channels,
            gateway_timeout: std::time::Duration::from_millis(gateway_timeout_ms),
            trust_forwarded_for: raw.trust_forwarded_for.unwrap_or(false),
            console_origin,
        })
    }
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// A secret file's one line; refused when others may read it.
fn secret(path: &Path, key: &str) -> Result<String, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(invalid(
            key,
            format!("{} is readable by others: chmod 600 it", path.display()),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    Ok(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir_with_token(mode: u32) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        let t = d.path().join("api-token");
        std::fs::write(&t, "0123456789abcdef0123456789abcdef\n").expect("token");
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(mode)).expect("chmod");
        d
    }

    fn parse(d: &tempfile::TempDir, text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, &d.path().join("tillpay-hq.toml"))
    }

    #[test]
    fn a_whole_config_parses_and_each_mistake_names_its_key() {
        let d = dir_with_token(0o600);
        let ok = "listen = \"127.0.0.1:9000\"\n[database]\nurl = \"host=/run/postgresql dbname=hq\"\n[api]\ntoken_file = \"api-token\"\n";
        let c = parse(&d, ok).expect("parses");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.pool_size, 16);
        let key = |text: &str| match parse(&d, text) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        assert_eq!(key(&ok.replace("127.0.0.1:9000", "nine")), "listen");
        assert_eq!(
            key(&ok.replace("[database]\nurl = \"host=/run/postgresql dbname=hq\"\n", "")),
            "database"
        );
        assert_eq!(
            key(&ok.replace("host=/run/postgresql dbname=hq", "host=x port=notaport")),
            "database.url"
        );
        assert_eq!(
            key(&ok.replace("[api]\ntoken_file = \"api-token\"\n", "")),
            "api.token_file"
        );
        assert_eq!(
            key(&ok.replace("dbname=hq\"", "dbname=hq\"\npool_size = 0")),
            "database.pool_size"
        );
        assert_eq!(
            key(&format!(
                "console_origin = \"https://hq.example.com/console\"\n{ok}"
            )),
            "console_origin"
        );
        let c = parse(
            &d,
            &format!("console_origin = \"https://hq.example.com/\"\n{ok}"),
        )
        .expect("parses");
        assert_eq!(c.console_origin.as_deref(), Some("https://hq.example.com"));
        assert!(matches!(
            parse(&d, "listen = 3\n[database]\n"),
            Err(ConfigError::Syntax { .. })
        ));
    }

    #[test]
    fn the_shipped_example_parses() {
        let d = dir_with_token(0o600);
        let example = include_str!("../config/tillpay-hq.toml")
            .replace("/etc/tillpay-hq/api-token", "api-token");
        let c = parse(&d, &example).expect("the example parses");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn a_token_others_can_read_is_refused() {
        let d = dir_with_token(0o644);
        let text =
            "[database]\nurl = \"host=/run/postgresql\"\n[api]\ntoken_file = \"api-token\"\n";
        match parse(&d, text) {
            Err(ConfigError::Invalid { key, message }) => {
                assert_eq!(key, "api.token_file");
                assert!(message.contains("chmod 600"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
