//! The one trait every payment channel implements. Its answers are already
//! classified per payment-rules.md §4-9 and §12-13, so the engine never sees a
//! gateway's own codes except as text for the cashier and the journal.
//!
//! A response whose signature does not verify must never come back as
//! `Paid`, `Failed` or `Revoked`: the client turns it into `Unknown` /
//! `Pending` / `Retry` (payment-rules.md §7).

pub mod bill;
pub mod channel;
pub mod flat_xml;
pub mod rsa;
pub mod setup;
pub mod text;

/// The channels tillpay knows, in the order a payment code is offered to
/// them: each name is a folder of `gateway/` exporting `CHANNEL`.
macro_rules! channels {
    ($($name:ident),+ $(,)?) => {
        $(pub mod $name;)+
        /// Every registered channel.
        pub static CHANNELS: &[&dyn channel::Channel] = &[$(&$name::CHANNEL),+];
    };
}

channels![wechat, alipay, acquirer, hq];

pub use crate::domain::recognise;
pub use bill::BillAnswer;
pub use channel::{carrying, channel};
pub use setup::SetupError;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{AuthCode, Fen, Provider};

/// The gateway's own code and text, kept for the cashier and the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayNote {
    pub code: String,
    pub message: String,
}

impl GatewayNote {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        GatewayNote {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// What a paid order looks like at the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaidInfo {
    /// WeChat `transaction_id` / Alipay `trade_no`.
    pub transaction_id: String,
    /// RFC 3339, when the gateway said; otherwise the engine uses its clock.
    pub paid_at: Option<String>,
    /// The amount the gateway booked, when it said.
    pub amount: Option<Fen>,
    /// What the receipt shows of how the customer paid, where the gateway
    /// says.
    pub paid_by: PaidBy,
}

/// How the customer paid a paid order, as far as the gateway says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaidBy {
    /// What left the customer's wallet (WeChat `cash_fee`, Alipay
    /// `buyer_pay_amount`).
    pub customer_paid: Option<Fen>,
    /// Coupons and discounts that covered the rest (WeChat `coupon_fee`,
    /// Alipay the total less `buyer_pay_amount`).
    pub discount: Option<Fen>,
    /// The payer, masked (an openid or Alipay's masked login).
    pub payer: Option<String>,
}

impl PaidBy {
    /// From what the customer paid of `total`: the rest is the discount.
    pub fn from_customer_paid(
        total: Option<Fen>,
        paid: Option<Fen>,
        payer: Option<&str>,
    ) -> PaidBy {
        PaidBy {
            customer_paid: paid,
            discount: match (total, paid) {
                (Some(t), Some(p)) if p.0 <= t.0 => Some(Fen(t.0 - p.0)),
                _ => None,
            },
            payer: payer.filter(|p| !p.is_empty()).map(mask_payer),
        }
    }
}

/// A payer id with its middle hidden: the first and last four characters
/// around four stars, whatever the id's length (Alipay masks its login
/// already: `159****5620` stays as it is).
pub fn mask_payer(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if id.contains('*') {
        return id.to_string();
    }
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// The request for one attempt's pay call. Every retry of the same attempt
/// sends the same `out_trade_no` (payment-rules.md §1).
#[derive(Debug, Clone)]
pub struct PayRequest {
    pub out_trade_no: String,
    /// The sale and attempt `out_trade_no` was made from, for a channel
    /// that must show the number is its till's (the HQ relay).
    pub order_no: String,
    pub seq: u32,
    pub amount: Fen,
    pub auth_code: AuthCode,
    pub subject: String,
    /// The cashier, for gateways with a field for it (Alipay's
    /// `operator_id`, an acquirer's `op_user_id`).
    pub operator_id: Option<String>,
}

/// Classified answer to a pay call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum PayAnswer {
    /// Money taken; signature verified.
    Paid(PaidInfo),
    /// Definitely not charged (payment-rules.md §6). `config_error` marks errors the
    /// merchant must fix (signature, permission, parameters): logged at error.
    Failed {
        note: GatewayNote,
        config_error: bool,
    },
    /// Nobody knows yet: the customer confirms on the phone, a system error,
    /// a transport failure after the request left, an unverifiable answer.
    /// `user_paying` says the gateway is waiting for the customer.
    Unknown {
        note: GatewayNote,
        user_paying: bool,
    },
    /// The request provably never left (connection refused, DNS, connect
    /// timeout, TLS handshake): safe to call it failed (payment-rules.md §4).
    NotSent(GatewayNote),
    /// The gateway says this `out_trade_no` is already paid or used (WeChat
    /// ORDERPAID / OUT_TRADE_NO_USED, Alipay ACQ.TRADE_HAS_SUCCESS). As
    /// unknown as `Unknown`, and a payment the query then finds may belong
    /// to an earlier sale under the same number (payment-rules.md §1).
    OrderNumberUsed(GatewayNote),
}

/// Classified answer to an order query (payment-rules.md §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum QueryAnswer {
    Paid(PaidInfo),
    /// Not final yet, or the query itself failed: keep polling.
    Pending {
        note: GatewayNote,
        user_paying: bool,
    },
    /// Final and unpaid (WeChat CLOSED/REVOKED, Alipay TRADE_CLOSED).
    NotPaid(GatewayNote),
    /// WeChat PAYERROR: not paid, but still revoked to close the loop.
    PayError(GatewayNote),
}

/// Did the revoke move money? WeChat's reverse does not say; Alipay's
/// cancel does (`action=close|refund`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeEffect {
    /// The order was closed unpaid: no money moved.
    Closed,
    /// The order had been paid and the money went back.
    Refunded,
    /// The gateway confirmed the revoke but did not say which.
    Unstated,
}

/// Classified answer to a revoke (WeChat reverse / Alipay cancel), payment-rules.md §12.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum RevokeAnswer {
    Revoked(RevokeEffect),
    /// Try again after `revoke_interval_ms`: `recall=Y`, `retry_flag=Y`,
    /// SYSTEMERROR, USERPAYING, 20000, transport failure, bad signature.
    Retry(GatewayNote),
    /// The gateway refuses for good (e.g. REVERSE_EXPIRE): an operator must look.
    Refused(GatewayNote),
    /// The gateway has no order under this number (Alipay answers a cancel
    /// so with `ACQ.TRADE_NOT_EXIST`, gateway-facts.md §A6): the pay request
    /// has not arrived, or never will (payment-rules.md §12).
    NotFound(GatewayNote),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefundRequest {
    pub out_trade_no: String,
    pub transaction_id: Option<String>,
    /// The refund number the gateway sees (WeChat `out_refund_no`, Alipay
    /// `out_request_no`): the idempotency key (payment-rules.md §17). Derived from the
    /// till id and the POS refund number, because WeChat wants it unique
    /// across the whole merchant account.
    pub refund_no: String,
    pub total_amount: Fen,
    pub refund_amount: Fen,
    pub reason: Option<String>,
    /// The cashier who refunds, where the gateway has a field for it.
    pub operator_id: Option<String>,
}

/// Classified answer to a refund or refund query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum RefundAnswer {
    Refunded {
        refund_id: Option<String>,
    },
    /// Accepted, not landed yet.
    Processing(GatewayNote),
    /// Refused for good (or, from a query, given up by the gateway).
    Failed(GatewayNote),
    /// Unknown: ask again with the same refund number.
    Unknown(GatewayNote),
    /// Refused for now (a frequency limit): send the same refund later.
    Later(GatewayNote),
    /// A refund query found no such refund: after a refund call that was
    /// never answered, it did not arrive.
    NotFound(GatewayNote),
}

/// Where a channel sends its requests, for `status`: its primary address,
/// a backup it falls back to when the primary cannot be connected to, and
/// which of them goes first now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub primary: String,
    pub backup: Option<String>,
    /// The backup goes first (the primary refused a connection lately).
    pub using_backup: bool,
}

/// The HTTP client settings both gateways share: rustls with the public
/// roots plus `roots`, a connect timeout of its own (so "never connected"
/// stays apart from "sent, then silence"), no redirects (a request that
/// reached one server stays unknown, payment-rules.md §4), tillpay's user agent.
pub(crate) fn http_client(
    roots: &[reqwest::Certificate],
    connect_timeout: std::time::Duration,
    timeout: std::time::Duration,
) -> reqwest::ClientBuilder {
    roots
        .iter()
        .fold(reqwest::Client::builder(), |b, ca| {
            b.add_root_certificate(ca.clone())
        })
        .use_rustls_tls()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tillpay/", env!("CARGO_PKG_VERSION")))
}

/// The till's own address towards `host`: the source address the OS picks
/// for a UDP "connection" to it (nothing is sent). Gateways that want the
/// device's IP in a request (WeChat `spbill_create_ip`, an acquirer's
/// `mch_create_ip`) get it from here.
pub(crate) async fn local_ip_towards(host: &str, port: u16) -> Option<std::net::IpAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    let target: SocketAddr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .ok()?
        .next()?;
    let bind: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind).await.ok()?;
    sock.connect(target).await.ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// A random `nonce_str` (WeChat, the acquirers): 32 characters of
/// `[A-Za-z0-9]`.
pub fn nonce() -> String {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // The OS RNG failing is near impossible; a nonce only has to be
        // unlikely to repeat, so fall back to the clock.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(37);
        }
    }
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// Compares without an early exit, so the time taken says nothing about
/// how many leading characters of a forged signature were right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a capped read of an answer failed.
pub(crate) enum ReadError {
    /// The answer was larger than the cap: a gateway never sends that.
    TooLarge(usize),
    Transport(reqwest::Error),
}

/// Reads an answer's body, refusing one larger than `cap` bytes as it
/// arrives, so a broken or hostile server cannot fill the till's memory.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) if out.len() + chunk.len() > cap => {
                return Err(ReadError::TooLarge(cap))
            }
            Ok(Some(chunk)) => out.extend_from_slice(&chunk),
            Ok(None) => return Ok(out),
            Err(e) => return Err(ReadError::Transport(e)),
        }
    }
}

/// One payment channel. Implementations hold their credentials and one HTTP
/// client; every call is independent and may be retried with the same ids.
#[async_trait]
pub trait Gateway: Send + Sync {
    /// The [`channel::Channel::name`] of its channel.
    fn channel(&self) -> &'static str;

    /// Whose payment codes it carries.
    fn carries(&self) -> &'static [Provider];

    /// The earliest a revoke may be sent after the pay request. WeChat
    /// forbids reversing sooner than 15 s after micropay (payment-rules.md §11).
    fn min_revoke_delay(&self) -> Duration {
        Duration::ZERO
    }

    /// Where requests go, when the channel has more than one address.
    fn route(&self) -> Option<Route> {
        None
    }

    async fn pay(&self, req: &PayRequest) -> PayAnswer;
    async fn query(&self, out_trade_no: &str) -> QueryAnswer;
    async fn revoke(&self, out_trade_no: &str) -> RevokeAnswer;
    async fn refund(&self, req: &RefundRequest) -> RefundAnswer;
    /// The refund `refund_no` (as sent) of the trade `out_trade_no`; an
    /// answer about another trade or refund is unknown.
    async fn refund_query(&self, out_trade_no: &str, refund_no: &str) -> RefundAnswer;
    /// The bill of `date` (`YYYY-MM-DD`).
    async fn bill(&self, date: &str) -> BillAnswer;
}
