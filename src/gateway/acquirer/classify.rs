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
use crate::gateway::{GatewayNote, PaidInfo, PayAnswer, QueryAnswer, RevokeAnswer, RevokeEffect};

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
    (!transaction_id.is_empty()).then(|| PaidInfo {
        transaction_id: transaction_id.to_string(),
        paid_at: time_end(get(f, "time_end")),
        amount: get(f, "total_fee").parse().ok().map(Fen),
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

#[cfg(test)]
mod tests;
