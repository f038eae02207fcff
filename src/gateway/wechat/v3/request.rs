//! The v3 requests tillpay sends, as method, path and JSON body
//! (gateway-facts.md §W11): code pay, query, reverse, refunds and the trade
//! bill, for a direct
//! merchant or a service provider's sub-merchant. Pure: the client signs
//! and sends them.

use serde_json::{json, Value};

use crate::gateway::{PayRequest, RefundRequest};

/// Who the requests are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    Direct {
        appid: String,
        mchid: String,
    },
    /// Service-provider mode: the provider's ids, and the shop's.
    Partner {
        sp_appid: String,
        sp_mchid: String,
        sub_mchid: String,
        sub_appid: Option<String>,
    },
}

/// One request: what the signature covers and the client sends. Its body
/// holds the full payment code, so its `Debug` shows method and path only.
#[derive(Clone, PartialEq)]
pub struct V3Request {
    pub method: &'static str,
    /// Path and query, as signed.
    pub path: String,
    /// `None` for a GET.
    pub body: Option<Value>,
}

impl std::fmt::Debug for V3Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl V3Request {
    /// The body as sent and signed (empty for a GET).
    pub fn body_text(&self) -> String {
        self.body.as_ref().map(Value::to_string).unwrap_or_default()
    }
}

/// `out_trade_no` is tillpay's own (`[A-Za-z0-9_]`, payment-rules.md §1), so
/// it goes into a path as it is; anything else is refused rather than
/// escaped, so a path never means two things.
fn path_safe(s: &str) -> Result<&str, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        Ok(s)
    } else {
        Err(format!("{s:?} cannot go into a request path"))
    }
}

fn ids(account: &Account) -> Value {
    match account {
        Account::Direct { appid, mchid } => json!({"appid": appid, "mchid": mchid}),
        Account::Partner {
            sp_appid,
            sp_mchid,
            sub_mchid,
            sub_appid,
        } => {
            let mut v = json!({"sp_appid": sp_appid, "sp_mchid": sp_mchid, "sub_mchid": sub_mchid});
            if let Some(a) = sub_appid {
                v["sub_appid"] = json!(a);
            }
            v
        }
    }
}

/// `POST …/codepay`: the till is the device. `scene_info.store_info` is
/// required by the code pay schema: its `out_id` is the merchant's store
/// id when configured, else the till id. The description is cut to
/// WeChat's 127 bytes on a character boundary.
pub fn codepay(account: &Account, req: &PayRequest, till_id: &str, store_id: Option<&str>) -> V3Request {
    let path = match account {
        Account::Direct { .. } => "/v3/pay/transactions/codepay",
        Account::Partner { .. } => "/v3/pay/partner/transactions/codepay",
    };
    let mut body = ids(account);
    let description = crate::gateway::text::cut(req.subject.trim(), 127);
    body["description"] = json!(if description.is_empty() { "tillpay" } else { description });
    body["out_trade_no"] = json!(req.out_trade_no);
    body["payer"] = json!({"auth_code": req.auth_code.expose()});
    body["amount"] = json!({"total": req.amount.0, "currency": "CNY"});
    body["scene_info"] = json!({
        "device_id": till_id,
        "store_info": {"out_id": store_id.unwrap_or(till_id)},
    });
    V3Request {
        method: "POST",
        path: path.to_string(),
        body: Some(body),
    }
}

/// `GET …/out-trade-no/{no}?mchid=…` (partner: `?sp_mchid=…&sub_mchid=…`).
pub fn query(account: &Account, out_trade_no: &str) -> Result<V3Request, String> {
    let no = path_safe(out_trade_no)?;
    let path = match account {
        Account::Direct { mchid, .. } => {
            format!("/v3/pay/transactions/out-trade-no/{no}?mchid={}", path_safe(mchid)?)
        }
        Account::Partner {
            sp_mchid, sub_mchid, ..
        } => format!(
            "/v3/pay/partner/transactions/out-trade-no/{no}?sp_mchid={}&sub_mchid={}",
            path_safe(sp_mchid)?,
            path_safe(sub_mchid)?
        ),
    };
    Ok(V3Request {
        method: "GET",
        path,
        body: None,
    })
}

/// `POST …/out-trade-no/{no}/reverse` with the account's ids.
pub fn reverse(account: &Account, out_trade_no: &str) -> Result<V3Request, String> {
    let no = path_safe(out_trade_no)?;
    let path = match account {
        Account::Direct { .. } => format!("/v3/pay/transactions/out-trade-no/{no}/reverse"),
        Account::Partner { .. } => {
            format!("/v3/pay/partner/transactions/out-trade-no/{no}/reverse")
        }
    };
    Ok(V3Request {
        method: "POST",
        path,
        body: Some(ids(account)),
    })
}

/// The sub-merchant a partner's refund, refund query and bill are for.
fn sub_mchid(account: &Account) -> Option<&str> {
    match account {
        Account::Direct { .. } => None,
        Account::Partner { sub_mchid, .. } => Some(sub_mchid),
    }
}

/// `POST /v3/refund/domestic/refunds`: by `out_trade_no`, with the refund
/// number as the idempotency key and both amounts in fen.
pub fn refund(account: &Account, req: &RefundRequest) -> V3Request {
    let mut body = json!({
        "out_trade_no": req.out_trade_no,
        "out_refund_no": req.refund_no,
        "amount": {
            "refund": req.refund_amount.0,
            "total": req.total_amount.0,
            "currency": "CNY",
        },
    });
    if let Some(sub) = sub_mchid(account) {
        body["sub_mchid"] = json!(sub);
    }
    if let Some(reason) = req.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        // `reason` is documented as at most 80 characters.
        body["reason"] = json!(reason.chars().take(80).collect::<String>());
    }
    V3Request {
        method: "POST",
        path: "/v3/refund/domestic/refunds".to_string(),
        body: Some(body),
    }
}

/// `GET /v3/refund/domestic/refunds/{out_refund_no}` (partner: `?sub_mchid=`).
pub fn refund_query(account: &Account, refund_no: &str) -> Result<V3Request, String> {
    let no = path_safe(refund_no)?;
    let path = match sub_mchid(account) {
        None => format!("/v3/refund/domestic/refunds/{no}"),
        Some(sub) => format!("/v3/refund/domestic/refunds/{no}?sub_mchid={}", path_safe(sub)?),
    };
    Ok(V3Request {
        method: "GET",
        path,
        body: None,
    })
}

/// `GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL` (partner:
/// `&sub_mchid=`): the answer names the file and its SHA-1.
pub fn trade_bill(account: &Account, day: chrono::NaiveDate) -> Result<V3Request, String> {
    let mut path = format!("/v3/bill/tradebill?bill_date={}&bill_type=ALL", day.format("%Y-%m-%d"));
    if let Some(sub) = sub_mchid(account) {
        path.push_str(&format!("&sub_mchid={}", path_safe(sub)?));
    }
    Ok(V3Request {
        method: "GET",
        path,
        body: None,
    })
}

#[cfg(test)]
mod tests;
