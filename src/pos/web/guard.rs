//! What lets a request in: the `Host` it names (against DNS rebinding),
//! the `Origin` a browser sends (another site's page), and the till's
//! bearer token. Pure checks over header values, so every refusal is a
//! test away.

use crate::config::WebConfig;

/// Why a request is refused: its HTTP status and a message that names
/// what to fix, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: &'static str,
}

const BAD_HOST: Refusal = Refusal {
    status: 403,
    message: "Host is not this till's address (the listen address, or localhost with its port)",
};
const BAD_ORIGIN: Refusal = Refusal {
    status: 403,
    message: "this page's Origin is not in web.allowed_origins",
};
const NO_TOKEN: Refusal = Refusal {
    status: 401,
    message: "the till's token is missing or wrong (Authorization: Bearer T, or the WebSocket subprotocol tillpay.bearer.T)",
};

/// The WebSocket subprotocol that carries the token for browsers, which
/// cannot set an Authorization header on a WebSocket.
pub const BEARER_PROTOCOL: &str = "tillpay.bearer.";

pub struct Guard {
    token: String,
    origins: Vec<String>,
    listen: std::net::SocketAddr,
}

impl Guard {
    /// For the interface as configured, bound to `listen`.
    pub fn new(cfg: &WebConfig, listen: std::net::SocketAddr) -> Guard {
        Guard {
            token: cfg.token.clone(),
            origins: cfg.allowed_origins.clone(),
            listen,
        }
    }

    /// A rebinding page reaches the till under its own domain name, and
    /// its requests say so in `Host`: only the listen address and
    /// `localhost`, with the listen port, are this till. Listening on every
    /// address (`web.expose`), any IP address with the port is.
    pub fn host(&self, host: Option<&str>) -> Result<(), Refusal> {
        let host = host.ok_or(BAD_HOST)?;
        let (name, port) = match host.rsplit_once(':') {
            Some((n, p)) if !n.is_empty() => (n, p),
            _ => return Err(BAD_HOST),
        };
        if port.parse::<u16>().ok() != Some(self.listen.port()) {
            return Err(BAD_HOST);
        }
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let ip = name.parse::<std::net::IpAddr>().ok();
        let ours = name.eq_ignore_ascii_case("localhost")
            || ip == Some(self.listen.ip())
            || (self.listen.ip().is_unspecified() && ip.is_some());
        if ours {
            Ok(())
        } else {
            Err(BAD_HOST)
        }
    }

    /// A browser names the page's origin; only listed ones get in. A
    /// client that sends none is not a browser page. The origin, when
    /// allowed, is echoed in the CORS headers.
    pub fn origin<'a>(&self, origin: Option<&'a str>) -> Result<Option<&'a str>, Refusal> {
        match origin {
            None => Ok(None),
            Some(o) if self.origins.iter().any(|a| a == o) => Ok(Some(o)),
            Some(_) => Err(BAD_ORIGIN),
        }
    }

    /// The token, from `Authorization: Bearer T` or, for a WebSocket, one
    /// of the offered subprotocols `tillpay.bearer.T`. Answers the
    /// subprotocol to accept, when it came that way (a browser drops a
    /// WebSocket whose answer does not name one it offered).
    pub fn token(
        &self,
        authorization: Option<&str>,
        protocols: Option<&str>,
    ) -> Result<Option<String>, Refusal> {
        let good = |t: &str| crate::gateway::constant_time_eq(t.as_bytes(), self.token.as_bytes());
        if let Some(t) = authorization.and_then(|a| a.strip_prefix("Bearer ")) {
            return if good(t.trim()) {
                Ok(None)
            } else {
                Err(NO_TOKEN)
            };
        }
        let offered = protocols
            .into_iter()
            .flat_map(|p| p.split(','))
            .map(str::trim)
            .find_map(|p| p.strip_prefix(BEARER_PROTOCOL).map(|t| (p, t)));
        match offered {
            Some((protocol, t)) if good(t) => Ok(Some(protocol.to_string())),
            _ => Err(NO_TOKEN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        guard_on("127.0.0.1:8765")
    }

    fn guard_on(listen: &str) -> Guard {
        Guard {
            token: "k3y-0123456789abcdefghijkl".into(),
            origins: vec!["http://localhost:3000".into()],
            listen: listen.parse().expect("addr"),
        }
    }

    #[test]
    fn only_the_listen_address_or_localhost_with_its_port_is_the_host() {
        let g = guard();
        for ok in ["127.0.0.1:8765", "localhost:8765", "LOCALHOST:8765"] {
            assert_eq!(g.host(Some(ok)), Ok(()), "{ok}");
        }
        for bad in [
            None,
            Some("evil.example:8765"),
            Some("127.0.0.1.nip.io:8765"),
            Some("localhost:80"),
            Some("localhost"),
            Some(":8765"),
            Some("localhost.:8765"),
            Some("127.0.0.2:8765"),
            Some("192.168.1.20:8765"),
        ] {
            assert_eq!(g.host(bad), Err(BAD_HOST), "{bad:?}");
        }
        assert_eq!(guard_on("[::1]:8765").host(Some("[::1]:8765")), Ok(()));
        // Exposed on every address: the till's LAN address is its own, a
        // name still is not.
        let exposed = guard_on("0.0.0.0:8765");
        assert_eq!(exposed.host(Some("192.168.1.20:8765")), Ok(()));
        assert_eq!(exposed.host(Some("till.example:8765")), Err(BAD_HOST));
    }

    #[test]
    fn a_listed_origin_or_none_passes_any_other_is_refused() {
        let g = guard();
        assert_eq!(g.origin(None), Ok(None));
        assert_eq!(
            g.origin(Some("http://localhost:3000")),
            Ok(Some("http://localhost:3000"))
        );
        for bad in [
            "http://localhost:3001",
            "https://localhost:3000",
            "null",
            "http://evil.example",
        ] {
            assert_eq!(g.origin(Some(bad)), Err(BAD_ORIGIN), "{bad}");
        }
    }

    #[test]
    fn the_token_comes_as_a_bearer_header_or_a_subprotocol() {
        let g = guard();
        let t = "k3y-0123456789abcdefghijkl";
        assert_eq!(g.token(Some(&format!("Bearer {t}")), None), Ok(None));
        assert_eq!(
            g.token(None, Some(&format!("json, tillpay.bearer.{t}"))),
            Ok(Some(format!("tillpay.bearer.{t}")))
        );
        for (auth, proto) in [
            (None, None),
            (Some("Bearer wrong"), None),
            (Some(&format!("Basic {t}")[..]), None),
            (None, Some("tillpay.bearer.wrong")),
            (None, Some(t)),
            // A wrong header is not saved by a right subprotocol.
            (
                Some("Bearer wrong"),
                Some(&format!("tillpay.bearer.{t}")[..]),
            ),
        ] {
            assert_eq!(g.token(auth, proto), Err(NO_TOKEN), "{auth:?} {proto:?}");
        }
    }
}
