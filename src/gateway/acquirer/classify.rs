//! From a `unified.trade.*` answer to the trait's answers. Pure: the
//! client hands in the parsed fields of an answer, with `verified` saying
//! whether its `sign` checked out.
//!
//! The protocol has three levels (docs/gateway-facts.md §Q3): `status` is
//! the communication (`0` = the gateway took the request; only then are
//! the other fields and `sign` present), `result_code` the business result
//! (`0` = success), and for a code payment `pay_result` (`0` = paid) and
//! `need_query` (`Y` = ask the order query).
//!
//! | answer | pay | query | reverse | source |
//! |---|---|---|---|---|
//! | transport error after sending, unreadable XML | unknown | keep polling | retry | payment-rules.md §4 |
//! | `status`≠0 (unsigned: signature or format refused) | unknown | keep polling | retry | `status` is not a trade result; unsigned answers prove nothing |
//! | `status`=0 without a valid `sign` | unknown | keep polling | retry | payment-rules.md §7 |
//! | `result_code`=0, `pay_result` absent or 0, our order and amount | paid | — | — | micropay response fields |
//! | `result_code`=0 otherwise | unknown | — | — | a success that does not add up is not paid |
//! | `result_code`≠0 with `need_query`=Y, or an unknown-outcome `err_code` | unknown (USERPAYING: the customer is confirming) | — | retry | `need_query` field; SDK tables of unknown codes |
//! | `err_code` order paid / number used | order number used | — | — | as WeChat and Alipay (payment-rules.md §5) |
//! | `result_code`≠0 with `need_query`=N | failed | — | — | `need_query`=N: no query needed |
//! | `result_code`≠0 without `need_query` | unknown | — | — | the safe side: the query decides |
//! | `trade_state` SUCCESS / REFUND | — | paid | — | query response |
//! | `trade_state` USERPAYING / NOTPAY | — | keep polling | — | query response |
//! | `trade_state` CLOSED / REVOKED / REVERSE | — | not paid | — | query response (REVERSE "已冲正" in two sources) |
//! | `trade_state` PAYERROR | — | pay error: revoke to close | — | query response |
//! | reverse `result_code`=0 | — | — | revoked | reverse response |
//! | reverse `recall`/`retry_flag`=Y, or a system error | — | — | retry | WeChat's `recall`; one SDK's `retry_flag` |
//! | reverse refused for good (past its window, refunded) | — | — | refused | upstream WeChat codes passed through |
//! | any other reverse error | — | — | retry | the revoke's own bound stops it (payment-rules.md §12) |
//!
//! Codes are the upstream wallet's, passed through (WeChat's, Alipay's, or
//! UnionPay's), so the unknown-outcome set holds each wallet's.

use std::collections::BTreeMap;

use chrono::{FixedOffset, NaiveDateTime, TimeZone};

use crate::domain::Fen;
use crate::gateway::{PaidBy, 
    GatewayNote, PaidInfo, PayAnswer, QueryAnswer, RefundAnswer, RevokeAnswer, RevokeEffect,
};

pub type Fields = BTreeMap<String, String>;

/// What came back from one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Parsed fields; `verified` when `status`=0 and the `sign` checked out.
    Answer { fields: Fields, verified: bool },
    /// Provably never sent (payment-rules.md §4).
    NotSent(GatewayNote),
    /// Maybe arrived; no answer to go by.
    Lost(GatewayNote),
}

fn get<'a>(f: &'a Fields, k: &str) -> &'a str {
    f.get(k).map(String::as_str).unwrap_or("")
}

/// `err_code`s whose outcome no one knows yet, from any wallet behind the
/// acquirer.
fn unknown_outcome(code: &str) -> bool {
    matches!(
        code,
        "USERPAYING"
            | "SYSTEMERROR"
            | "SYSTEM_ERROR"
            | "BANKERROR"
            | "10003"
            | "20000"
            | "ACQ.SYSTEM_ERROR"
            | "aop.ACQ.SYSTEM_ERROR"
            | "Internal error"
            | "System error"
    )
}

fn user_paying(code: &str) -> bool {
    matches!(code, "USERPAYING" | "10003")
}

/// `err_code`s that say the order number was paid or used already.
fn number_used(code: &str) -> bool {
    matches!(
        code,
        "ORDERPAID" | "OUT_TRADE_NO_USED" | "ACQ.TRADE_HAS_SUCCESS"
    )
}

/// `err_code`s the merchant must fix.
fn config_error(code: &str) -> bool {
    matches!(
        code,
        "SIGNERROR"
            | "PARAM_ERROR"
            | "NOAUTH"
            | "LACK_PARAMS"
            | "MCHID_NOT_EXIST"
            | "APPID_NOT_EXIST"
    )
}

fn note_of(f: &Fields) -> GatewayNote {
    match get(f, "err_code") {
        "" => GatewayNote::new(
            format!("RESULT_{}", get(f, "result_code")),
            get(f, "err_msg"),
        ),
        code => GatewayNote::new(code, get(f, "err_msg")),
    }
}

/// The business fields of a verified, accepted answer, or why there are
/// none to go by.
fn accepted(reply: &Reply) -> Result<&Fields, GatewayNote> {
    match reply {
        Reply::NotSent(n) | Reply::Lost(n) => Err(n.clone()),
        Reply::Answer { fields, .. } if get(fields, "status") != "0" => Err(GatewayNote::new(
            format!("STATUS_{}", get(fields, "status")),
            get(fields, "message"),
        )),
        Reply::Answer {
            verified: false, ..
        } => Err(GatewayNote::new(
            "BAD_SIGNATURE",
            "the answer's sign is missing or wrong",
        )),
        Reply::Answer { fields, .. } => Ok(fields),
    }
}

/// `time_end` (yyyyMMddHHmmss, Beijing time) as RFC 3339.
fn time_end(s: &str) -> Option<String> {
    let naive = NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?;
    let beijing = FixedOffset::east_opt(8 * 3600)?;
    Some(beijing.from_local_datetime(&naive).single()?.to_rfc3339())
}

fn paid_info(f: &Fields) -> Option<PaidInfo> {
    let transaction_id = get(f, "transaction_id");
    let fen = |k| get(f, k).parse::<u64>().ok().map(Fen);
    let amount = fen("total_fee");
    // The acquirer passes on the wallet's coupon_fee (and, for WeChat,
    // cash_fee); the payer is the openid or Alipay's masked login.
    let payer = Some(get(f, "openid"))
        .filter(|s| !s.is_empty())
        .or(Some(get(f, "buyer_logon_id")));
    let paid_by = match (fen("cash_fee"), fen("coupon_fee")) {
        (Some(cash), coupon) => PaidBy {
            customer_paid: Some(cash),
            discount: coupon,
            ..PaidBy::from_customer_paid(None, None, payer)
        },
        (None, Some(coupon)) => PaidBy::from_customer_paid(
            amount,
            amount.and_then(|a| a.0.checked_sub(coupon.0)).map(Fen),
            payer,
        ),
        (None, None) => PaidBy::from_customer_paid(None, None, payer),
    };
    (!transaction_id.is_empty()).then(|| PaidInfo {
        paid_by,
        transaction_id: transaction_id.to_string(),
        paid_at: time_end(get(f, "time_end")),
        amount,
    })
}

/// Not this order's answer.
fn stranger(f: &Fields, out_trade_no: &str) -> Option<GatewayNote> {
    let otn = get(f, "out_trade_no");
    (!otn.is_empty() && otn != out_trade_no).then(|| {
        GatewayNote::new(
            "OTHER_ORDER",
            format!("a signed answer about order {otn:?}: not this attempt's"),
        )
    })
}

/// The answer to `unified.trade.micropay` for `out_trade_no` of `amount`.
pub fn pay(reply: &Reply, out_trade_no: &str, amount: Fen) -> PayAnswer {
    let unknown = |note, user_paying| PayAnswer::Unknown { note, user_paying };
    if let Reply::NotSent(n) = reply {
        return PayAnswer::NotSent(n.clone());
    }
    let f = match accepted(reply) {
        Ok(f) => f,
        Err(note) => return unknown(note, false),
    };
    if let Some(n) = stranger(f, out_trade_no) {
        return unknown(n, false);
    }
    if get(f, "result_code") == "0" {
        let paid = matches!(get(f, "pay_result"), "" | "0");
        let same_amount = get(f, "total_fee").parse::<u64>().ok() == Some(amount.0);
        return match paid_info(f) {
            Some(info) if paid && same_amount && get(f, "out_trade_no") == out_trade_no => {
                PayAnswer::Paid(info)
            }
            _ => unknown(
                GatewayNote::new(
                    format!("PAY_RESULT_{}", get(f, "pay_result")),
                    "a success that does not show this order paid in full: the query decides",
                ),
                false,
            ),
        };
    }
    let note = note_of(f);
    let code = note.code.clone();
    if number_used(&code) {
        return PayAnswer::OrderNumberUsed(note);
    }
    if unknown_outcome(&code) || get(f, "need_query") != "N" {
        return unknown(note, user_paying(&code));
    }
    PayAnswer::Failed {
        config_error: config_error(&code),
        note,
    }
}

/// The answer to `unified.trade.query`.
pub fn query(reply: &Reply, out_trade_no: &str) -> QueryAnswer {
    let pending = |note| QueryAnswer::Pending {
        note,
        user_paying: false,
    };
    let f = match accepted(reply) {
        Ok(f) => f,
        Err(note) => return pending(note),
    };
    if get(f, "result_code") != "0" {
        // No such order yet, or the query failed: keep polling; the
        // deadline bounds it (payment-rules.md §9).
        return pending(note_of(f));
    }
    if let Some(n) = stranger(f, out_trade_no) {
        return pending(n);
    }
    let state = get(f, "trade_state");
    let note = GatewayNote::new(state, get(f, "trade_state_desc"));
    match state {
        "SUCCESS" | "REFUND" => match paid_info(f) {
            Some(info) => QueryAnswer::Paid(info),
            None => pending(GatewayNote::new(
                "NO_TRANSACTION_ID",
                "paid state without transaction_id",
            )),
        },
        "USERPAYING" => QueryAnswer::Pending {
            note,
            user_paying: true,
        },
        "CLOSED" | "REVOKED" | "REVERSE" => QueryAnswer::NotPaid(note),
        "PAYERROR" => QueryAnswer::PayError(note),
        _ => pending(note),
    }
}

/// The answer to `unified.micropay.reverse`.
pub fn reverse(reply: &Reply) -> RevokeAnswer {
    let f = match accepted(reply) {
        Ok(f) => f,
        Err(note) => return RevokeAnswer::Retry(note),
    };
    if get(f, "result_code") == "0" {
        return RevokeAnswer::Revoked(RevokeEffect::Unstated);
    }
    let note = note_of(f);
    let again = get(f, "recall") == "Y" || get(f, "retry_flag") == "Y";
    match note.code.as_str() {
        _ if again => RevokeAnswer::Retry(note),
        // Past the wallet's window, or refunded already: an operator looks.
        "REVERSE_EXPIRE"
        | "TRADE_ERROR"
        | "ACQ.TRADE_CANCEL_TIME_OUT"
        | "ACQ.REASON_TRADE_REFUND_FEE_ERR" => RevokeAnswer::Refused(note),
        _ => RevokeAnswer::Retry(note),
    }
}

/// After a reverse: the query says whether it closed an unpaid order or
/// returned a payment (a reversed order that was paid keeps its
/// `transaction_id` and `time_end`).
pub fn revoke_effect(reply: &Reply, out_trade_no: &str) -> RevokeEffect {
    let Ok(f) = accepted(reply) else {
        return RevokeEffect::Unstated;
    };
    if get(f, "result_code") != "0" || stranger(f, out_trade_no).is_some() {
        return RevokeEffect::Unstated;
    }
    match get(f, "trade_state") {
        "REVOKED" | "REVERSE" | "CLOSED" if !get(f, "time_end").is_empty() => RevokeEffect::Refunded,
        "REVOKED" | "REVERSE" | "CLOSED" => RevokeEffect::Closed,
        _ => RevokeEffect::Unstated,
    }
}

/// Refund errors that refuse this refund for good.
fn refund_refused(code: &str) -> bool {
    matches!(
        code,
        "ERROR" | "NOTENOUGH" | "TRADE_OVERDUE" | "USER_ACCOUNT_ABNORMAL" | "ORDERNOTEXIST"
            | "REFUND_FEE_MISMATCH" | "REFUND_FEE_INVALID"
    ) || config_error(code)
}

/// Not this refund's answer.
fn other_refund(f: &Fields, out_trade_no: &str, refund_no: &str) -> Option<GatewayNote> {
    let otn = get(f, "out_trade_no");
    let orn = get(f, "out_refund_no");
    ((!otn.is_empty() && otn != out_trade_no) || (!orn.is_empty() && orn != refund_no)).then(|| {
        GatewayNote::new(
            "ANSWER_MISMATCH",
            format!("the answer is about {otn}/{orn}, not {out_trade_no}/{refund_no}"),
        )
    })
}

/// The answer to `unified.trade.refund`: `result_code=0` only accepts the
/// refund ("实际的退款结果根据退款查询接口查询"); the refund query tells.
pub fn refund(reply: &Reply, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
    let f = match accepted(reply) {
        Ok(f) => f,
        Err(note) => return RefundAnswer::Unknown(note),
    };
    if let Some(n) = other_refund(f, out_trade_no, refund_no) {
        return RefundAnswer::Unknown(n);
    }
    if get(f, "result_code") == "0" {
        return RefundAnswer::Processing(GatewayNote::new(
            "ACCEPTED",
            format!("refund accepted, refund_id {}", get(f, "refund_id")),
        ));
    }
    let note = note_of(f);
    match note.code.as_str() {
        "FREQUENCY_LIMITED" | "INVALID_REQ_TOO_MUCH" => RefundAnswer::Later(note),
        c if refund_refused(c) => RefundAnswer::Failed(note),
        // An undocumented code may hide an accepted refund.
        _ => RefundAnswer::Unknown(note),
    }
}

/// The answer to `unified.trade.refundquery` by `out_refund_no`.
pub fn refund_query(reply: &Reply, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
    let f = match accepted(reply) {
        Ok(f) => f,
        Err(note) => return RefundAnswer::Unknown(note),
    };
    if get(f, "result_code") != "0" {
        let note = note_of(f);
        return match note.code.as_str() {
            "REFUNDNOTEXIST" | "ORDERNOTEXIST" => RefundAnswer::NotFound(note),
            _ => RefundAnswer::Unknown(note),
        };
    }
    if let Some(n) = other_refund(f, out_trade_no, "") {
        return RefundAnswer::Unknown(n);
    }
    let count: usize = get(f, "refund_count").parse().unwrap_or(0);
    let Some(n) = (0..count.min(100)).find(|n| get(f, &format!("out_refund_no_{n}")) == refund_no) else {
        return RefundAnswer::Unknown(GatewayNote::new(
            "REFUND_NOT_LISTED",
            "the refund query answer does not list this refund",
        ));
    };
    let status = get(f, &format!("refund_status_{n}"));
    let note = GatewayNote::new(status, get(f, &format!("refund_status_info_{n}")));
    match status {
        "SUCCESS" => {
            let id = get(f, &format!("refund_id_{n}"));
            RefundAnswer::Refunded {
                refund_id: (!id.is_empty()).then(|| id.to_string()),
            }
        }
        "PROCESSING" => RefundAnswer::Processing(note),
        // "未确定，需要商户原退款单号重新发起": the same refund again.
        "NOTSURE" => RefundAnswer::Later(note),
        // One terminal reads FAILED where the document says FAIL.
        "FAIL" | "FAILED" | "CHANGE" => RefundAnswer::Failed(note),
        _ => RefundAnswer::Unknown(note),
    }
}

/// The bill download's answer: the text itself, or an XML error.
pub fn bill(body: Vec<u8>) -> crate::gateway::BillAnswer {
    use crate::gateway::BillAnswer;
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return BillAnswer::Failed(GatewayNote::new("EMPTY_BILL", "empty answer")),
        Some(b'<') => {}
        Some(_) => return BillAnswer::File(body),
    }
    let f = match crate::gateway::flat_xml::parse(&body) {
        Ok(f) => f,
        Err(e) => return BillAnswer::Failed(GatewayNote::new("BAD_RESPONSE", e.to_string())),
    };
    let msg = match get(&f, "err_msg") {
        "" => get(&f, "message"),
        m => m,
    };
    let note = GatewayNote::new(get(&f, "err_code"), msg);
    // The wording of "no bill" and "not yet" is unconfirmed
    // (gateway-facts.md §U): both are read from the message.
    if msg.contains("不存在") || msg.to_ascii_lowercase().contains("no bill") {
        BillAnswer::NoBill(note)
    } else if msg.contains("生成中") || msg.to_ascii_lowercase().contains("creating") {
        BillAnswer::NotYet(note)
    } else {
        BillAnswer::Failed(note)
    }
}

#[cfg(test)]
mod tests;
