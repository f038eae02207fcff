//! The simulator's Alipay dialect: `gateway.do` with RSA2-verified requests
//! and RSA2-signed answers in the real `{"<method>_response":{…},"sign":"…"}`
//! layout, over the shared [`Ledger`]. It also serves the day's bill as the
//! real zip of GBK CSV files, behind a download URL that lives 30 s.

pub mod bill;
pub mod keys;
mod methods;
pub mod wire;
mod zip_gbk;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use ring::signature::RsaKeyPair;
use serde_json::{Map, Value};

use crate::gateway::alipay::AlipayConfig;
use crate::gateway::rsa as key_parse;
use crate::sim::http::{BoxFuture, Handler, SimRequest, SimResponse};
use crate::sim::ledger::Ledger;
use wire::Node;

/// Alipay's bill URL expires 30 s after it is issued (gateway-facts.md §A8).
pub const BILL_URL_LIFETIME: Duration = Duration::from_secs(30);

/// The methods this dialect answers.
const METHODS: [&str; 6] = [
    "alipay.trade.pay",
    "alipay.trade.query",
    "alipay.trade.cancel",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "alipay.data.dataservice.bill.downloadurl.query",
];

pub struct AlipaySim {
    ledger: Arc<Ledger>,
    app_id: String,
    /// PKCS#1 DER of the app public key: requests must verify with it.
    app_public_key: Vec<u8>,
    /// The simulator's own key: answers are signed with it.
    sim_key: RsaKeyPair,
    pid: String,
    same_day_bills: bool,
    bill_urls: Mutex<HashMap<String, (Instant, NaiveDate)>>,
    bill_serial: AtomicU64,
}

/// What a method handler decided: an answer node, or a lost answer.
enum Answer {
    Node(Node),
    Hangup,
    /// The node, answered this long after the request.
    Late(Node, std::time::Duration),
    /// A proxy's HTTP 502 page instead of an answer.
    BadGateway,
    /// An `error_response` without `sign`, as the gateway sends for a
    /// failure of its own.
    Unsigned(Node),
}

impl AlipaySim {
    /// `app_public_key`: the merchant app's public key (SPKI or PKCS#1, PEM
    /// or bare base64); `sim_private_key`: the simulator's own signing key
    /// (whose public half the client is configured with as the "Alipay
    /// public key"). See [`keys`] for the demo pair.
    pub fn new(
        ledger: Arc<Ledger>,
        app_id: &str,
        app_public_key: &str,
        sim_private_key: &str,
    ) -> Result<AlipaySim, String> {
        let app_public_key = key_parse::parse_public_key(app_public_key)
            .map_err(|e| format!("app public key: {e}"))?;
        let sim_key = key_parse::parse_private_key(sim_private_key)
            .map_err(|e| format!("simulator private key: {e}"))?;
        Ok(AlipaySim {
            ledger,
            app_id: app_id.to_string(),
            app_public_key,
            sim_key,
            pid: keys::SIM_PID.to_string(),
            same_day_bills: false,
            bill_urls: Mutex::new(HashMap::new()),
            bill_serial: AtomicU64::new(1),
        })
    }

    /// The simulator with the built-in demo keys and app id.
    pub fn demo(ledger: Arc<Ledger>) -> Result<AlipaySim, String> {
        AlipaySim::new(
            ledger,
            keys::DEMO_APP_ID,
            keys::DEMO_APP_PUBLIC_KEY_PEM,
            keys::SIM_PRIVATE_KEY_PEM,
        )
    }

    /// Lets the bill URL query serve today's bill. Real Alipay refuses the
    /// current day (bills come at T+1); a demo or a test has only today.
    pub fn with_same_day_bills(mut self) -> Self {
        self.same_day_bills = true;
        self
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The day's bill: the zip Alipay's bill URL serves (see [`bill`]).
    pub fn bill_zip(&self, date: NaiveDate) -> Vec<u8> {
        bill::bill_zip(&self.ledger.orders(), &self.pid, date, chrono::Local::now())
    }

    fn answer(&self, req: &SimRequest) -> SimResponse {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST" | "GET", "/gateway.do") => self.gateway(req),
            ("GET", p) if p.starts_with("/bill/") => self.download(p),
            _ => SimResponse::status(404, "not found"),
        }
    }

    fn gateway(&self, req: &SimRequest) -> SimResponse {
        // fzlee's python client sends everything in the query string; the
        // Java SDK puts common params in the query and biz_content in the
        // body. Accept both, the query string first.
        let mut params = match req.query.as_deref().map(wire::form_decode) {
            None => Vec::new(),
            Some(Some(p)) => p,
            Some(None) => {
                return self.reply(
                    "error_response",
                    gateway_error("40002", "isv.invalid-encoding", "参数编码错误"),
                )
            }
        };
        if req.method == "POST" {
            match std::str::from_utf8(&req.body)
                .ok()
                .and_then(wire::form_decode)
            {
                Some(p) => params.extend(p),
                None => {
                    return self.reply(
                        "error_response",
                        gateway_error("40002", "isv.invalid-encoding", "参数编码错误"),
                    )
                }
            }
        }
        let get = |k: &str| param(&params, k);
        let Some(method) = get("method") else {
            return self.reply(
                "error_response",
                gateway_error("40001", "isv.missing-method", "缺少方法名参数"),
            );
        };
        let Some(method) = METHODS.iter().find(|m| **m == method) else {
            return self.reply(
                "error_response",
                gateway_error("40002", "isv.invalid-method", "不存在的方法名"),
            );
        };
        let node_name = format!("{}_response", method.replace('.', "_"));
        if let Err(node) = self.check_common(&params) {
            return self.reply(&node_name, node);
        }
        let biz: Option<Map<String, Value>> =
            get("biz_content").and_then(|b| serde_json::from_str(b).ok());
        let Some(biz) = biz else {
            return self.reply(
                &node_name,
                gateway_error(
                    "40002",
                    "isv.invalid-parameter",
                    "biz_content 不是 JSON 对象",
                ),
            );
        };
        let host = req.header("host").unwrap_or("127.0.0.1");
        match methods::dispatch(self, method, &biz, host) {
            Answer::Node(node) => self.reply(&node_name, node),
            Answer::Hangup => SimResponse::Hangup,
            Answer::Late(node, after) => SimResponse::Late {
                after,
                then: Box::new(self.reply(&node_name, node)),
            },
            Answer::BadGateway => crate::sim::http::bad_gateway_page(),
            Answer::Unsigned(node) => SimResponse::ok(
                "text/html;charset=utf-8",
                format!("{{\"error_response\":{}}}", node.text()),
            ),
        }
    }

    /// The common-parameter checks of the real gateway, in its order.
    fn check_common(&self, params: &[(String, String)]) -> Result<(), Node> {
        let get = |k: &str| param(params, k);
        let Some(app_id) = get("app_id") else {
            return Err(gateway_error(
                "40001",
                "isv.missing-app-id",
                "缺少AppID参数",
            ));
        };
        if app_id != self.app_id {
            return Err(gateway_error(
                "40002",
                "isv.invalid-app-id",
                "无效的AppID参数",
            ));
        }
        let Some(sign_b64) = get("sign") else {
            return Err(gateway_error(
                "40001",
                "isv.missing-signature",
                "缺少签名参数",
            ));
        };
        match get("sign_type") {
            Some("RSA2") => {}
            None => {
                return Err(gateway_error(
                    "40001",
                    "isv.missing-signature-type",
                    "缺少签名类型参数",
                ))
            }
            Some(_) => {
                return Err(gateway_error(
                    "40002",
                    "isv.invalid-signature-type",
                    "无效的签名类型",
                ))
            }
        }
        if !get("charset").is_some_and(|c| c.eq_ignore_ascii_case("utf-8")) {
            return Err(gateway_error("40002", "isv.invalid-charset", "字符集错误"));
        }
        if get("version") != Some("1.0") {
            return Err(gateway_error("40002", "isv.invalid-version", "版本号错误"));
        }
        let timestamp_ok = get("timestamp")
            .is_some_and(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").is_ok());
        if !timestamp_ok {
            return Err(gateway_error(
                "40002",
                "isv.invalid-timestamp",
                "非法的时间戳参数",
            ));
        }
        let content = wire::signed_content(params);
        if !wire::verify(&self.app_public_key, &content, sign_b64) {
            return Err(gateway_error("40002", "isv.invalid-signature", "验签出错"));
        }
        Ok(())
    }

    /// Signs the node text exactly as it is written into the body.
    fn reply(&self, node_name: &str, node: Node) -> SimResponse {
        let node_text = node.text();
        let body = match wire::sign(&self.sim_key, &node_text) {
            Some(sig) => format!("{{\"{node_name}\":{node_text},\"sign\":\"{sig}\"}}"),
            // Unsigned: the client must treat it as unknown.
            None => format!("{{\"{node_name}\":{node_text}}}"),
        };
        SimResponse::ok("text/html;charset=utf-8", body)
    }

    /// Issues a bill URL for `date` (valid [`BILL_URL_LIFETIME`]).
    fn issue_bill_url(&self, host: &str, date: NaiveDate) -> String {
        // A counter keeps tokens distinct; random bytes make them unguessable.
        let mut raw = [0u8; 12];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw);
        let serial = self.bill_serial.fetch_add(1, Ordering::Relaxed);
        let random: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let token = format!("{serial:x}{random}");
        let mut urls = self.bill_urls.lock().unwrap_or_else(|p| p.into_inner());
        urls.retain(|_, (at, _)| at.elapsed() < BILL_URL_LIFETIME);
        urls.insert(token.clone(), (Instant::now(), date));
        format!(
            "http://{host}/bill/{token}.zip?bizType=trade&userId={}0156&fileType=csv.zip&bizDates={}",
            self.pid,
            date.format("%Y%m%d")
        )
    }

    fn download(&self, path: &str) -> SimResponse {
        let token = path.trim_start_matches("/bill/").trim_end_matches(".zip");
        let found = {
            let urls = self.bill_urls.lock().unwrap_or_else(|p| p.into_inner());
            urls.get(token).copied()
        };
        match found {
            Some((at, date)) if at.elapsed() < BILL_URL_LIFETIME => {
                SimResponse::ok("application/oct-stream", self.bill_zip(date))
            }
            // What Alipay's download host shows for a stale URL.
            Some(_) => SimResponse::ok("text/html;charset=utf-8", "下载超时，请重新下载"),
            None => SimResponse::status(404, "no such bill"),
        }
    }
}

/// The client config for a demo simulator at `gateway_url` (e.g.
/// `http://127.0.0.1:PORT/gateway.do`) with the built-in demo keys: what
/// `tillpay demo` hands to [`crate::gateway::alipay::AlipayGateway::new`].
pub fn demo_client_config(gateway_url: &str) -> AlipayConfig {
    AlipayConfig {
        gateway_url: gateway_url.to_string(),
        app_id: keys::DEMO_APP_ID.to_string(),
        app_private_key: keys::DEMO_APP_PRIVATE_KEY_PEM.to_string(),
        app_private_key_file: "<built-in demo app key>".into(),
        alipay_public_key: keys::SIM_PUBLIC_KEY_PEM.to_string(),
        alipay_public_key_file: "<built-in simulator public key>".into(),
        ca_pem: None,
    }
}

impl Handler for AlipaySim {
    fn handle(&self, req: SimRequest) -> BoxFuture<'_, SimResponse> {
        Box::pin(async move { self.answer(&req) })
    }
}

/// The first non-empty value of `key`.
fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// A node with the code, msg and sub fields of an error.
fn gateway_error(code: &str, sub_code: &str, sub_msg: &str) -> Node {
    let mut m = Node::new();
    m.insert("code", code);
    m.insert("msg", code_msg(code));
    m.insert("sub_code", sub_code);
    m.insert("sub_msg", sub_msg);
    m
}

/// The gateway's `msg` for each `code` (公共错误码).
fn code_msg(code: &str) -> &'static str {
    match code {
        "10000" => "Success",
        "10003" => "等待用户付款",
        "20000" => "Service Currently Unavailable",
        "20001" => "Insufficient Token Permissions",
        "40001" => "Missing Required Arguments",
        "40002" => "Invalid Arguments",
        "40004" => "Business Failed",
        "40006" => "Insufficient Permissions",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests;
