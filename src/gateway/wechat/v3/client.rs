//! The WeChat Pay v3 client: each request signed with the merchant's key,
//! sent over one reused HTTP client (v3 needs no client certificate), the
//! answer verified with the key its `Wechatpay-Serial` names and handed to
//! [`classify`] / [`refund`]. An answer that does not verify is unknown.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::classify::{self, Expect, V3Reply};
use super::config::WechatV3Config;
use super::request::{self, Account, V3Request};
use super::refund;
use super::sign::{self, AnswerHeaders, Merchant, VerifyKeys};
use crate::domain::Provider;
use crate::gateway::wechat::classify::Reply;
use crate::gateway::wechat::failover::Hosts;
use crate::gateway::wechat::sign::nonce;
use crate::gateway::wechat::transport::{finish_pay, transport_error};
use crate::gateway::{
    BillAnswer, Gateway, GatewayNote, PayAnswer, PayRequest, QueryAnswer, ReadError, RefundAnswer,
    RefundRequest, RevokeAnswer, RevokeEffect, Route, SetupError,
};

/// A JSON answer of any v3 call fits in this.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// A real day's bill of one shop is well under this.
const MAX_BILL_BYTES: usize = 32 * 1024 * 1024;
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct WechatV3Gateway {
    hosts: Hosts,
    http: reqwest::Client,
    merchant: Merchant,
    keys: VerifyKeys,
    account: Account,
    till_id: String,
    store_id: Option<String>,
    min_reverse_delay: Duration,
}

impl std::fmt::Debug for WechatV3Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatV3Gateway")
            .field("route", &self.hosts.route())
            .field("mchid", &self.merchant.mchid)
            .field("till_id", &self.till_id)
            .finish_non_exhaustive()
    }
}

/// The `Wechatpay-*` headers of an answer, owned.
struct SignatureHeaders {
    timestamp: Option<String>,
    nonce: Option<String>,
    signature: Option<String>,
    serial: Option<String>,
}

impl SignatureHeaders {
    fn of(resp: &reqwest::Response) -> SignatureHeaders {
        let get = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        SignatureHeaders {
            timestamp: get("Wechatpay-Timestamp"),
            nonce: get("Wechatpay-Nonce"),
            signature: get("Wechatpay-Signature"),
            serial: get("Wechatpay-Serial"),
        }
    }
}

fn from_transport(reply: Reply) -> V3Reply {
    match reply {
        Reply::NotSent(n) => V3Reply::NotSent(n),
        Reply::Lost(n) => V3Reply::Lost(n),
        Reply::Answer(_) => V3Reply::Lost(GatewayNote::new("BAD_RESPONSE", "unexpected answer")),
    }
}

impl WechatV3Gateway {
    /// Builds the client; the error names the config key at fault.
    pub fn new(
        cfg: &WechatV3Config,
        till_id: &str,
        http_timeout: Duration,
    ) -> Result<Self, SetupError> {
        for (key, url) in [("wechat.base_url", Some(&cfg.base_url)), ("wechat.backup_base_url", cfg.backup_url.as_ref())] {
            if let Some(url) = url {
                reqwest::Url::parse(url).map_err(|e| format!("{key} {url:?}: {e}"))?;
            }
        }
        let key = crate::gateway::rsa::parse_private_key(&cfg.private_key_pem)
            .map_err(|e| format!("wechat.cert_key_file: {e}"))?;
        let roots = crate::gateway::setup::extra_roots(cfg.ca_pem.as_deref(), "wechat.ca_file")?;
        let http = crate::gateway::http_client(&roots, http_timeout.min(MAX_CONNECT_TIMEOUT), http_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("wechat.ca_file: the HTTP client cannot be built: {e}"))?;
        let keys = cfg
            .answer_keys
            .iter()
            .map(|k| (k.id.clone(), k.public_key.clone()))
            .collect();
        Ok(WechatV3Gateway {
            hosts: Hosts::new(&cfg.base_url, cfg.backup_url.as_deref()),
            http,
            merchant: Merchant {
                mchid: cfg.signing_mchid().to_string(),
                serial_no: cfg.cert_serial_no.clone(),
                key,
            },
            keys: VerifyKeys::new(keys),
            account: cfg.account.clone(),
            till_id: till_id.to_string(),
            store_id: cfg.store_id.clone(),
            min_reverse_delay: cfg.min_reverse_delay,
        })
    }

    fn expect<'a>(&'a self, out_trade_no: &'a str) -> Expect<'a> {
        Expect {
            mchid: match &self.account {
                Account::Direct { mchid, .. } => mchid,
                Account::Partner { sp_mchid, .. } => sp_mchid,
            },
            out_trade_no,
        }
    }

    /// A signed GET or POST of `path` on `base` (or the request's own
    /// absolute URL, for a bill download).
    fn build(&self, url: String, req: &V3Request, authorization: &str, body: &str) -> reqwest::RequestBuilder {
        let b = match req.method {
            "GET" => self.http.get(url),
            _ => self
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string()),
        };
        b.header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// One call: signed, sent (to the backup domain if the primary cannot
    /// be connected to), its answer read and verified.
    async fn call(&self, req: &V3Request) -> V3Reply {
        let body = req.body_text();
        let nonce = nonce();
        let timestamp = chrono::Utc::now().timestamp();
        let authorization =
            match sign::authorization(&self.merchant, req.method, &req.path, timestamp, &nonce, &body) {
                Ok(a) => a,
                Err(e) => return V3Reply::NotSent(GatewayNote::new("SIGN_FAILED", e)),
            };
        let path = req.path.as_str();
        let resp = self
            .hosts
            .send(path, |base| self.build(format!("{base}{path}"), req, &authorization, &body))
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return from_transport(transport_error(path, &e)),
        };
        self.read_verified(path, resp).await
    }

    async fn read_verified(&self, path: &str, resp: reqwest::Response) -> V3Reply {
        let status = resp.status().as_u16();
        let headers = SignatureHeaders::of(&resp);
        let bytes = match crate::gateway::read_capped(resp, MAX_ANSWER_BYTES).await {
            Ok(b) => b,
            Err(ReadError::TooLarge(cap)) => {
                return V3Reply::Lost(GatewayNote::new("BAD_RESPONSE", format!("answer larger than {cap} bytes")))
            }
            Err(ReadError::Transport(e)) => return from_transport(transport_error(path, &e)),
        };
        let h = AnswerHeaders {
            timestamp: headers.timestamp.as_deref(),
            nonce: headers.nonce.as_deref(),
            signature: headers.signature.as_deref(),
            serial: headers.serial.as_deref(),
        };
        if let Err(why) = sign::verify_answer(&self.keys, &h, &bytes, chrono::Utc::now().timestamp()) {
            if status == 401 {
                // WeChat signs its answer only to a request whose own
                // signature verified: an unsigned 401 means the merchant key
                // or cert_serial_no is wrong. Still unknown, never "failed".
                tracing::error!(path, status, "wechat refused the request's signature: check wechat.cert_key_file and wechat.cert_serial_no");
            } else {
                tracing::warn!(path, status, reason = %why, "wechat v3 answer does not verify; treated as unknown");
            }
            return V3Reply::Lost(GatewayNote::new(
                "UNVERIFIED",
                format!("HTTP {status}: {why}"),
            ));
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    return V3Reply::Lost(GatewayNote::new(
                        "BAD_RESPONSE",
                        format!("HTTP {status}: the answer is not JSON: {e}"),
                    ))
                }
            }
        };
        V3Reply::Answer { status, body }
    }

    /// A request that cannot be built (a number that cannot go into a
    /// path): nothing is sent.
    fn unbuildable(e: String) -> V3Reply {
        V3Reply::NotSent(GatewayNote::new("BAD_REQUEST", e))
    }

    /// Downloads the bill file at `url` (from a verified trade bill answer),
    /// signed like any request.
    async fn download(&self, url: &str) -> Result<Vec<u8>, GatewayNote> {
        let parsed = reqwest::Url::parse(url).map_err(|e| GatewayNote::new("BAD_RESPONSE", format!("download_url: {e}")))?;
        let path_and_query = match parsed.query() {
            Some(q) => format!("{}?{q}", parsed.path()),
            None => parsed.path().to_string(),
        };
        let nonce = nonce();
        let timestamp = chrono::Utc::now().timestamp();
        let authorization = sign::authorization(&self.merchant, "GET", &path_and_query, timestamp, &nonce, "")
            .map_err(|e| GatewayNote::new("SIGN_FAILED", e))?;
        let resp = self
            .http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(|e| GatewayNote::new("NO_ANSWER", e.to_string()))?;
        if !resp.status().is_success() {
            return Err(GatewayNote::new(
                format!("HTTP_{}", resp.status().as_u16()),
                "the bill download was refused",
            ));
        }
        match crate::gateway::read_capped(resp, MAX_BILL_BYTES).await {
            Ok(b) => Ok(b),
            Err(ReadError::TooLarge(cap)) => Err(GatewayNote::new("BAD_RESPONSE", format!("bill larger than {cap} bytes"))),
            Err(ReadError::Transport(e)) => Err(GatewayNote::new("NO_ANSWER", e.to_string())),
        }
    }
}

#[async_trait]
impl Gateway for WechatV3Gateway {
    fn channel(&self) -> &'static str {
        "wechat"
    }

    fn carries(&self) -> &'static [Provider] {
        &[Provider::Wechat]
    }

    fn min_revoke_delay(&self) -> Duration {
        self.min_reverse_delay
    }

    fn route(&self) -> Option<Route> {
        Some(self.hosts.route())
    }

    async fn pay(&self, req: &PayRequest) -> PayAnswer {
        let call = request::codepay(&self.account, req, &self.till_id, self.store_id.as_deref());
        let reply = self.call(&call).await;
        let answer = classify::pay(&reply, &self.expect(&req.out_trade_no));
        finish_pay(answer, &req.auth_code, &req.out_trade_no)
    }

    async fn query(&self, out_trade_no: &str) -> QueryAnswer {
        let reply = match request::query(&self.account, out_trade_no) {
            Ok(call) => self.call(&call).await,
            Err(e) => Self::unbuildable(e),
        };
        classify::query(&reply, &self.expect(out_trade_no))
    }

    async fn revoke(&self, out_trade_no: &str) -> RevokeAnswer {
        let reply = match request::reverse(&self.account, out_trade_no) {
            Ok(call) => self.call(&call).await,
            Err(e) => Self::unbuildable(e),
        };
        let answer = classify::reverse(&reply);
        if answer != RevokeAnswer::Revoked(RevokeEffect::Unstated) {
            return answer;
        }
        // As in v2, the reverse does not say whether money moved; the
        // order query after it does. Reconciliation needs the difference.
        let effect = match request::query(&self.account, out_trade_no) {
            Ok(call) => classify::revoke_effect(&self.call(&call).await, &self.expect(out_trade_no)),
            Err(_) => RevokeEffect::Unstated,
        };
        RevokeAnswer::Revoked(effect)
    }

    async fn refund(&self, req: &RefundRequest) -> RefundAnswer {
        let reply = self.call(&request::refund(&self.account, req)).await;
        refund::refund(&reply, &req.out_trade_no, &req.refund_no)
    }

    async fn refund_query(&self, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
        let reply = match request::refund_query(&self.account, refund_no) {
            Ok(call) => self.call(&call).await,
            Err(e) => Self::unbuildable(e),
        };
        refund::refund_query(&reply, out_trade_no, refund_no)
    }

    async fn bill(&self, date: &str) -> BillAnswer {
        let Ok(day) = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
            return BillAnswer::Failed(GatewayNote::new(
                "BAD_DATE",
                format!("{date:?} is not a YYYY-MM-DD date"),
            ));
        };
        let reply = match request::trade_bill(&self.account, day) {
            Ok(call) => self.call(&call).await,
            Err(e) => Self::unbuildable(e),
        };
        let (url, sha1) = match refund::bill_location(&reply) {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        match self.download(&url).await {
            Ok(bytes) => refund::bill_file(bytes, &sha1),
            Err(note) => BillAnswer::Failed(note),
        }
    }
}
