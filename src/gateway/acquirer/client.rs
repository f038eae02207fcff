//! The acquirer client: each `unified.trade.*` call signed and sent as flat
//! XML to the acquirer's gateway, its answer parsed, verified and handed to
//! [`classify`]. One client carries WeChat, Alipay and UnionPay codes: the
//! gateway tells the wallet from the code itself.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::classify::{self, Fields, Reply};
use super::config::{AcquirerConfig, Keys};
use super::sign::Signer;
use crate::domain::Provider;
use crate::gateway::flat_xml;
use crate::gateway::text::{cut, error_chain, scrub_pay};
use crate::gateway::{
    BillAnswer, Gateway, GatewayNote, PayAnswer, PayRequest, QueryAnswer, ReadError, RefundAnswer,
    RefundRequest, RevokeAnswer, RevokeEffect, SetupError,
};

/// `body` is String(127), counted in bytes of UTF-8.
const BODY_MAX_BYTES: usize = 127;
const MAX_BILL_BYTES: usize = 32 * 1024 * 1024;
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct AcquirerGateway {
    gateway_url: String,
    bill_url: String,
    host: String,
    port: u16,
    mch_id: String,
    signer: Signer,
    op_user_id: Option<String>,
    shop_id: Option<String>,
    till_id: String,
    min_reverse_delay: Duration,
    http: reqwest::Client,
    local_ip: Mutex<Option<IpAddr>>,
}

impl std::fmt::Debug for AcquirerGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcquirerGateway")
            .field("gateway_url", &self.gateway_url)
            .field("mch_id", &self.mch_id)
            .field("till_id", &self.till_id)
            .finish_non_exhaustive()
    }
}

/// payment-rules.md §4: only a failure to connect proves nothing was sent.
fn transport(service: &str, e: &reqwest::Error) -> Reply {
    let text = error_chain(e);
    if e.is_connect() {
        tracing::warn!(service, error = %text, "could not reach the acquirer; nothing was sent");
        Reply::NotSent(GatewayNote::new("NOT_SENT", text))
    } else {
        tracing::warn!(service, error = %text, "no answer from the acquirer after the request left");
        let code = if e.is_timeout() { "TIMEOUT" } else { "NO_ANSWER" };
        Reply::Lost(GatewayNote::new(code, text))
    }
}

impl AcquirerGateway {
    /// Builds the client; the error names the config key at fault.
    pub fn new(cfg: &AcquirerConfig, till_id: &str, http_timeout: Duration) -> Result<Self, SetupError> {
        let url = reqwest::Url::parse(&cfg.gateway_url)
            .map_err(|e| format!("acquirer.gateway_url {:?}: {e}", cfg.gateway_url))?;
        let host = url
            .host_str()
            .ok_or_else(|| format!("acquirer.gateway_url {:?}: no host", cfg.gateway_url))?
            .to_string();
        let signer = match &cfg.keys {
            Keys::Md5 { key } => Signer::Md5 { key: key.clone() },
            Keys::Rsa {
                private_key_pem,
                platform_key,
            } => Signer::Rsa {
                merchant_key: Box::new(
                    crate::gateway::rsa::parse_private_key(private_key_pem)
                        .map_err(|e| format!("acquirer.private_key_file: {e}"))?,
                ),
                platform_key: platform_key.clone(),
            },
        };
        let roots = crate::gateway::setup::extra_roots(cfg.ca_pem.as_deref(), "acquirer.ca_file")?;
        let http = crate::gateway::http_client(&roots, http_timeout.min(MAX_CONNECT_TIMEOUT), http_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("acquirer.ca_file: the HTTP client cannot be built: {e}"))?;
        Ok(AcquirerGateway {
            gateway_url: cfg.gateway_url.clone(),
            bill_url: cfg.bill_url.clone(),
            host,
            port: url.port_or_known_default().unwrap_or(443),
            mch_id: cfg.mch_id.clone(),
            signer,
            op_user_id: cfg.op_user_id.clone(),
            shop_id: cfg.shop_id.clone(),
            till_id: till_id.to_string(),
            min_reverse_delay: cfg.min_reverse_delay,
            http,
            local_ip: Mutex::new(None),
        })
    }

    /// The fields every call carries.
    fn base(&self, service: &str) -> Fields {
        let mut f = BTreeMap::new();
        f.insert("service".into(), service.into());
        f.insert("version".into(), "2.0".into());
        f.insert("charset".into(), "UTF-8".into());
        f.insert("sign_type".into(), self.signer.sign_type().into());
        f.insert("mch_id".into(), self.mch_id.clone());
        f.insert("nonce_str".into(), crate::gateway::nonce());
        f
    }

    /// Signs and posts `fields` to `url`; the answer's body, at most `cap`.
    async fn post(&self, url: &str, mut fields: Fields, cap: usize) -> Result<Vec<u8>, Reply> {
        let service = fields.get("service").cloned().unwrap_or_default();
        let sign = self
            .signer
            .sign(&fields)
            .map_err(|e| Reply::NotSent(GatewayNote::new("SIGN_FAILED", e)))?;
        fields.insert("sign".into(), sign);
        let resp = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .body(flat_xml::to_xml(&fields))
            .send()
            .await
            .map_err(|e| transport(&service, &e))?;
        let status = resp.status();
        if !status.is_success() {
            tracing::warn!(service, %status, "the acquirer answered with an HTTP error");
            return Err(Reply::Lost(GatewayNote::new(
                format!("HTTP_{}", status.as_u16()),
                format!("the acquirer answered HTTP {status}"),
            )));
        }
        match crate::gateway::read_capped(resp, cap).await {
            Ok(b) => Ok(b),
            Err(ReadError::TooLarge(cap)) => Err(Reply::Lost(GatewayNote::new(
                "BAD_RESPONSE",
                format!("answer larger than {cap} bytes"),
            ))),
            Err(ReadError::Transport(e)) => Err(transport(&service, &e)),
        }
    }

    /// One call: the answer parsed, and verified when `status=0`.
    async fn call(&self, fields: Fields) -> Reply {
        let body = match self.post(&self.gateway_url, fields, flat_xml::MAX_BODY).await {
            Ok(b) => b,
            Err(reply) => return reply,
        };
        let fields = match flat_xml::parse(&body) {
            Ok(f) => f,
            Err(e) => {
                return Reply::Lost(GatewayNote::new(
                    "BAD_RESPONSE",
                    format!("unreadable answer: {e}"),
                ))
            }
        };
        let accepted = fields.get("status").map(String::as_str) == Some("0");
        let verified = accepted && self.signer.verify(&fields);
        if accepted && !verified {
            tracing::warn!("the acquirer's answer signature does not verify");
        }
        // A signed answer for another merchant is not an answer to us.
        if verified && fields.get("mch_id").is_some_and(|m| !m.is_empty() && *m != self.mch_id) {
            return Reply::Lost(GatewayNote::new(
                "FOREIGN_ANSWER",
                "the answer's mch_id is not ours",
            ));
        }
        Reply::Answer { fields, verified }
    }

    async fn mch_create_ip(&self) -> IpAddr {
        if let Some(ip) = *self.local_ip.lock().unwrap_or_else(|p| p.into_inner()) {
            return ip;
        }
        let found = tokio::time::timeout(
            Duration::from_secs(2),
            crate::gateway::local_ip_towards(&self.host, self.port),
        )
        .await
        .ok()
        .flatten();
        match found {
            Some(ip) => {
                *self.local_ip.lock().unwrap_or_else(|p| p.into_inner()) = Some(ip);
                ip
            }
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    fn with_order(&self, service: &str, out_trade_no: &str) -> Fields {
        let mut f = self.base(service);
        f.insert("out_trade_no".into(), out_trade_no.into());
        f
    }

    /// `op_user_id` (操作员): the cashier when the POS named one, else the
    /// configured operator, else the merchant number (the acquirer's default).
    fn op_user(&self, cashier: Option<&str>) -> String {
        cashier
            .map(str::to_string)
            .or_else(|| self.op_user_id.clone())
            .unwrap_or_else(|| self.mch_id.clone())
    }
}

#[async_trait]
impl Gateway for AcquirerGateway {
    fn channel(&self) -> &'static str {
        "acquirer"
    }

    fn carries(&self) -> &'static [Provider] {
        super::channel::CARRIES
    }

    /// WeChat's no-reverse-within-15-s rule holds for its codes whatever
    /// the route; the acquirer passes the reverse on.
    fn min_revoke_delay(&self) -> Duration {
        self.min_reverse_delay
    }

    async fn pay(&self, req: &PayRequest) -> PayAnswer {
        let mut f = self.with_order("unified.trade.micropay", &req.out_trade_no);
        let subject = req.subject.trim();
        let body = if subject.is_empty() { "付款码支付" } else { cut(subject, BODY_MAX_BYTES) };
        f.insert("body".into(), body.into());
        f.insert("total_fee".into(), req.amount.0.to_string());
        f.insert("mch_create_ip".into(), self.mch_create_ip().await.to_string());
        f.insert("auth_code".into(), req.auth_code.expose().into());
        // The till is the device: the bill's 设备编号 tells its rows apart.
        f.insert("device_info".into(), self.till_id.clone());
        f.insert("op_device_id".into(), self.till_id.clone());
        f.insert("op_user_id".into(), self.op_user(req.operator_id.as_deref()));
        if let Some(shop) = &self.shop_id {
            f.insert("op_shop_id".into(), shop.clone());
        }
        let answer = classify::pay(&self.call(f).await, &req.out_trade_no, req.amount);
        scrub_pay(answer, &req.auth_code)
    }

    async fn query(&self, out_trade_no: &str) -> QueryAnswer {
        let f = self.with_order("unified.trade.query", out_trade_no);
        classify::query(&self.call(f).await, out_trade_no)
    }

    async fn revoke(&self, out_trade_no: &str) -> RevokeAnswer {
        let f = self.with_order("unified.micropay.reverse", out_trade_no);
        let answer = classify::reverse(&self.call(f).await);
        if answer != RevokeAnswer::Revoked(RevokeEffect::Unstated) {
            return answer;
        }
        // The reverse does not say whether money moved; the query does.
        let q = self.with_order("unified.trade.query", out_trade_no);
        RevokeAnswer::Revoked(classify::revoke_effect(&self.call(q).await, out_trade_no))
    }

    async fn refund(&self, req: &RefundRequest) -> RefundAnswer {
        let mut f = self.with_order("unified.trade.refund", &req.out_trade_no);
        f.insert("out_refund_no".into(), req.refund_no.clone());
        f.insert("total_fee".into(), req.total_amount.0.to_string());
        f.insert("refund_fee".into(), req.refund_amount.0.to_string());
        f.insert("op_user_id".into(), self.op_user(req.operator_id.as_deref()));
        f.insert("refund_channel".into(), "ORIGINAL".into());
        classify::refund(&self.call(f).await, &req.out_trade_no, &req.refund_no)
    }

    async fn refund_query(&self, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
        let mut f = self.base("unified.trade.refundquery");
        f.insert("out_refund_no".into(), refund_no.into());
        classify::refund_query(&self.call(f).await, out_trade_no, refund_no)
    }

    async fn bill(&self, date: &str) -> BillAnswer {
        let Ok(day) = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
            return BillAnswer::Failed(GatewayNote::new("BAD_DATE", format!("{date:?} is not a YYYY-MM-DD date")));
        };
        let mut f = self.base("pay.bill.merchant");
        // Bill samples all send version 1.0.
        f.insert("version".into(), "1.0".into());
        f.insert("bill_date".into(), day.format("%Y%m%d").to_string());
        f.insert("bill_type".into(), "ALL".into());
        match self.post(&self.bill_url, f, MAX_BILL_BYTES).await {
            Ok(body) => classify::bill(body),
            Err(Reply::NotSent(n) | Reply::Lost(n)) => BillAnswer::Failed(n),
            Err(Reply::Answer { .. }) => BillAnswer::Failed(GatewayNote::new("BAD_RESPONSE", "unexpected answer")),
        }
    }
}
