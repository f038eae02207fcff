//! From a WeChat Pay v3 answer to the trait's answers. Pure functions: the
//! client hands in the HTTP status and the JSON body of an answer whose
//! signature verified (an unverifiable one is [`V3Reply::Lost`]).
//!
//! The rules, and where each comes from (gateway-facts.md §W11):
//!
//! | answer | pay | query | reverse | source |
//! |---|---|---|---|---|
//! | 200, `trade_state` `SUCCESS` with a `transaction_id` | paid | paid | — | codepay / query pages |
//! | 202 (body `{"trade_state":"USERPAYING"}`) | unknown, customer confirming | — | — | WxJava #4050, community; v3 rules: 202 = accepted, not done |
//! | 200 with another `trade_state` | by the v2 table of states (same names) | same | — | query page |
//! | 204 or 200 to a reverse | — | — | revoked | reverse page |
//! | 4xx `{code, message}` | not paid (`config_error` for request, signature and permission codes) | keep polling | refused | v3 rules: 4xx = the request failed |
//! | 4xx `USERPAYING`, `SYSTEM_ERROR`, `BANK_ERROR`, 429 | unknown | keep polling | retry | v2 meanings of the same codes; 429 = not handled yet |
//! | 4xx `ORDER_PAID`, `OUT_TRADE_NO_USED` | order number used: the query decides | — | — | as v2 (payment-rules.md §5) |
//! | 4xx `ORDER_NOT_EXIST` | — | keep polling | retry | as v2 ORDERNOTEXIST |
//! | 5xx | unknown | keep polling | retry | v3 rules: 5xx = system error, retry |
//! | an answer naming another merchant or order | unknown | keep polling | retry | payment-rules.md §4 |
//!
//! v3 rules: <https://pay.weixin.qq.com/wiki/doc/api/wxpay/ch/pages/ico-guide/chapter1_6.shtml>.
//! The official codepay error table was not available (gateway-facts.md
//! §U 5): codes it may list beyond these are taken by their HTTP status.

use serde_json::Value;

use crate::domain::Fen;
use crate::gateway::wechat::classify::{query_answer, trade_state_class, TradeStateClass};
use crate::gateway::{
    GatewayNote, PaidBy, PaidInfo, PayAnswer, QueryAnswer, RevokeAnswer, RevokeEffect,
};

/// What came back from one v3 call.
#[derive(Debug, Clone, PartialEq)]
pub enum V3Reply {
    /// A verified answer: its HTTP status and JSON body (`Null` if empty).
    Answer { status: u16, body: Value },
    /// Provably never sent (payment-rules.md §4).
    NotSent(GatewayNote),
    /// Maybe arrived; no trustworthy answer.
    Lost(GatewayNote),
}

/// Who the answer must be about: a signed answer for another merchant or
/// order is not this attempt's (payment-rules.md §4).
pub struct Expect<'a> {
    pub mchid: &'a str,
    pub out_trade_no: &'a str,
}

pub(super) fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The error body's code and message, or the status when it has none.
pub(super) fn error_note(status: u16, body: &Value) -> GatewayNote {
    let code = text(body, "code");
    if code.is_empty() {
        GatewayNote::new(format!("HTTP_{status}"), format!("HTTP {status} without an error body"))
    } else {
        GatewayNote::new(code, text(body, "message"))
    }
}

/// Codes whose outcome no one knows yet, whatever the status says.
fn unknown_code(code: &str) -> bool {
    matches!(code, "USERPAYING" | "SYSTEM_ERROR" | "SYSTEMERROR" | "BANK_ERROR" | "BANKERROR")
}

/// Codes that say the merchant's request or setup is wrong.
fn config_code(code: &str) -> bool {
    matches!(
        code,
        "PARAM_ERROR"
            | "INVALID_REQUEST"
            | "SIGN_ERROR"
            | "NO_AUTH"
            | "MCH_NOT_EXISTS"
            | "APPID_MCHID_NOT_MATCH"
            | "RULE_LIMIT"
    )
}

/// Not this attempt's answer, if it names another merchant or order.
fn stranger(body: &Value, e: &Expect<'_>) -> Option<GatewayNote> {
    let mchid = text(body, "mchid");
    let otn = text(body, "out_trade_no");
    if (!mchid.is_empty() && mchid != e.mchid) || (!otn.is_empty() && otn != e.out_trade_no) {
        return Some(GatewayNote::new(
            "OTHER_ORDER",
            format!("a signed answer about merchant {mchid:?}, order {otn:?}: not this attempt's"),
        ));
    }
    None
}

fn paid_info(body: &Value) -> Option<PaidInfo> {
    let transaction_id = text(body, "transaction_id");
    if transaction_id.is_empty() {
        return None;
    }
    let amount = body
        .get("amount")
        .and_then(|a| a.get("total"))
        .and_then(Value::as_u64)
        .map(Fen);
    let paid_at = Some(text(body, "success_time"))
        .filter(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
        .map(str::to_string);
    let payer_total = body
        .get("amount")
        .and_then(|a| a.get("payer_total"))
        .and_then(Value::as_u64)
        .map(Fen);
    let openid = body
        .get("payer")
        .and_then(|p| p.get("openid"))
        .and_then(Value::as_str);
    Some(PaidInfo {
        // payer_total is what the customer paid; promotions covered the rest.
        paid_by: PaidBy::from_customer_paid(amount, payer_total, openid),
        transaction_id: transaction_id.to_string(),
        paid_at,
        amount,
    })
}

fn unknown(note: GatewayNote, user_paying: bool) -> PayAnswer {
    PayAnswer::Unknown { note, user_paying }
}

/// The answer to `POST /v3/pay/transactions/codepay`.
pub fn pay(reply: &V3Reply, e: &Expect<'_>) -> PayAnswer {
    let (status, body) = match reply {
        V3Reply::NotSent(n) => return PayAnswer::NotSent(n.clone()),
        V3Reply::Lost(n) => return unknown(n.clone(), false),
        V3Reply::Answer { status, body } => (*status, body),
    };
    match status {
        202 => unknown(GatewayNote::new("USERPAYING", "the customer is confirming the payment"), true),
        200 => {
            if let Some(n) = stranger(body, e) {
                return unknown(n, false);
            }
            let state = text(body, "trade_state");
            let note = GatewayNote::new(state, text(body, "trade_state_desc"));
            match (trade_state_class(state), paid_info(body)) {
                (TradeStateClass::Paid, Some(info)) => PayAnswer::Paid(info),
                (TradeStateClass::UserPaying, _) => unknown(note, true),
                // A paid state without a transaction id, or any other
                // state: the query decides.
                _ => unknown(note, false),
            }
        }
        429 => unknown(error_note(status, body), false),
        400..=499 => {
            let note = error_note(status, body);
            match note.code.as_str() {
                c if unknown_code(c) => {
                    let user_paying = c == "USERPAYING";
                    unknown(note, user_paying)
                }
                "ORDER_PAID" | "ORDERPAID" | "OUT_TRADE_NO_USED" => PayAnswer::OrderNumberUsed(note),
                c => PayAnswer::Failed {
                    config_error: config_code(c) || status == 401,
                    note,
                },
            }
        }
        _ => unknown(error_note(status, body), false),
    }
}

/// The answer to `GET /v3/pay/transactions/out-trade-no/{no}`.
pub fn query(reply: &V3Reply, e: &Expect<'_>) -> QueryAnswer {
    let pending = |note: GatewayNote| QueryAnswer::Pending {
        note,
        user_paying: false,
    };
    let (status, body) = match reply {
        V3Reply::NotSent(n) | V3Reply::Lost(n) => return pending(n.clone()),
        V3Reply::Answer { status, body } => (*status, body),
    };
    if status != 200 {
        // An error, ORDER_NOT_EXIST right after a lost pay call, a system
        // error: keep polling; the deadline bounds it (payment-rules.md §9).
        return pending(error_note(status, body));
    }
    if let Some(n) = stranger(body, e) {
        return pending(n);
    }
    let state = text(body, "trade_state");
    let note = GatewayNote::new(state, text(body, "trade_state_desc"));
    query_answer(state, note, paid_info(body))
}

/// The answer to `POST /v3/pay/transactions/out-trade-no/{no}/reverse`.
/// Like v2's reverse it does not say whether money moved: the engine asks.
pub fn reverse(reply: &V3Reply) -> RevokeAnswer {
    let (status, body) = match reply {
        V3Reply::NotSent(n) | V3Reply::Lost(n) => return RevokeAnswer::Retry(n.clone()),
        V3Reply::Answer { status, body } => (*status, body),
    };
    match status {
        200 | 204 => RevokeAnswer::Revoked(RevokeEffect::Unstated),
        429 => RevokeAnswer::Retry(error_note(status, body)),
        400..=499 => {
            let note = error_note(status, body);
            if unknown_code(&note.code) || note.code == "ORDER_NOT_EXIST" {
                RevokeAnswer::Retry(note)
            } else {
                RevokeAnswer::Refused(note)
            }
        }
        _ => RevokeAnswer::Retry(error_note(status, body)),
    }
}

/// After a reverse: did it close an unpaid order or return a payment?
/// The order query says: a `REVOKED` order that had been paid keeps its
/// `transaction_id` and `success_time`. Anything else leaves it unstated.
pub fn revoke_effect(reply: &V3Reply, e: &Expect<'_>) -> RevokeEffect {
    let V3Reply::Answer { status: 200, body } = reply else {
        return RevokeEffect::Unstated;
    };
    if stranger(body, e).is_some() || text(body, "trade_state") != "REVOKED" {
        return RevokeEffect::Unstated;
    }
    if text(body, "transaction_id").is_empty() || text(body, "success_time").is_empty() {
        RevokeEffect::Closed
    } else {
        RevokeEffect::Refunded
    }
}

#[cfg(test)]
mod tests;
