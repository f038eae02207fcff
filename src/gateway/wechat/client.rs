//! The WeChat Pay v2 client: builds and signs each request, sends it over
//! one reused HTTP client (a second one carries the client certificate for
//! `/secapi/`), verifies the answer and hands it to [`classify`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::gateway::{ReadError, SetupError};

use super::classify::{self, Fields, Reply};
use super::sign::{self, sign_type_name, SignType};
use super::transport::{cut, finish_pay, transport_error};
use crate::gateway::local_ip_towards;
use super::xml;
use super::config::WechatConfig;
use super::failover::Hosts;
use crate::domain::Provider;
use crate::gateway::{
    BillAnswer, Gateway, GatewayNote, PayAnswer, PayRequest, QueryAnswer, RefundAnswer,
    RefundRequest, RevokeAnswer, RevokeEffect,
};

/// WeChat's `body` limit is 128; its lengths are counted in bytes of
/// UTF-8 in practice, so the cut is at 128 bytes on a character boundary
/// (never more than 128 characters either).
const BODY_MAX_BYTES: usize = 128;
/// `refund_desc` is documented as 80 characters.
const REFUND_DESC_MAX_BYTES: usize = 80;
/// A bill can be large; a real day's CSV of one shop is well under this.
const MAX_BILL_BYTES: usize = 32 * 1024 * 1024;
/// Connecting (TCP and TLS) gets at most this long, and never longer than
/// the whole call may take: an error inside it provably sent nothing.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Shown as `body` when the POS gave no subject (the field is required).
const DEFAULT_BODY: &str = "付款码支付";

pub struct WechatGateway {
    hosts: Hosts,
    host: String,
    port: u16,
    appid: String,
    mch_id: String,
    sub_mch_id: Option<String>,
    sub_appid: Option<String>,
    api_key: String,
    sign_type: SignType,
    min_reverse_delay: Duration,
    till_id: String,
    /// For calls that need no certificate.
    plain: reqwest::Client,
    /// For `/secapi/` calls: carries the client certificate when configured.
    secure: reqwest::Client,
    /// The till's address as WeChat sees it (`spbill_create_ip`), found
    /// once it could be found.
    local_ip: Mutex<Option<IpAddr>>,
}

impl std::fmt::Debug for WechatGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatGateway")
            .field("route", &self.hosts.route())
            .field("mch_id", &self.mch_id)
            .field("till_id", &self.till_id)
            .finish_non_exhaustive()
    }
}

impl WechatGateway {
    /// Builds the client. The error names what is wrong: an unusable base
    /// URL, a certificate or key that does not load.
    pub fn new(
        cfg: &WechatConfig,
        till_id: &str,
        http_timeout: Duration,
    ) -> Result<Self, SetupError> {
        let url = reqwest::Url::parse(&cfg.base_url)
            .map_err(|e| format!("wechat.base_url {:?}: {e}", cfg.base_url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "wechat.base_url {:?}: must be http:// or https://",
                cfg.base_url
            )
            .into());
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("wechat.base_url {:?}: no host", cfg.base_url))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let connect_timeout = http_timeout.min(MAX_CONNECT_TIMEOUT);
        let extra_roots = crate::gateway::setup::extra_roots(cfg.ca_pem.as_deref(), "wechat.ca_file")?;
        let builder = || {
            crate::gateway::http_client(&extra_roots, connect_timeout, http_timeout)
                .pool_idle_timeout(Duration::from_secs(30))
        };
        let plain = builder().build().map_err(|e| match cfg.ca_pem {
            // A PEM block whose certificate does not parse fails here.
            Some(_) => format!("wechat.ca_file: a certificate in it is not usable: {e}"),
            None => format!("cannot build the HTTP client: {e}"),
        })?;
        let secure = match &cfg.client_identity {
            Some(id) => {
                let mut pem = id.cert_pem.clone().into_bytes();
                pem.push(b'\n');
                pem.extend_from_slice(id.key_pem.as_bytes());
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    format!(
                        "wechat.cert_file {}: the client certificate and key do not load: {e}",
                        id.cert_file.display()
                    )
                })?;
                builder().identity(identity).build().map_err(|e| {
                    format!(
                        "wechat.cert_file {}: the client certificate is not usable: {e}",
                        id.cert_file.display()
                    )
                })?
            }
            None => plain.clone(),
        };
        if let Some(b) = &cfg.backup_url {
            reqwest::Url::parse(b).map_err(|e| format!("wechat.backup_base_url {b:?}: {e}"))?;
        }
        Ok(WechatGateway {
            hosts: Hosts::new(&cfg.base_url, cfg.backup_url.as_deref()),
            host,
            port,
            appid: cfg.appid.clone(),
            mch_id: cfg.mch_id.clone(),
            sub_mch_id: cfg.sub_mch_id.clone(),
            sub_appid: cfg.sub_appid.clone(),
            api_key: cfg.api_key.clone(),
            sign_type: cfg.sign_type,
            min_reverse_delay: cfg.min_reverse_delay,
            till_id: till_id.to_string(),
            plain,
            secure,
            local_ip: Mutex::new(None),
        })
    }

    /// The fields every call carries. Service-provider mode adds
    /// `sub_mch_id` / `sub_appid` to every call (gateway-facts.md §W10).
    fn base_params(&self) -> Fields {
        let mut p = BTreeMap::new();
        p.insert("appid".to_string(), self.appid.clone());
        p.insert("mch_id".to_string(), self.mch_id.clone());
        if let Some(s) = &self.sub_mch_id {
            p.insert("sub_mch_id".to_string(), s.clone());
        }
        if let Some(s) = &self.sub_appid {
            p.insert("sub_appid".to_string(), s.clone());
        }
        p.insert("nonce_str".to_string(), sign::nonce());
        if self.sign_type == SignType::HmacSha256 {
            // MD5 is the default; HMAC must be named, and the name is signed.
            p.insert(
                "sign_type".to_string(),
                sign_type_name(self.sign_type).to_string(),
            );
        }
        p
    }

    fn signed_body(&self, mut params: Fields) -> String {
        let s = sign::sign(&params, &self.api_key, self.sign_type);
        params.insert("sign".to_string(), s);
        xml::to_xml(&params)
    }

    /// Sends one request and reads at most `cap` bytes of a 200 answer.
    async fn send(
        &self,
        path: &str,
        params: Fields,
        secure: bool,
        cap: usize,
    ) -> Result<Vec<u8>, Reply> {
        let client = if secure { &self.secure } else { &self.plain };
        let body = self.signed_body(params);
        let resp = self
            .hosts
            .send(path, |base| {
                client
                    .post(format!("{base}{path}"))
                    .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
                    .body(body.clone())
            })
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Err(transport_error(path, &e)),
        };
        let status = resp.status();
        if !status.is_success() {
            tracing::warn!(path, %status, "wechat answered with an HTTP error");
            return Err(Reply::Lost(GatewayNote::new(
                format!("HTTP_{}", status.as_u16()),
                format!("WeChat answered HTTP {status}"),
            )));
        }
        match crate::gateway::read_capped(resp, cap).await {
            Ok(out) => Ok(out),
            Err(ReadError::TooLarge(cap)) => {
                tracing::warn!(path, cap, "wechat answer too large");
                Err(Reply::Lost(GatewayNote::new(
                    "BAD_RESPONSE",
                    format!("answer larger than {cap} bytes"),
                )))
            }
            Err(ReadError::Transport(e)) => Err(transport_error(path, &e)),
        }
    }

    /// One XML call: the answer parsed, and verified when it claims
    /// `return_code=SUCCESS` (payment-rules.md §7).
    async fn call(&self, path: &str, params: Fields, secure: bool) -> Reply {
        let body = match self.send(path, params, secure, xml::MAX_BODY).await {
            Ok(b) => b,
            Err(reply) => return reply,
        };
        let fields = match xml::parse(&body) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path, error = %e, "wechat answer is not the expected XML");
                return Reply::Lost(GatewayNote::new(
                    "BAD_RESPONSE",
                    format!("unreadable answer: {e}"),
                ));
            }
        };
        if fields.get("return_code").map(String::as_str) == Some("SUCCESS") {
            if !sign::verify(&fields, &self.api_key, self.sign_type) {
                tracing::warn!(path, "wechat answer signature does not verify");
                return Reply::Lost(GatewayNote::new(
                    "BAD_SIGNATURE",
                    "the answer's signature is missing or wrong",
                ));
            }
            // A signed answer for another merchant is not an answer to us.
            for (k, ours) in [("appid", &self.appid), ("mch_id", &self.mch_id)] {
                if fields.get(k).is_some_and(|v| !v.is_empty() && v != ours) {
                    tracing::warn!(path, field = k, "wechat answer names another merchant");
                    return Reply::Lost(GatewayNote::new(
                        "FOREIGN_ANSWER",
                        format!("the answer's {k} is not ours"),
                    ));
                }
            }
        }
        Reply::Answer(fields)
    }

    /// The till's own address towards WeChat: the source address the OS
    /// picks for a UDP "connection" to the gateway (nothing is sent).
    /// 127.0.0.1 when that cannot be found; only a success is remembered.
    async fn spbill_create_ip(&self) -> IpAddr {
        if let Some(ip) = *self.local_ip.lock().unwrap_or_else(|p| p.into_inner()) {
            return ip;
        }
        let found = tokio::time::timeout(
            Duration::from_secs(2),
            local_ip_towards(&self.host, self.port),
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
}

#[async_trait]
impl Gateway for WechatGateway {
    fn channel(&self) -> &'static str {
        "wechat"
    }

    fn carries(&self) -> &'static [Provider] {
        &[Provider::Wechat]
    }

    fn min_revoke_delay(&self) -> Duration {
        self.min_reverse_delay
    }

    fn route(&self) -> Option<crate::gateway::Route> {
        Some(self.hosts.route())
    }

    async fn pay(&self, req: &PayRequest) -> PayAnswer {
        let mut p = self.base_params();
        let subject = req.subject.trim();
        let body = if subject.is_empty() {
            DEFAULT_BODY
        } else {
            cut(subject, BODY_MAX_BYTES)
        };
        p.insert("body".into(), body.to_string());
        p.insert("out_trade_no".into(), req.out_trade_no.clone());
        p.insert("total_fee".into(), req.amount.0.to_string());
        p.insert(
            "spbill_create_ip".into(),
            self.spbill_create_ip().await.to_string(),
        );
        // The till id is what the bill's 设备号 column shows, which is how
        // reconciliation tells this till's rows from another's.
        p.insert("device_info".into(), self.till_id.clone());
        p.insert("auth_code".into(), req.auth_code.expose().to_string());
        // No trade_type: micropay rejects it ("无效的trade_type").
        let reply = self.call("/pay/micropay", p, false).await;
        let reply = classify::about_order(reply, &req.out_trade_no);
        let answer = classify::pay(&reply);
        finish_pay(answer, &req.auth_code, &req.out_trade_no)
    }

    async fn query(&self, out_trade_no: &str) -> QueryAnswer {
        let mut p = self.base_params();
        p.insert("out_trade_no".into(), out_trade_no.to_string());
        let reply = self.call("/pay/orderquery", p, false).await;
        classify::query(&classify::about_order(reply, out_trade_no))
    }

    async fn revoke(&self, out_trade_no: &str) -> RevokeAnswer {
        let mut p = self.base_params();
        p.insert("out_trade_no".into(), out_trade_no.to_string());
        let answer = classify::revoke(&self.call("/secapi/pay/reverse", p, true).await);
        if answer != RevokeAnswer::Revoked(RevokeEffect::Unstated) {
            return answer;
        }
        // WeChat's reverse does not say whether it closed the order or
        // refunded a payment; the order query after it does (a REVOKED order
        // that was paid still carries its time_end). Reconciliation needs
        // the difference.
        let mut q = self.base_params();
        q.insert("out_trade_no".into(), out_trade_no.to_string());
        let reply = self.call("/pay/orderquery", q, false).await;
        let effect = classify::revoke_effect(&classify::about_order(reply, out_trade_no));
        RevokeAnswer::Revoked(effect)
    }

    async fn refund(&self, req: &RefundRequest) -> RefundAnswer {
        let mut p = self.base_params();
        p.insert("out_trade_no".into(), req.out_trade_no.clone());
        p.insert("out_refund_no".into(), req.refund_no.clone());
        p.insert("total_fee".into(), req.total_amount.0.to_string());
        p.insert("refund_fee".into(), req.refund_amount.0.to_string());
        if let Some(reason) = req.reason.as_deref().map(str::trim) {
            if !reason.is_empty() {
                p.insert(
                    "refund_desc".into(),
                    cut(reason, REFUND_DESC_MAX_BYTES).to_string(),
                );
            }
        }
        classify::refund(
            &self.call("/secapi/pay/refund", p, true).await,
            &req.out_trade_no,
            &req.refund_no,
        )
    }

    async fn refund_query(&self, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
        // out_refund_no alone names one refund; WeChat takes the most
        // specific id given, so nothing else is sent.
        let mut p = self.base_params();
        p.insert("out_refund_no".into(), refund_no.to_string());
        classify::refund_query(
            &self.call("/pay/refundquery", p, false).await,
            out_trade_no,
            refund_no,
        )
    }

    async fn bill(&self, date: &str) -> BillAnswer {
        let Ok(day) = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
            return BillAnswer::Failed(GatewayNote::new(
                "BAD_DATE",
                format!("{date:?} is not a YYYY-MM-DD date"),
            ));
        };
        let mut p = self.base_params();
        p.insert("bill_date".into(), day.format("%Y%m%d").to_string());
        p.insert("bill_type".into(), "ALL".into());
        let body = self
            .send("/pay/downloadbill", p, false, MAX_BILL_BYTES)
            .await
            .map_err(|reply| match reply {
                Reply::NotSent(n) | Reply::Lost(n) => n,
                Reply::Answer(_) => GatewayNote::new("BAD_RESPONSE", "unexpected answer"),
            });
        classify::bill(body)
    }
}
