//! The Alipay OpenAPI client: signs each call, sends it as a form POST,
//! verifies the answer with the Alipay public key, then classifies it.

use std::time::Duration;

use async_trait::async_trait;

use crate::gateway::{ReadError, SetupError};
use chrono::{NaiveDate, Utc};
use ring::signature::RsaKeyPair;
use serde_json::{json, Value};

use super::classify::{self, china, Reply};
use super::{form, json_scan, keys, sign};
use super::config::AlipayConfig;
use crate::domain::{AuthCode, Provider};
use crate::gateway::text::{error_chain, scrub, scrub_pay};
use crate::gateway::{
    BillAnswer, Gateway, GatewayNote, PayAnswer, PayRequest, QueryAnswer, RefundAnswer,
    RefundRequest, RevokeAnswer,
};

/// The subject Alipay requires when the POS gave none.
const DEFAULT_SUBJECT: &str = "tillpay";
/// An answer of `gateway.do` is a few kilobytes; anything near this is not
/// one, and is unknown.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// A day's bill zip of one merchant account.
const MAX_BILL_BYTES: usize = 64 * 1024 * 1024;

pub struct AlipayGateway {
    http: reqwest::Client,
    /// For the bill file only: follows redirects.
    bill_http: reqwest::Client,
    gateway_url: String,
    app_id: String,
    till_id: String,
    app_key: RsaKeyPair,
    /// PKCS#1 DER of the Alipay public key (not the app's: the classic
    /// "sign check fail" mix-up, gateway-facts.md §A3).
    alipay_public_key: Vec<u8>,
}

impl std::fmt::Debug for AlipayGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlipayGateway")
            .field("gateway_url", &self.gateway_url)
            .field("app_id", &self.app_id)
            .field("till_id", &self.till_id)
            .finish_non_exhaustive()
    }
}

/// What one call came to, before classification.
#[derive(Debug)]
enum Outcome {
    Verified(Reply),
    /// Provably nothing was sent (payment-rules.md §4).
    NotSent(GatewayNote),
    /// Sent, and then no trustworthy answer: transport failure after the
    /// request left, HTTP error, unparseable, unsigned or bad signature.
    Unknown(GatewayNote),
}

impl AlipayGateway {
    /// Parses the keys (an error names the file) and builds the one HTTP
    /// client every call reuses.
    pub fn new(
        cfg: &AlipayConfig,
        till_id: &str,
        http_timeout: Duration,
    ) -> Result<Self, SetupError> {
        let app_key = keys::parse_private_key(&cfg.app_private_key).map_err(|e| {
            format!(
                "alipay.app_private_key_file {}: {e}",
                cfg.app_private_key_file.display()
            )
        })?;
        let alipay_public_key = keys::parse_public_key(&cfg.alipay_public_key).map_err(|e| {
            format!(
                "alipay.alipay_public_key_file {}: {e}",
                cfg.alipay_public_key_file.display()
            )
        })?;
        if keys::public_key_of(&app_key) == alipay_public_key {
            return Err(format!(
                "alipay.alipay_public_key_file {}: this is the app's own public key; \
                 answers are signed by Alipay, so give the Alipay public key",
                cfg.alipay_public_key_file.display()
            )
            .into());
        }
        reqwest::Url::parse(&cfg.gateway_url)
            .map_err(|e| format!("alipay.gateway_url {:?}: {e}", cfg.gateway_url))?;
        // A separate, shorter connect timeout keeps "never connected" (safe
        // to call failed) apart from "sent, then silence" (unknown).
        let connect_timeout = (http_timeout / 2).max(Duration::from_millis(1));
        let roots = crate::gateway::setup::extra_roots(cfg.ca_pem.as_deref(), "alipay.ca_file")?;
        let build = |redirect: reqwest::redirect::Policy| {
            crate::gateway::http_client(&roots, connect_timeout, http_timeout)
                .redirect(redirect)
                .build()
                .map_err(|e| match cfg.ca_pem {
                    Some(_) => format!("alipay.ca_file: a certificate in it is not usable: {e}"),
                    None => format!("alipay: cannot build the HTTP client: {e}"),
                })
        };
        // Gateway calls never follow a redirect: a request that reached one
        // server and then failed to reach another must stay "unknown", not
        // "not sent" (payment-rules.md §4). The bill URL may send the file from
        // elsewhere, so its download may.
        let http = build(reqwest::redirect::Policy::none())?;
        let bill_http = build(reqwest::redirect::Policy::limited(5))?;
        Ok(AlipayGateway {
            http,
            bill_http,
            gateway_url: cfg.gateway_url.clone(),
            app_id: cfg.app_id.clone(),
            till_id: till_id.to_string(),
            app_key,
            alipay_public_key,
        })
    }

    /// The signed form body of one call.
    fn request_body(&self, method: &str, biz: &Value) -> Result<String, String> {
        let biz_content = biz.to_string();
        // Alipay reads the timestamp as China time, whatever the till's zone.
        let timestamp = Utc::now()
            .with_timezone(&china())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let mut params: Vec<(&str, &str)> = vec![
            ("app_id", &self.app_id),
            ("method", method),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", &timestamp),
            ("version", "1.0"),
            ("biz_content", &biz_content),
        ];
        let signature = sign::sign(&self.app_key, &sign::content_to_sign(params.clone()))?;
        params.push(("sign", &signature));
        Ok(form::encode(params))
    }

    /// One signed call. `code`: the payment code in `biz`, if any, masked
    /// out of anything the answer echoes before it is logged or returned.
    async fn call(&self, method: &str, biz: &Value, code: Option<&AuthCode>) -> Outcome {
        let body = match self.request_body(method, biz) {
            Ok(b) => b,
            Err(e) => return Outcome::NotSent(GatewayNote::new("SIGN_FAILED", e)),
        };
        let sent = self
            .http
            .post(&self.gateway_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return transport_outcome(&e),
        };
        let status = resp.status();
        let bytes = match crate::gateway::read_capped(resp, MAX_ANSWER_BYTES).await {
            Ok(b) => b,
            Err(ReadError::Transport(e)) => return Outcome::Unknown(transport_note(&e)),
            Err(ReadError::TooLarge(cap)) => {
                tracing::warn!(method, cap, "alipay answer too large");
                return Outcome::Unknown(GatewayNote::new(
                    "BAD_RESPONSE",
                    format!("answer larger than {cap} bytes"),
                ));
            }
        };
        if !status.is_success() {
            return Outcome::Unknown(GatewayNote::new(
                "HTTP_STATUS",
                format!("the gateway answered HTTP {status}"),
            ));
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Outcome::Unknown(GatewayNote::new("UNVERIFIED", "answer is not UTF-8"));
        };
        match verify_answer(&self.alipay_public_key, method, text) {
            Ok(reply) => Outcome::Verified(reply),
            Err(note) => {
                let note = match code {
                    Some(c) => {
                        let mut note = note;
                        scrub(&mut note, c);
                        note
                    }
                    None => note,
                };
                tracing::warn!(method, code = %note.code, "alipay answer not trusted: {}", note.message);
                Outcome::Unknown(note)
            }
        }
    }

    async fn download(&self, url: &str) -> BillAnswer {
        // The URL lives 30 s: fetch it at once, no retry loop here.
        let resp = match self.bill_http.get(url).send().await {
            Ok(r) => r,
            Err(e) => return BillAnswer::Failed(transport_note(&e)),
        };
        let status = resp.status();
        match crate::gateway::read_capped(resp, MAX_BILL_BYTES).await {
            Ok(b) if status.is_success() && b.starts_with(b"PK\x03\x04") => BillAnswer::File(b),
            Ok(_) => BillAnswer::Failed(GatewayNote::new(
                "BILL_DOWNLOAD",
                format!("the bill URL answered HTTP {status} without a zip"),
            )),
            Err(ReadError::Transport(e)) => BillAnswer::Failed(transport_note(&e)),
            Err(ReadError::TooLarge(cap)) => BillAnswer::Failed(GatewayNote::new(
                "BILL_DOWNLOAD",
                format!("the bill is larger than {cap} bytes"),
            )),
        }
    }
}

/// Verifies an answer body: the raw `<method>_response` (or
/// `error_response`) text against the top-level `sign`.
pub fn verify_answer(
    alipay_public_key: &[u8],
    method: &str,
    body: &str,
) -> Result<Reply, GatewayNote> {
    let unverified = |why: String| GatewayNote::new("UNVERIFIED", why);
    let members = json_scan::top_level_members(body)
        .ok_or_else(|| unverified("answer is not a JSON object".into()))?;
    let node_name = format!("{}_response", method.replace('.', "_"));
    let node = json_scan::member_raw(&members, &node_name)
        .or_else(|| json_scan::member_raw(&members, "error_response"))
        .ok_or_else(|| unverified(format!("answer has no {node_name}")))?;
    let said = || {
        Reply::from_node(node)
            .map(|r| {
                let n = r.note();
                format!(" (it said {}: {})", n.code, n.message)
            })
            .unwrap_or_default()
    };
    let sign_text = json_scan::member_raw(&members, "sign")
        .and_then(|raw| serde_json::from_str::<String>(raw).ok())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unverified(format!("answer is not signed{}", said())))?;
    if !sign::verify(alipay_public_key, node.as_bytes(), &sign_text) {
        return Err(unverified(format!(
            "answer signature does not verify with the Alipay public key{}",
            said()
        )));
    }
    Reply::from_node(node).ok_or_else(|| unverified("signed answer is not a JSON object".into()))
}

/// Only a failure to connect (refused, DNS, connect timeout, TLS
/// handshake) proves that no byte of the request left (payment-rules.md §4).
fn transport_outcome(e: &reqwest::Error) -> Outcome {
    if e.is_connect() {
        Outcome::NotSent(GatewayNote::new("NOT_SENT", error_chain(e)))
    } else {
        Outcome::Unknown(transport_note(e))
    }
}

fn transport_note(e: &reqwest::Error) -> GatewayNote {
    let code = if e.is_timeout() {
        "TIMEOUT"
    } else {
        "TRANSPORT"
    };
    GatewayNote::new(code, error_chain(e))
}

#[async_trait]
impl Gateway for AlipayGateway {
    fn channel(&self) -> &'static str {
        "alipay"
    }

    fn carries(&self) -> &'static [Provider] {
        &[Provider::Alipay]
    }

    async fn pay(&self, req: &PayRequest) -> PayAnswer {
        let subject = match req.subject.trim() {
            "" => DEFAULT_SUBJECT,
            s => s,
        };
        let mut biz = json!({
            "out_trade_no": req.out_trade_no,
            "scene": "bar_code",
            "auth_code": req.auth_code.expose(),
            "subject": subject,
            "total_amount": req.amount.to_yuan(),
            "product_code": "FACE_TO_FACE_PAYMENT",
            "terminal_id": self.till_id,
        });
        with_operator(&mut biz, req.operator_id.as_deref());
        let answer = match self
            .call("alipay.trade.pay", &biz, Some(&req.auth_code))
            .await
        {
            Outcome::Verified(r) => classify::classify_pay(&r, &req.out_trade_no),
            Outcome::NotSent(note) => PayAnswer::NotSent(note),
            Outcome::Unknown(note) => PayAnswer::Unknown {
                note,
                user_paying: false,
            },
        };
        scrub_pay(answer, &req.auth_code)
    }

    async fn query(&self, out_trade_no: &str) -> QueryAnswer {
        let biz = json!({ "out_trade_no": out_trade_no });
        match self.call("alipay.trade.query", &biz, None).await {
            Outcome::Verified(r) => classify::classify_query(&r, out_trade_no),
            Outcome::NotSent(note) | Outcome::Unknown(note) => QueryAnswer::Pending {
                note,
                user_paying: false,
            },
        }
    }

    async fn revoke(&self, out_trade_no: &str) -> RevokeAnswer {
        let biz = json!({ "out_trade_no": out_trade_no });
        match self.call("alipay.trade.cancel", &biz, None).await {
            Outcome::Verified(r) => classify::classify_cancel(&r),
            Outcome::NotSent(note) | Outcome::Unknown(note) => RevokeAnswer::Retry(note),
        }
    }

    async fn refund(&self, req: &RefundRequest) -> RefundAnswer {
        let mut biz = json!({
            "out_trade_no": req.out_trade_no,
            "refund_amount": req.refund_amount.to_yuan(),
            "out_request_no": req.refund_no,
            "terminal_id": self.till_id,
        });
        if let (Some(reason), Some(map)) = (&req.reason, biz.as_object_mut()) {
            map.insert("refund_reason".into(), Value::String(reason.clone()));
        }
        with_operator(&mut biz, req.operator_id.as_deref());
        match self.call("alipay.trade.refund", &biz, None).await {
            Outcome::Verified(r) => classify::classify_refund(&r, &req.out_trade_no),
            // Even "not sent" stays unknown: the engine asks the refund
            // query and retries with the same out_request_no either way.
            Outcome::NotSent(note) | Outcome::Unknown(note) => RefundAnswer::Unknown(note),
        }
    }

    async fn refund_query(&self, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
        let biz = json!({ "out_trade_no": out_trade_no, "out_request_no": refund_no });
        match self
            .call("alipay.trade.fastpay.refund.query", &biz, None)
            .await
        {
            Outcome::Verified(r) => classify::classify_refund_query(&r, out_trade_no, refund_no),
            Outcome::NotSent(note) | Outcome::Unknown(note) => RefundAnswer::Unknown(note),
        }
    }

    async fn bill(&self, date: &str) -> BillAnswer {
        let Ok(day) = NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
            return BillAnswer::Failed(GatewayNote::new(
                "BAD_DATE",
                format!("{date:?} is not a YYYY-MM-DD date"),
            ));
        };
        let china_today = Utc::now().with_timezone(&china()).date_naive();
        let recent = day >= china_today - chrono::Days::new(1);
        let biz = json!({ "bill_type": "trade", "bill_date": date });
        match self
            .call("alipay.data.dataservice.bill.downloadurl.query", &biz, None)
            .await
        {
            Outcome::Verified(r) => match classify::classify_bill(&r, recent) {
                Ok(url) => self.download(&url).await,
                Err(answer) => answer,
            },
            Outcome::NotSent(note) | Outcome::Unknown(note) => BillAnswer::Failed(note),
        }
    }
}

/// The cashier as `operator_id` (商户操作员编号). Alipay takes at most 28
/// characters on a pay (30 on a refund); a cashier id is ASCII, so the cut
/// keeps its first 28.
fn with_operator(biz: &mut Value, operator_id: Option<&str>) {
    if let (Some(o), Some(map)) = (operator_id, biz.as_object_mut()) {
        map.insert("operator_id".into(), Value::String(crate::gateway::text::cut(o, 28).to_string()));
    }
}
