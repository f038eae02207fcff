//! The simulator's acquirer dialect: the `unified.trade.*` gateway of a
//! bank or UnionPay's front-end, on loopback, over the shared ledger, for
//! WeChat, Alipay and UnionPay codes alike.
//!
//! It behaves as the protocol's copies describe it (gateway-facts.md §Q):
//! a flat XML body signed MD5 (the sign type UnionPay's front-end takes;
//! RSA is not simulated), `status` for the communication and, only when it
//! is 0, `result_code`, `err_code`, `need_query` and a `sign`; a request
//! with a bad signature or for an unknown service gets `status` 400 and no
//! sign. The customer behaviours are the other dialects': the code says
//! which (`Behaviour`), whatever wallet it is from.

mod bill;
mod endpoints;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sim::http::{BoxFuture, Handler, SimRequest, SimResponse};
use crate::sim::ledger::Ledger;
use crate::sim::wechat::wire::{self, Fields, Sign};

/// The simulator's acquirer merchant: public test values, never real.
pub const MCH_ID: &str = "755437000006";
pub const KEY: &str = "61307e5f2aebcacecbcca6fe5296df9c";

/// What a service made of a request, before it is worded and signed.
enum Outcome {
    /// `result_code=0` with these fields.
    Success(Fields),
    /// `result_code=1` with `err_code`, `err_msg` and these fields
    /// (`need_query`, …).
    Fail {
        code: &'static str,
        msg: &'static str,
        extra: Fields,
    },
    /// Drop the connection without answering.
    Hangup,
    /// Sent as it is (a bill, a proxy's error page).
    Raw(SimResponse),
    Late(Box<Outcome>, Duration),
    /// `status`≠0 for the gateway's own reason: unsigned.
    Refused(&'static str),
}

impl Outcome {
    fn fail(code: &'static str, msg: &'static str, need_query: &str) -> Outcome {
        let mut extra = Fields::new();
        extra.insert("need_query".into(), need_query.into());
        Outcome::Fail { code, msg, extra }
    }
}

pub struct AcquirerSim {
    ledger: Arc<Ledger>,
    mch_id: String,
    key: String,
    /// The orders that came through this gateway: the ledger is shared
    /// with the wallets' own dialects, and the acquirer knows only its own.
    orders: Mutex<HashSet<String>>,
    min_reverse_ms: AtomicU64,
    same_day_bills: bool,
}

impl AcquirerSim {
    pub fn new(ledger: Arc<Ledger>) -> AcquirerSim {
        AcquirerSim {
            ledger,
            mch_id: MCH_ID.into(),
            key: KEY.into(),
            orders: Mutex::new(HashSet::new()),
            min_reverse_ms: AtomicU64::new(0),
            same_day_bills: false,
        }
    }

    /// Serves each day's bill at once (training and tests have only today).
    pub fn with_same_day_bills(mut self) -> Self {
        self.same_day_bills = true;
        self
    }

    /// Refuses (and counts) a reverse of a WeChat payment sooner than `d`
    /// after it: WeChat's rule holds through an acquirer too.
    pub fn enforce_min_reverse_delay(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.min_reverse_ms.store(ms, Ordering::Relaxed);
    }

    fn min_reverse_delay(&self) -> Duration {
        Duration::from_millis(self.min_reverse_ms.load(Ordering::Relaxed))
    }

    fn mine(&self, out_trade_no: &str) -> bool {
        self.orders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(out_trade_no)
    }

    fn remember(&self, out_trade_no: &str) {
        self.orders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(out_trade_no.to_string());
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub fn respond(&self, req: &SimRequest) -> SimResponse {
        if req.method != "POST" || !matches!(req.path.as_str(), "/pay/gateway" | "/gateway") {
            return SimResponse::status(404, "no such acquirer endpoint");
        }
        let Ok(fields) = wire::parse(&req.body) else {
            return refused("XML格式错误");
        };
        if fields.get("sign_type").is_some_and(|t| t != "MD5") {
            return refused("不支持的签名类型");
        }
        if !wire::verify(&fields, &self.key, Sign::Md5) {
            return refused("签名错误");
        }
        if fields.get("mch_id") != Some(&self.mch_id) {
            return refused("商户号不存在");
        }
        let outcome = endpoints::run(self, &fields);
        self.word(outcome)
    }

    fn word(&self, outcome: Outcome) -> SimResponse {
        let (result_code, mut f) = match outcome {
            Outcome::Hangup => return SimResponse::Hangup,
            Outcome::Raw(r) => return r,
            Outcome::Refused(msg) => return refused(msg),
            Outcome::Late(o, after) => {
                return SimResponse::Late {
                    after,
                    then: Box::new(self.word(*o)),
                }
            }
            Outcome::Success(f) => ("0", f),
            Outcome::Fail { code, msg, extra } => {
                let mut f = extra;
                f.insert("err_code".into(), code.into());
                f.insert("err_msg".into(), msg.into());
                ("1", f)
            }
        };
        for (k, v) in [
            ("version", "2.0"),
            ("charset", "UTF-8"),
            ("sign_type", "MD5"),
            ("status", "0"),
            ("result_code", result_code),
        ] {
            f.insert(k.into(), v.into());
        }
        f.insert("mch_id".into(), self.mch_id.clone());
        f.insert("nonce_str".into(), wire::nonce());
        let sign = wire::sign(&f, &self.key, Sign::Md5);
        f.insert("sign".into(), sign);
        SimResponse::ok("text/xml; charset=utf-8", wire::to_xml(&f))
    }
}

/// `status`≠0: the gateway did not take the request; unsigned.
fn refused(msg: &str) -> SimResponse {
    let mut f = Fields::new();
    f.insert("version".into(), "2.0".into());
    f.insert("charset".into(), "UTF-8".into());
    f.insert("status".into(), "400".into());
    f.insert("message".into(), msg.into());
    SimResponse::ok("text/xml; charset=utf-8", wire::to_xml(&f))
}

impl Handler for AcquirerSim {
    fn handle(&self, req: SimRequest) -> BoxFuture<'_, SimResponse> {
        Box::pin(async move { self.respond(&req) })
    }
}
