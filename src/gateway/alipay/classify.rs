//! Pure classification of *verified* Alipay answers into the engine's
//! answer types (payment-rules.md §5, 6, 9, 12; gateway-facts.md §A4-§A8). Transport failures
//! and unverifiable answers never get here: the client makes them unknown.

use chrono::{FixedOffset, NaiveDateTime, TimeZone};
use serde_json::{Map, Value};

use crate::domain::Fen;
use crate::gateway::{PaidBy, 
    BillAnswer, GatewayNote, PaidInfo, PayAnswer, QueryAnswer, RefundAnswer, RevokeAnswer,
    RevokeEffect,
};

/// A verified `*_response` node.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: String,
    pub msg: String,
    pub sub_code: String,
    pub sub_msg: String,
    fields: Map<String, Value>,
}

impl Reply {
    /// Parses the raw node text (after its signature verified).
    pub fn from_node(raw: &str) -> Option<Reply> {
        let fields: Map<String, Value> = serde_json::from_str(raw).ok()?;
        let s = |k: &str| {
            fields
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Some(Reply {
            code: s("code"),
            msg: s("msg"),
            sub_code: s("sub_code"),
            sub_msg: s("sub_msg"),
            fields,
        })
    }

    /// A string field, `None` when absent, empty or not a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The gateway's most specific code and text, for the cashier.
    pub fn note(&self) -> GatewayNote {
        let (code, msg) = if self.sub_code.is_empty() {
            (&self.code, &self.msg)
        } else {
            (&self.sub_code, &self.sub_msg)
        };
        let msg = if msg.is_empty() { &self.msg } else { msg };
        let code = if code.is_empty() { "NO_CODE" } else { code };
        GatewayNote::new(code, msg.as_str())
    }

    /// An amount field: `Ok(None)` when absent, `Err` when malformed (which
    /// makes the answer unknown, never zero).
    fn amount(&self, key: &str) -> Result<Option<Fen>, GatewayNote> {
        match self.fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Fen::parse_yuan(s, true).map(Some).map_err(|_| {
                GatewayNote::new("BAD_AMOUNT", format!("malformed {key} {s:?} in the answer"))
            }),
            Some(other) => Err(GatewayNote::new(
                "BAD_AMOUNT",
                format!("malformed {key} {other} in the answer"),
            )),
        }
    }

    /// `false` when the answer names another order than the one asked for.
    fn is_about(&self, out_trade_no: &str) -> bool {
        self.str("out_trade_no").is_none_or(|o| o == out_trade_no)
    }

    /// ACQ.SYSTEM_ERROR under any code, and the 20000 family: unknown.
    fn is_system_error(&self) -> bool {
        self.code == "20000"
            || matches!(
                self.sub_code.as_str(),
                "ACQ.SYSTEM_ERROR"
                    | "aop.ACQ.SYSTEM_ERROR"
                    | "isp.unknow-error"
                    | "aop.unknow-error"
                    | "isp.unknown-error"
            )
    }

    /// 20001 and 4000x other than 40004: the request itself was refused.
    fn is_request_error(&self) -> bool {
        matches!(self.code.as_str(), "20001" | "40001" | "40002" | "40006")
    }
}

/// Errors the merchant must fix (keys, permissions, parameters, account):
/// the engine logs them at error level (payment-rules.md §6).
pub fn is_config_error(code: &str, sub_code: &str) -> bool {
    matches!(code, "20001" | "40001" | "40002" | "40006")
        || sub_code.starts_with("isv.")
        || sub_code.starts_with("ACQ.SUB_MERCHANT")
        || matches!(
            sub_code,
            "ACQ.INVALID_PARAMETER"
                | "ACQ.ACCESS_FORBIDDEN"
                | "ACQ.EXIST_FORBIDDEN_WORD"
                | "ACQ.PARTNER_ERROR"
                | "ACQ.TOTAL_FEE_EXCEED"
                | "ACQ.SELLER_BEEN_BLOCKED"
                | "ACQ.CONTEXT_INCONSISTENT"
        )
}

/// The trade.pay 40004 sub_codes that the documents give as a definite
/// "not paid" for the buyer or the cashier to act on (gateway-facts.md §A4).
fn is_documented_decline(sub_code: &str) -> bool {
    matches!(
        sub_code,
        "ACQ.PAYMENT_AUTH_CODE_INVALID"
            | "ACQ.BUYER_BALANCE_NOT_ENOUGH"
            | "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH"
            | "ACQ.ERROR_BALANCE_PAYMENT_DISABLE"
            | "ACQ.PULL_MOBILE_CASHIER_FAIL"
            | "ACQ.MOBILE_PAYMENT_SWITCH_OFF"
            | "ACQ.PAYMENT_FAIL"
            | "ACQ.PAYMENT_REQUEST_HAS_RISK"
            | "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE"
            | "ACQ.TRADE_HAS_CLOSE"
            | "ACQ.TRADE_BUYER_NOT_MATCH"
            | "ACQ.BUYER_SELLER_EQUAL"
            | "ACQ.BUYER_ENABLE_STATUS_FORBID"
            | "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR"
            | "ACQ.BEYOND_PAY_RESTRICTION"
            | "ACQ.BEYOND_PER_RECEIPT_RESTRICTION"
            | "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT"
    )
}

/// Alipay writes times as `yyyy-MM-dd HH:mm:ss` in China time.
pub fn china_time_to_rfc3339(s: &str) -> Option<String> {
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok()?;
    Some(china().from_local_datetime(&t).single()?.to_rfc3339())
}

/// China time: UTC+8, no daylight saving, whatever the machine's zone.
pub const CHINA: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(o) => o,
    None => panic!("UTC+8 is a valid offset"),
};

pub fn china() -> FixedOffset {
    CHINA
}

fn paid_info(r: &Reply, time_field: &str) -> Result<PaidInfo, GatewayNote> {
    let trade_no = r
        .str("trade_no")
        .ok_or_else(|| GatewayNote::new("NO_TRADE_NO", "paid answer without trade_no"))?;
    let amount = r.amount("total_amount")?;
    // buyer_pay_amount is what left the buyer's account; discounts (the
    // merchant's and Alipay's) and points covered the rest of the total.
    // A malformed one only leaves the receipt without it.
    let buyer_paid = r.amount("buyer_pay_amount").ok().flatten();
    Ok(PaidInfo {
        paid_by: PaidBy::from_customer_paid(amount, buyer_paid, r.str("buyer_logon_id")),
        transaction_id: trade_no.to_string(),
        paid_at: r.str(time_field).and_then(china_time_to_rfc3339),
        amount,
    })
}

fn mismatch(out_trade_no: &str) -> GatewayNote {
    GatewayNote::new(
        "OUT_TRADE_NO_MISMATCH",
        format!("the answer is about another order than {out_trade_no}"),
    )
}

/// `alipay.trade.pay` (gateway-facts.md §A4).
pub fn classify_pay(r: &Reply, out_trade_no: &str) -> PayAnswer {
    let unknown = |note| PayAnswer::Unknown {
        note,
        user_paying: false,
    };
    if r.is_system_error() {
        return unknown(r.note());
    }
    match r.code.as_str() {
        "10000" if !r.is_about(out_trade_no) => unknown(mismatch(out_trade_no)),
        "10000" => match paid_info(r, "gmt_payment") {
            Ok(info) => PayAnswer::Paid(info),
            Err(note) => unknown(note),
        },
        // 等待用户付款: the customer confirms on the phone.
        "10003" => PayAnswer::Unknown {
            note: GatewayNote::new("10003", r.msg.as_str()),
            user_paying: true,
        },
        // Paid already, perhaps by this very attempt's earlier try: only
        // the query can tell whose money it was (gateway-facts.md §A4).
        "40004" if r.sub_code == "ACQ.TRADE_HAS_SUCCESS" => PayAnswer::OrderNumberUsed(r.note()),
        "40004" if is_config_error(&r.code, &r.sub_code) => PayAnswer::Failed {
            note: r.note(),
            config_error: true,
        },
        "40004" if is_documented_decline(&r.sub_code) => PayAnswer::Failed {
            note: r.note(),
            config_error: false,
        },
        // A 40004 sub_code the documents do not list may come with a trade
        // that was created: only the documented ones end it unasked (payment-rules.md §6).
        "40004" => unknown(r.note()),
        _ if r.is_request_error() => PayAnswer::Failed {
            note: r.note(),
            config_error: true,
        },
        // An undocumented code is not a definite failure.
        _ => unknown(r.note()),
    }
}

/// `alipay.trade.query` (gateway-facts.md §A5, payment-rules.md §9).
pub fn classify_query(r: &Reply, out_trade_no: &str) -> QueryAnswer {
    let pending = |note| QueryAnswer::Pending {
        note,
        user_paying: false,
    };
    if r.code != "10000" {
        // ACQ.TRADE_NOT_EXIST right after a lost pay may just mean it has
        // not landed yet; every error keeps polling.
        return pending(r.note());
    }
    if !r.is_about(out_trade_no) {
        return pending(mismatch(out_trade_no));
    }
    let status = r.str("trade_status").unwrap_or_default();
    let note = GatewayNote::new(status, r.msg.as_str());
    match status {
        "TRADE_SUCCESS" | "TRADE_FINISHED" => match paid_info(r, "send_pay_date") {
            Ok(info) => QueryAnswer::Paid(info),
            Err(note) => pending(note),
        },
        "WAIT_BUYER_PAY" => QueryAnswer::Pending {
            note,
            user_paying: true,
        },
        "TRADE_CLOSED" => QueryAnswer::NotPaid(note),
        _ => pending(note),
    }
}

/// `alipay.trade.cancel` (gateway-facts.md §A6, payment-rules.md §12-13).
pub fn classify_cancel(r: &Reply) -> RevokeAnswer {
    let retry_flag = r.str("retry_flag") == Some("Y");
    if r.code == "10000" && !retry_flag {
        return RevokeAnswer::Revoked(match r.str("action") {
            Some("close") => RevokeEffect::Closed,
            Some("refund") => RevokeEffect::Refunded,
            _ => RevokeEffect::Unstated,
        });
    }
    if retry_flag || r.is_system_error() {
        return RevokeAnswer::Retry(r.note());
    }
    // No such trade: the pay has not arrived, or never will; the engine
    // tells which by the time since it was sent (payment-rules.md §12).
    if r.code == "40004" && r.sub_code == "ACQ.TRADE_NOT_EXIST" {
        return RevokeAnswer::NotFound(r.note());
    }
    if r.code == "40004" || r.is_request_error() {
        return RevokeAnswer::Refused(r.note());
    }
    RevokeAnswer::Retry(r.note())
}

/// `alipay.trade.refund` (gateway-facts.md §A7).
pub fn classify_refund(r: &Reply, out_trade_no: &str) -> RefundAnswer {
    if r.is_system_error() {
        return RefundAnswer::Unknown(r.note());
    }
    match r.code.as_str() {
        "10000" if !r.is_about(out_trade_no) => RefundAnswer::Unknown(mismatch(out_trade_no)),
        "10000" if r.str("fund_change") == Some("Y") => RefundAnswer::Refunded { refund_id: None },
        // fund_change=N: this call moved nothing. A retry of a refund that
        // already went through says the same; the refund query decides.
        "10000" => RefundAnswer::Unknown(GatewayNote::new(
            "FUND_CHANGE_N",
            "no money moved by this call; confirm with the refund query",
        )),
        // Only the documented refusals are final: an unknown one may hide
        // a refund that went through, and "failed" invites a second refund
        // under a new number.
        "40004" if REFUND_REFUSALS.contains(&r.sub_code.as_str()) => RefundAnswer::Failed(r.note()),
        _ if r.is_request_error() => RefundAnswer::Failed(r.note()),
        _ => RefundAnswer::Unknown(r.note()),
    }
}

/// The sub_codes `alipay.trade.refund` documents as refusals.
const REFUND_REFUSALS: [&str; 12] = [
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
    "ACQ.TRADE_NOT_EXIST",
    "ACQ.TRADE_STATUS_ERROR",
    "ACQ.SELLER_BALANCE_NOT_ENOUGH",
    "ACQ.INVALID_PARAMETER",
    "ACQ.TRADE_HAS_FINISHED",
    "ACQ.REASON_TRADE_BEEN_FREEZEN",
    "ACQ.DISCORDANT_REPEAT_REQUEST",
    "ACQ.REASON_TRADE_REFUND_FEE_ERR",
    "ACQ.TRADE_NOT_ALLOWED_REFUND",
    "ACQ.REFUND_FEE_ERROR",
    "ACQ.ACCESS_FORBIDDEN",
];

/// `alipay.trade.fastpay.refund.query`.
pub fn classify_refund_query(r: &Reply, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
    if r.is_system_error() {
        return RefundAnswer::Unknown(r.note());
    }
    match r.code.as_str() {
        "10000" => {}
        // Not found (ACQ.TRADE_NOT_EXIST...) right after an unknown refund
        // means it never landed: the engine sends the same out_request_no.
        "40004" => return RefundAnswer::NotFound(r.note()),
        // A request error says nothing about the refund: ask again.
        _ => return RefundAnswer::Unknown(r.note()),
    }
    if !r.is_about(out_trade_no) || r.str("out_request_no").is_some_and(|n| n != refund_no) {
        return RefundAnswer::Unknown(mismatch(out_trade_no));
    }
    let amount = match r.amount("refund_amount") {
        Ok(a) => a,
        Err(note) => return RefundAnswer::Unknown(note),
    };
    match (r.str("refund_status"), amount) {
        (Some("REFUND_SUCCESS"), _) => RefundAnswer::Refunded { refund_id: None },
        (Some(other), _) => RefundAnswer::Processing(GatewayNote::new(other, r.msg.as_str())),
        // Older answers carry no refund_status: a refund_amount means done.
        (None, Some(_)) => RefundAnswer::Refunded { refund_id: None },
        (None, None) => RefundAnswer::NotFound(GatewayNote::new(
            "REFUND_NOT_FOUND",
            format!("no refund {refund_no} for {out_trade_no}"),
        )),
    }
}

/// `alipay.data.dataservice.bill.downloadurl.query`: the URL to fetch, or
/// the final answer. `recent`: the day asked for is yesterday or later in
/// China time, when a refusal means "not generated yet" (bills come at
/// T+1 after about 10:00; the current day is refused as 参数不合法).
pub fn classify_bill(r: &Reply, recent: bool) -> Result<String, BillAnswer> {
    if r.code == "10000" {
        return r
            .str("bill_download_url")
            .map(str::to_string)
            .ok_or_else(|| BillAnswer::Failed(GatewayNote::new("NO_URL", "no bill_download_url")));
    }
    if r.sub_code == "isp.bill_not_exist" {
        return Err(BillAnswer::NoBill(r.note()));
    }
    if recent && !r.is_system_error() {
        return Err(BillAnswer::NotYet(r.note()));
    }
    Err(BillAnswer::Failed(r.note()))
}

#[cfg(test)]
mod tests;
