//! `[web]`: the loopback WebSocket and HTTP interface for browser POSes.
//! Off unless the table is there; every key that can be wrong is named.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::gateway::setup;

/// Where the browser interface listens and what lets a request in.
#[derive(Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// The bearer token every request must carry (from `token_file`).
    pub token: String,
    /// Browser `Origin` values allowed (`scheme://host[:port]`); a request
    /// with another Origin is refused. Clients that send none (a POS
    /// service, curl) pass on the token alone.
    pub allowed_origins: Vec<String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("listen", &self.listen)
            .field("token", &"<secret>")
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    listen: Option<String>,
    token_file: Option<PathBuf>,
    allowed_origins: Option<Vec<String>>,
    /// Set to listen on an address other than loopback: the till's own
    /// firewall is then all that keeps the shop's network from the tokens'
    /// guess.
    expose: Option<bool>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";

pub(super) fn check(raw: RawWeb, base: &Path) -> Result<WebConfig, ConfigError> {
    let text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen: SocketAddr = text.parse().map_err(|_| {
        invalid(
            "web.listen",
            format!("{text:?} is not an IP address and port such as \"{DEFAULT_LISTEN}\""),
        )
    })?;
    if !listen.ip().is_loopback() && raw.expose != Some(true) {
        return Err(invalid(
            "web.listen",
            format!(
                "{listen} is not a loopback address: a browser POS runs on the till, so \
                 listen on 127.0.0.1; set web.expose = true to mean it"
            ),
        ));
    }
    let token_file = setup::resolve(base, setup::required(raw.token_file, "web.token_file")?);
    let token = setup::read_secret(&token_file, "web.token_file")?
        .trim()
        .to_string();
    // It travels in a WebSocket subprotocol, which takes only token
    // characters; long enough that guessing it is hopeless.
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if token.len() < 24 || token.len() > 256 || !token.bytes().all(token_char) {
        return Err(invalid(
            "web.token_file",
            format!(
                "{} must hold one token of 24-256 characters of A-Z a-z 0-9 - . _ ~ \
                 (make one: head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')",
                token_file.display()
            ),
        ));
    }
    let mut allowed_origins = Vec::new();
    for o in raw.allowed_origins.unwrap_or_default() {
        let o = o.trim_end_matches('/').to_string();
        if !is_origin(&o) {
            return Err(invalid(
                "web.allowed_origins",
                format!("{o:?} is not an origin such as \"http://localhost:3000\" (scheme, host, port; no path)"),
            ));
        }
        allowed_origins.push(o);
    }
    Ok(WebConfig {
        listen,
        token,
        allowed_origins,
    })
}

/// `http(s)://host[:port]`, nothing after it.
fn is_origin(o: &str) -> bool {
    let Some(rest) = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}
