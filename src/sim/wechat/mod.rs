//! The simulator's WeChat Pay v2 dialect: the merchant API's endpoints on
//! loopback, speaking WeChat's wire format over the shared [`Ledger`].
//!
//! It behaves as WeChat documents: request signatures are checked (MD5 or
//! HMAC-SHA256 as the request's `sign_type` says) and a bad one gets the
//! unsigned `return_code=FAIL` / `签名错误`; every `return_code=SUCCESS`
//! answer is signed with the request's sign type; micropay refuses
//! `trade_type`; the bill is the real `bill_type=ALL` CSV.

mod bill;
mod endpoints;
pub mod v3;
pub mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

use crate::sim::http::{BoxFuture, Handler, SimRequest, SimResponse};
use crate::sim::ledger::Ledger;
use wire::{Fields, Sign};

pub use bill::{DETAIL_HEADER, SUMMARY_HEADER};

/// The WeChat dialect of the simulator, for one merchant account.
pub struct WechatSim {
    ledger: Arc<Ledger>,
    appid: String,
    mch_id: String,
    api_key: String,
    /// The least time after micropay a reverse is taken (ms). WeChat's is
    /// 15 s (gateway-facts.md §W5); the simulator holds the client to
    /// whatever it was configured with.
    min_reverse_ms: AtomicU64,
    /// Serve a day's bill at once (training and tests only have today);
    /// otherwise from 09:00 Beijing time the next day, as WeChat does.
    same_day_bills: bool,
}

/// What an endpoint made of a request, before it is worded and signed.
enum Outcome {
    /// `result_code=SUCCESS` with these fields.
    Success(Fields),
    /// `result_code=FAIL` with `err_code`, `err_code_des` and extra fields
    /// (e.g. reverse's `recall`).
    Fail {
        code: &'static str,
        des: String,
        extra: Fields,
    },
    /// Drop the connection without answering (the lost answer).
    Hangup,
    /// An answer that is not the usual signed XML (downloadbill, a proxy's
    /// error page).
    Raw(SimResponse),
    /// The outcome, worded as usual but sent this long after the request.
    Late(Box<Outcome>, Duration),
    /// `return_code=FAIL` for a reason of WeChat's own: unsigned.
    ReturnFail(&'static str),
}

impl Outcome {
    fn fail(code: &'static str, des: impl Into<String>) -> Outcome {
        Outcome::Fail {
            code,
            des: des.into(),
            extra: Fields::new(),
        }
    }
}

impl WechatSim {
    pub fn new(
        ledger: Arc<Ledger>,
        appid: impl Into<String>,
        mch_id: impl Into<String>,
        api_key: impl Into<String>,
    ) -> WechatSim {
        WechatSim {
            ledger,
            appid: appid.into(),
            mch_id: mch_id.into(),
            api_key: api_key.into(),
            min_reverse_ms: AtomicU64::new(0),
            same_day_bills: false,
        }
    }

    /// Serves each day's bill at once instead of from 09:00 the next day.
    pub fn with_same_day_bills(mut self) -> Self {
        self.same_day_bills = true;
        self
    }

    /// Refuses (and counts, see [`Ledger::early_reverses`]) a reverse that
    /// comes sooner than `d` after its micropay.
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

    /// The day's bill (`bill_type=ALL`) as `downloadbill` serves it, from
    /// the ledger: a payment row per paid order, a `REFUND` row per refund
    /// and a `REVOKED` row per revoke that returned money, then the summary.
    /// Days are the simulator's local days. A day without rows still gives
    /// the headers and a zero summary here; the endpoint answers
    /// `No Bill Exist` for it, as WeChat does.
    pub fn bill_csv(&self, date: NaiveDate) -> String {
        bill::csv(&self.ledger.orders(), &self.appid, &self.mch_id, date)
    }

    /// Answers one request synchronously (the ledger never waits).
    pub fn respond(&self, req: &SimRequest) -> SimResponse {
        let endpoint = match endpoints::Endpoint::of_path(&req.path) {
            Some(e) => e,
            None => return SimResponse::status(404, "no such WeChat Pay v2 endpoint"),
        };
        if req.method != "POST" {
            return return_fail("请使用post方法");
        }
        let fields = match wire::parse(&req.body) {
            Ok(f) => f,
            Err(_) => return return_fail("XML格式错误"),
        };
        let Some(sign_type) = Sign::of_request(fields.get("sign_type").map(String::as_str)) else {
            return return_fail("sign_type参数格式错误");
        };
        if fields.get("sign").is_none_or(|s| s.is_empty()) {
            return return_fail("缺少参数sign");
        }
        if !wire::verify(&fields, &self.api_key, sign_type) {
            return return_fail("签名错误");
        }
        if fields.get("mch_id") != Some(&self.mch_id) {
            return return_fail("mch_id参数错误");
        }
        if fields.get("appid") != Some(&self.appid) {
            return return_fail("appid和mch_id不匹配");
        }
        if fields
            .get("nonce_str")
            .is_none_or(|s| s.is_empty() || s.len() > 32)
        {
            return return_fail("nonce_str参数错误");
        }
        let outcome = endpoint.run(self, &fields);
        self.word(outcome, &fields, sign_type)
    }

    /// Words an outcome as WeChat does: the common fields, echoes of the
    /// request's merchant fields, a fresh nonce, and the signature.
    fn word(&self, outcome: Outcome, req: &Fields, sign_type: Sign) -> SimResponse {
        let (result_code, mut fields) = match outcome {
            Outcome::Hangup => return SimResponse::Hangup,
            Outcome::Raw(r) => return r,
            Outcome::ReturnFail(msg) => return return_fail(msg),
            Outcome::Late(outcome, after) => {
                return SimResponse::Late {
                    after,
                    then: Box::new(self.word(*outcome, req, sign_type)),
                }
            }
            Outcome::Success(f) => ("SUCCESS", f),
            Outcome::Fail { code, des, extra } => {
                let mut f = extra;
                f.insert("err_code".into(), code.into());
                f.insert("err_code_des".into(), des);
                ("FAIL", f)
            }
        };
        let mut put = |k: &str, v: &str| {
            fields.insert(k.to_string(), v.to_string());
        };
        put("return_code", "SUCCESS");
        put("return_msg", "OK");
        put("result_code", result_code);
        put("appid", &self.appid);
        put("mch_id", &self.mch_id);
        put("nonce_str", &wire::nonce());
        for echo in ["sub_mch_id", "sub_appid"] {
            if let Some(v) = req.get(echo) {
                put(echo, v);
            }
        }
        let s = wire::sign(&fields, &self.api_key, sign_type);
        fields.insert("sign".into(), s);
        SimResponse::ok("text/xml; charset=utf-8", wire::to_xml(&fields))
    }
}

/// A stable, openid-looking id (28 characters) for the customer behind a
/// code, shown by micropay, orderquery and the bill alike.
fn openid(o: &crate::sim::ledger::Order) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, o.code_masked.as_bytes());
    let hex: String = d
        .as_ref()
        .iter()
        .take(14)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("o{}", &hex[..27])
}

/// `return_code=FAIL`: unsigned, as WeChat sends it.
fn return_fail(msg: &str) -> SimResponse {
    let mut f = Fields::new();
    f.insert("return_code".into(), "FAIL".into());
    f.insert("return_msg".into(), msg.into());
    SimResponse::ok("text/xml; charset=utf-8", wire::to_xml(&f))
}

impl Handler for WechatSim {
    fn handle(&self, req: SimRequest) -> BoxFuture<'_, SimResponse> {
        Box::pin(async move { self.respond(&req) })
    }
}

#[cfg(test)]
mod tests;
