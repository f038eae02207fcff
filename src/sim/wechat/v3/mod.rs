//! The simulator's WeChat Pay v3 dialect: the v3 code pay, query, reverse,
//! refund and trade bill endpoints over the same [`Ledger`] and customer
//! behaviours as the v2 dialect.
//!
//! It behaves as WeChat documents v3: every request's `Authorization`
//! (`WECHATPAY2-SHA256-RSA2048`) is checked against the merchant's key,
//! serial and clock, and a bad one gets an unsigned 401 `SIGN_ERROR`;
//! every other answer is signed with the simulator's key and names it in
//! `Wechatpay-Serial` (the WeChat Pay public key id, or a platform
//! certificate's serial); HTTP 202 while the customer confirms; errors as
//! `{code, message}` with a 4xx or 5xx status. The official code pay error
//! table was not available, so its business errors carry v2's meanings in
//! v3's form (docs/simulator.md).

mod endpoints;
pub mod keys;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ring::signature::RsaKeyPair;
use serde_json::Value;

use crate::gateway::rsa as key_parse;
use crate::sim::alipay::wire as rsa_wire;
use crate::sim::http::{BoxFuture, Handler, SimRequest, SimResponse};
use crate::sim::ledger::Ledger;

/// What an endpoint made of a request, before it is signed.
enum Out {
    /// A JSON answer with this status.
    Json(u16, Value),
    /// Drop the connection without answering.
    Hangup,
    /// Sent as it is, unsigned (a proxy's page, a bill file).
    Raw(SimResponse),
    /// The answer, this long after the request.
    Late(Box<Out>, Duration),
}

fn error(status: u16, code: &str, message: &str) -> Out {
    Out::Json(
        status,
        serde_json::json!({"code": code, "message": message}),
    )
}

/// The v3 dialect, for one merchant account.
pub struct WechatV3Sim {
    ledger: Arc<Ledger>,
    appid: String,
    mchid: String,
    merchant_serial: String,
    /// The merchant's public key (PKCS#1): requests are verified with it.
    merchant_key: Vec<u8>,
    /// Signs every answer.
    signing_key: RsaKeyPair,
    /// Answers name the platform certificate's serial instead of the
    /// public key id.
    platform_certificate: AtomicBool,
    min_reverse_ms: AtomicU64,
    same_day_bills: bool,
}

/// A request's clock may be this far from the simulator's.
const MAX_SKEW_SECS: i64 = 300;

impl WechatV3Sim {
    /// The dialect with the demo merchant of [`keys`].
    pub fn demo(ledger: Arc<Ledger>) -> Result<WechatV3Sim, String> {
        Ok(WechatV3Sim {
            ledger,
            appid: keys::APPID.into(),
            mchid: keys::MCHID.into(),
            merchant_serial: keys::MERCHANT_SERIAL.into(),
            merchant_key: key_parse::parse_public_key(keys::MERCHANT_PUBLIC_KEY_PEM)?,
            signing_key: key_parse::parse_private_key(keys::WECHATPAY_PRIVATE_KEY_PEM)?,
            platform_certificate: AtomicBool::new(false),
            min_reverse_ms: AtomicU64::new(0),
            same_day_bills: false,
        })
    }

    /// Serves each day's bill at once instead of from 09:00 the next day.
    pub fn with_same_day_bills(mut self) -> Self {
        self.same_day_bills = true;
        self
    }

    /// Signs answers as a merchant on platform certificates sees them
    /// (`Wechatpay-Serial` = the certificate's serial), or with the WeChat
    /// Pay public key id (the default, as for merchants since 2025).
    pub fn sign_with_platform_certificate(&self, yes: bool) {
        self.platform_certificate.store(yes, Ordering::Relaxed);
    }

    /// Refuses (and counts) a reverse sooner than `d` after its code pay.
    pub fn enforce_min_reverse_delay(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.min_reverse_ms.store(ms, Ordering::Relaxed);
    }

    fn min_reverse_delay(&self) -> Duration {
        Duration::from_millis(self.min_reverse_ms.load(Ordering::Relaxed))
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Answers one request.
    pub fn respond(&self, req: &SimRequest) -> SimResponse {
        if let Err(why) = self.check_authorization(req) {
            // Unsigned: WeChat signs only answers to requests it verified.
            let body = serde_json::json!({"code": "SIGN_ERROR", "message": why}).to_string();
            return json_reply(401, body, Vec::new());
        }
        let out = endpoints::run(self, req);
        self.word(out)
    }

    /// The `Authorization` header against the merchant's key, serial and
    /// the clock (gateway-facts.md §W11).
    fn check_authorization(&self, req: &SimRequest) -> Result<(), String> {
        let header = req.header("authorization").ok_or("缺少Authorization头")?;
        let params = header
            .strip_prefix("WECHATPAY2-SHA256-RSA2048 ")
            .ok_or("不支持的签名类型")?;
        let mut get = std::collections::HashMap::new();
        for part in params.split(',') {
            if let Some((k, v)) = part.trim().split_once('=') {
                get.insert(k.trim(), v.trim().trim_matches('"'));
            }
        }
        let field = |k: &str| get.get(k).copied().ok_or(format!("Authorization缺少{k}"));
        if field("mchid")? != self.mchid {
            return Err("商户号与签名不匹配".into());
        }
        if !field("serial_no")?.eq_ignore_ascii_case(&self.merchant_serial) {
            return Err("商户证书序列号有误".into());
        }
        let ts: i64 = field("timestamp")?
            .parse()
            .map_err(|_| "timestamp格式错误")?;
        if (chrono::Utc::now().timestamp() - ts).abs() > MAX_SKEW_SECS {
            return Err("请求时间戳与当前时间相差过大".into());
        }
        let nonce = field("nonce_str")?;
        let path = match &req.query {
            Some(q) => format!("{}?{q}", req.path),
            None => req.path.clone(),
        };
        let body = std::str::from_utf8(&req.body).map_err(|_| "请求体不是UTF-8")?;
        let message = format!("{}\n{path}\n{ts}\n{nonce}\n{body}\n", req.method);
        if !rsa_wire::verify(&self.merchant_key, &message, field("signature")?) {
            return Err("签名错误".into());
        }
        Ok(())
    }

    /// Signs an answer: timestamp, nonce and body, with the simulator's
    /// key, named by `Wechatpay-Serial`.
    fn word(&self, out: Out) -> SimResponse {
        match out {
            Out::Hangup => SimResponse::Hangup,
            Out::Raw(r) => r,
            Out::Late(out, after) => SimResponse::Late {
                after,
                then: Box::new(self.word(*out)),
            },
            Out::Json(status, body) => {
                let text = if body.is_null() {
                    String::new()
                } else {
                    body.to_string()
                };
                let ts = chrono::Utc::now().timestamp().to_string();
                let nonce = crate::sim::wechat::wire::nonce();
                let message = format!("{ts}\n{nonce}\n{text}\n");
                let Some(signature) = rsa_wire::sign(&self.signing_key, &message) else {
                    return SimResponse::status(500, "the simulator could not sign");
                };
                let serial = if self.platform_certificate.load(Ordering::Relaxed) {
                    keys::PLATFORM_SERIAL
                } else {
                    keys::PUBLIC_KEY_ID
                };
                let headers = vec![
                    ("Wechatpay-Timestamp".to_string(), ts),
                    ("Wechatpay-Nonce".to_string(), nonce),
                    ("Wechatpay-Signature".to_string(), signature),
                    ("Wechatpay-Serial".to_string(), serial.to_string()),
                    (
                        "Wechatpay-Signature-Type".to_string(),
                        "WECHATPAY2-SHA256-RSA2048".to_string(),
                    ),
                    ("Request-ID".to_string(), crate::sim::wechat::wire::nonce()),
                ];
                json_reply(status, text, headers)
            }
        }
    }
}

fn json_reply(status: u16, body: String, headers: Vec<(String, String)>) -> SimResponse {
    SimResponse::Reply {
        status,
        content_type: "application/json".to_string(),
        body: body.into_bytes(),
        headers,
    }
}

impl Handler for WechatV3Sim {
    fn handle(&self, req: SimRequest) -> BoxFuture<'_, SimResponse> {
        Box::pin(async move { self.respond(&req) })
    }
}

#[cfg(test)]
mod tests;
