//! From a WeChat answer to the trait's classified answers (payment-rules.md §4-13).
//! Pure functions: the client hands in a [`Reply`] (already parsed, and
//! signature-checked when `return_code=SUCCESS`), they say what it means.
//!
//! Over 400 lines because it holds every WeChat code table of pay, query and reverse side by side; refunds are in `classify/refund.rs`.

use std::collections::BTreeMap;

use chrono::{FixedOffset, NaiveDateTime, TimeZone};

use crate::domain::Fen;
use crate::gateway::{PaidBy, 
    BillAnswer, GatewayNote, PaidInfo, PayAnswer, QueryAnswer, RevokeAnswer, RevokeEffect,
};

pub type Fields = BTreeMap<String, String>;

/// What came back from one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A parsed answer. If `return_code=SUCCESS` its signature verified.
    Answer(Fields),
    /// The request provably never left: connection refused, DNS, connect
    /// timeout, TLS handshake (payment-rules.md §4).
    NotSent(GatewayNote),
    /// The request may have arrived, but no trustworthy answer came back:
    /// read timeout, reset, HTTP error status, garbage, bad signature.
    Lost(GatewayNote),
}

/// How a micropay `err_code` is to be taken (gateway-facts.md §W4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayClass {
    /// Result unknown; the customer is entering the password.
    UserPaying,
    /// Result unknown: query decides.
    Unknown,
    /// Definitely not charged; the customer or cashier can act on it.
    Declined,
    /// Definitely not charged; the merchant's setup or request is wrong.
    ConfigError,
}

/// The class of every documented micropay `err_code`. Codes the table does
/// not list are unknown: only a documented "支付确认失败" may end an attempt
/// without asking (payment-rules.md §6).
pub fn pay_err_class(err_code: &str) -> PayClass {
    match err_code {
        "USERPAYING" => PayClass::UserPaying,
        // SYSTEMERROR / BANKERROR: "支付结果未知". ORDERPAID and
        // OUT_TRADE_NO_USED answer a retry of an order that may well be
        // paid: only a query can tell (payment-rules.md §5).
        "SYSTEMERROR" | "BANKERROR" | "ORDERPAID" | "OUT_TRADE_NO_USED" => PayClass::Unknown,
        "AUTHCODEEXPIRE" | "NOTENOUGH" | "NOTSUPORTCARD" | "ORDERCLOSED" | "ORDERREVERSED"
        | "AUTH_CODE_ERROR" | "AUTH_CODE_INVALID" | "BUYER_MISMATCH" | "TRADE_ERROR" => {
            PayClass::Declined
        }
        // INVALID_REQUEST covers permission, certificate and rate problems:
        // not charged, and the merchant has to look.
        "PARAM_ERROR"
        | "NOAUTH"
        | "SIGNERROR"
        | "XML_FORMAT_ERROR"
        | "LACK_PARAMS"
        | "NOT_UTF8"
        | "REQUIRE_POST_METHOD"
        | "APPID_NOT_EXIST"
        | "MCHID_NOT_EXIST"
        | "APPID_MCHID_NOT_MATCH"
        | "INVALID_REQUEST" => PayClass::ConfigError,
        _ => PayClass::Unknown,
    }
}

/// The micropay codes that say this `out_trade_no` was paid or used before.
pub fn is_order_number_used(err_code: &str) -> bool {
    matches!(err_code, "ORDERPAID" | "OUT_TRADE_NO_USED")
}

/// How an order-query `trade_state` is to be taken (gateway-facts.md §W6, payment-rules.md §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeStateClass {
    Paid,
    UserPaying,
    Pending,
    NotPaid,
    PayError,
}

pub fn trade_state_class(state: &str) -> TradeStateClass {
    match state {
        // REFUND: it was paid; the refund is reconciled on its own.
        "SUCCESS" | "REFUND" => TradeStateClass::Paid,
        "USERPAYING" => TradeStateClass::UserPaying,
        "CLOSED" | "REVOKED" => TradeStateClass::NotPaid,
        "PAYERROR" => TradeStateClass::PayError,
        // NOTPAY, ACCEPT and anything new: not final, keep polling.
        _ => TradeStateClass::Pending,
    }
}

fn get<'a>(f: &'a Fields, k: &str) -> &'a str {
    f.get(k).map_or("", String::as_str)
}

/// The gateway's own words for the cashier: err_code/err_code_des, else
/// return_code/return_msg.
fn note_of(f: &Fields) -> GatewayNote {
    let code = get(f, "err_code");
    if !code.is_empty() {
        return GatewayNote::new(code, get(f, "err_code_des"));
    }
    let rc = get(f, "return_code");
    if rc != "SUCCESS" {
        return GatewayNote::new(
            if rc.is_empty() { "NO_RETURN_CODE" } else { rc },
            get(f, "return_msg"),
        );
    }
    GatewayNote::new(get(f, "result_code"), get(f, "return_msg"))
}

/// `return_code` other than SUCCESS is a communication-level answer and is
/// unsigned. It is a definite "not processed" only when its `return_msg` is
/// one of the request errors WeChat documents or is known to send, matched
/// exactly (after trimming): free text that merely mentions a parameter
/// ("系统繁忙", a proxy's page, "参数…稍后再试") is unknown (payment-rules.md §5).
pub fn return_fail_is_config_error(return_msg: &str) -> bool {
    const REQUEST_ERRORS: [&str; 20] = [
        "签名错误",
        "参数格式校验错误",
        "参数错误",
        "XML格式错误",
        "xml格式错误",
        "mch_id参数格式错误",
        "appid参数格式错误",
        "appid和mch_id不匹配",
        "商户号mch_id与appid不匹配",
        "受理机构必须传入sub_mch_id",
        "sub_mch_id与sub_appid不匹配",
        "无效的trade_type",
        "缺少参数",
        "post数据为空",
        "请使用post方法",
        "编码格式错误",
        "invalid sign",
        "sign error",
        "require POST method",
        "mch_id不存在",
    ];
    let m = return_msg.trim();
    if REQUEST_ERRORS.contains(&m) {
        return true;
    }
    // The documented per-field forms: "<field>参数格式错误", "<field>参数错误",
    // "缺少参数<field>", with the request field's name in ASCII.
    let field = |f: &str| {
        (1..=32).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    };
    m.strip_suffix("参数格式错误")
        .or_else(|| m.strip_suffix("参数错误"))
        .or_else(|| m.strip_prefix("缺少参数"))
        .is_some_and(field)
}

enum Level<'a> {
    /// return_code=SUCCESS: the business fields count.
    Business(&'a Fields),
    /// return_code≠SUCCESS, with whether its text names a request error.
    ReturnFail { note: GatewayNote, config: bool },
}

fn level(f: &Fields) -> Level<'_> {
    if get(f, "return_code") == "SUCCESS" {
        Level::Business(f)
    } else {
        Level::ReturnFail {
            note: note_of(f),
            config: get(f, "return_code") == "FAIL"
                && return_fail_is_config_error(get(f, "return_msg")),
        }
    }
}

/// `time_end` (`yyyyMMddHHmmss`, Beijing time) as RFC 3339 in +08:00.
pub fn time_end_rfc3339(s: &str) -> Option<String> {
    let naive = NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?;
    let beijing = FixedOffset::east_opt(8 * 3600)?;
    Some(beijing.from_local_datetime(&naive).single()?.to_rfc3339())
}

/// A paid answer's facts; `None` when the transaction id is missing, which
/// no real paid answer lacks, so it is not trusted as paid.
fn paid_info(f: &Fields) -> Option<PaidInfo> {
    let transaction_id = get(f, "transaction_id");
    if transaction_id.is_empty() {
        return None;
    }
    let fen = |k| get(f, k).parse::<u64>().ok().map(Fen);
    Some(PaidInfo {
        paid_by: PaidBy {
            // cash_fee: what the customer paid; coupon_fee: the vouchers
            // that covered the rest of total_fee.
            customer_paid: fen("cash_fee"),
            discount: fen("coupon_fee"),
            ..PaidBy::from_customer_paid(None, None, Some(get(f, "openid")))
        },
        transaction_id: transaction_id.to_string(),
        paid_at: time_end_rfc3339(get(f, "time_end")),
        amount: fen("total_fee"),
    })
}

pub fn pay(reply: &Reply) -> PayAnswer {
    let f = match reply {
        Reply::NotSent(note) => return PayAnswer::NotSent(note.clone()),
        Reply::Lost(note) => {
            return PayAnswer::Unknown {
                note: note.clone(),
                user_paying: false,
            }
        }
        Reply::Answer(f) => f,
    };
    let f = match level(f) {
        Level::Business(f) => f,
        Level::ReturnFail { note, config: true } => {
            return PayAnswer::Failed {
                note,
                config_error: true,
            }
        }
        Level::ReturnFail {
            note,
            config: false,
        } => {
            return PayAnswer::Unknown {
                note,
                user_paying: false,
            }
        }
    };
    let note = note_of(f);
    match get(f, "result_code") {
        "SUCCESS" => match paid_info(f) {
            Some(info) => PayAnswer::Paid(info),
            None => PayAnswer::Unknown {
                note: GatewayNote::new("NO_TRANSACTION_ID", "paid answer without transaction_id"),
                user_paying: false,
            },
        },
        // The number names an earlier trade (payment-rules.md §1).
        "FAIL" if is_order_number_used(get(f, "err_code")) => PayAnswer::OrderNumberUsed(note),
        "FAIL" => match pay_err_class(get(f, "err_code")) {
            PayClass::UserPaying => PayAnswer::Unknown {
                note,
                user_paying: true,
            },
            PayClass::Unknown => PayAnswer::Unknown {
                note,
                user_paying: false,
            },
            PayClass::Declined => PayAnswer::Failed {
                note,
                config_error: false,
            },
            PayClass::ConfigError => PayAnswer::Failed {
                note,
                config_error: true,
            },
        },
        _ => PayAnswer::Unknown {
            note,
            user_paying: false,
        },
    }
}

pub fn query(reply: &Reply) -> QueryAnswer {
    let pending = |note: GatewayNote| QueryAnswer::Pending {
        note,
        user_paying: false,
    };
    let f = match reply {
        Reply::NotSent(note) | Reply::Lost(note) => return pending(note.clone()),
        Reply::Answer(f) => f,
    };
    let f = match level(f) {
        Level::Business(f) => f,
        // Even a request error keeps polling: the pay call went through
        // the same door, and the deadline bounds the wait (payment-rules.md §9).
        Level::ReturnFail { note, .. } => return pending(note),
    };
    if get(f, "result_code") != "SUCCESS" {
        // ORDERNOTEXIST right after a lost micropay may only mean it has
        // not arrived yet; SYSTEMERROR is transient: keep polling.
        return pending(note_of(f));
    }
    let state = get(f, "trade_state");
    let note = GatewayNote::new(state, get(f, "trade_state_desc"));
    query_answer(state, note, paid_info(f))
}

/// A query's answer from the order's `trade_state` (v2 and v3 name the
/// states alike) and, when it says paid, the payment.
pub fn query_answer(state: &str, note: GatewayNote, paid: Option<PaidInfo>) -> QueryAnswer {
    let pending = |note: GatewayNote| QueryAnswer::Pending {
        note,
        user_paying: false,
    };
    match trade_state_class(state) {
        TradeStateClass::Paid => match paid {
            Some(info) => QueryAnswer::Paid(info),
            None => pending(GatewayNote::new(
                "NO_TRANSACTION_ID",
                "paid state without transaction_id",
            )),
        },
        TradeStateClass::UserPaying => QueryAnswer::Pending {
            note,
            user_paying: true,
        },
        TradeStateClass::Pending => pending(note),
        TradeStateClass::NotPaid => QueryAnswer::NotPaid(note),
        TradeStateClass::PayError => QueryAnswer::PayError(note),
    }
}

pub fn revoke(reply: &Reply) -> RevokeAnswer {
    let f = match reply {
        Reply::NotSent(note) | Reply::Lost(note) => return RevokeAnswer::Retry(note.clone()),
        Reply::Answer(f) => f,
    };
    let f = match level(f) {
        Level::Business(f) => f,
        Level::ReturnFail { note, config: true } => return RevokeAnswer::Refused(note),
        Level::ReturnFail {
            note,
            config: false,
        } => return RevokeAnswer::Retry(note),
    };
    if get(f, "result_code") == "SUCCESS" {
        // WeChat's reverse does not say whether it closed or refunded.
        return RevokeAnswer::Revoked(RevokeEffect::Unstated);
    }
    let note = note_of(f);
    match (get(f, "recall"), get(f, "err_code")) {
        ("Y", _) => RevokeAnswer::Retry(note),
        // SYSTEMERROR: retry. USERPAYING "正在支付中不能发起撤销": the
        // customer is mid-password; retry later (gateway-facts.md §W5).
        (_, "SYSTEMERROR" | "USERPAYING" | "BANKERROR") => RevokeAnswer::Retry(note),
        // The documented refusals: no retry can help, an operator must look.
        (
            _,
            "REVERSE_EXPIRE"
            | "INVALID_TRANSACTIONID"
            | "PARAM_ERROR"
            | "REQUIRE_POST_METHOD"
            | "SIGNERROR"
            | "INVALID_REQUEST"
            | "TRADE_ERROR",
        ) => RevokeAnswer::Refused(note),
        // An undocumented code (the documented list is unconfirmed, and a
        // reverse a little early is refused with no documented code):
        // retried, still bounded by revoke_max_attempts (payment-rules.md §12).
        _ => RevokeAnswer::Retry(note),
    }
}

/// A signed answer that names another order than the one asked about (a
/// proxy's mix-up, a replayed answer) says nothing about this one: it is
/// taken as lost, so it can never make this attempt paid (payment-rules.md
/// §7).
pub fn about_order(reply: Reply, out_trade_no: &str) -> Reply {
    let Reply::Answer(f) = &reply else {
        return reply;
    };
    let named = get(f, "out_trade_no");
    if named.is_empty() || named == out_trade_no {
        return reply;
    }
    Reply::Lost(GatewayNote::new(
        "ANSWER_MISMATCH",
        format!("the answer is about order {named}, not {out_trade_no}"),
    ))
}

/// What an order query after a successful reverse says about money: a
/// REVOKED order that had been paid keeps its `time_end` (paid, then
/// refunded by the reverse); one that never was has none. Anything else
/// (no answer, another state) leaves it unstated. `time_end` is "支付完成
/// 时间", given only for a payment; that a reversed order keeps it is not
/// confirmed by a public sample (gateway-facts.md §U), so when it is absent
/// after a payment this attempt saw, the machine still says refunded.
pub fn revoke_effect(reply: &Reply) -> RevokeEffect {
    let Reply::Answer(f) = reply else {
        return RevokeEffect::Unstated;
    };
    let Level::Business(f) = level(f) else {
        return RevokeEffect::Unstated;
    };
    if get(f, "result_code") != "SUCCESS" || get(f, "trade_state") != "REVOKED" {
        return RevokeEffect::Unstated;
    }
    if get(f, "time_end").is_empty() {
        RevokeEffect::Closed
    } else {
        RevokeEffect::Refunded
    }
}

/// A downloadbill answer: CSV text, or an XML error. Told apart by the
/// first non-blank byte, as the official SDK does (gateway-facts.md §W9). The
/// CSV is not signed.
pub fn bill(reply: Result<Vec<u8>, GatewayNote>) -> BillAnswer {
    let body = match reply {
        Ok(b) => b,
        Err(note) => return BillAnswer::Failed(note),
    };
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'<') {
        if first.is_none() {
            return BillAnswer::Failed(GatewayNote::new("EMPTY_BILL", "empty answer"));
        }
        return BillAnswer::File(body);
    }
    let f = match super::xml::parse(&body) {
        Ok(f) => f,
        Err(e) => return BillAnswer::Failed(GatewayNote::new("BAD_RESPONSE", e.to_string())),
    };
    let msg = get(&f, "return_msg");
    let code = match get(&f, "error_code") {
        "" => get(&f, "return_code"),
        c => c,
    };
    let note = GatewayNote::new(code, msg);
    let lower = msg.to_ascii_lowercase();
    // The doc spells it "NO Bill Exist", the service says "No Bill Exist".
    if lower.contains("no bill exist") || code == "20002" {
        BillAnswer::NoBill(note)
    } else if lower.contains("bill creating") {
        BillAnswer::NotYet(note)
    } else {
        BillAnswer::Failed(note)
    }
}

mod refund;
pub use refund::{refund, refund_query};

#[cfg(test)]
mod tests;
