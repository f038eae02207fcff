//! WeChat's refund and refund-query answers, classified (payment-rules.md
//! §17, gateway-facts.md §W8).

use super::{get, level, note_of, Fields, Level, Reply};
use crate::gateway::{GatewayNote, RefundAnswer};

/// The business fields of a signed answer, or the refund answer it is
/// without them. No answer (never sent, or lost) is unknown: the same
/// out_refund_no may be sent again, it is idempotent. A `return_code`
/// failure is `on_request_error` when its text is a documented request
/// error, else unknown.
fn business(
    reply: &Reply,
    on_request_error: fn(GatewayNote) -> RefundAnswer,
) -> Result<&Fields, RefundAnswer> {
    let f = match reply {
        Reply::NotSent(note) | Reply::Lost(note) => {
            return Err(RefundAnswer::Unknown(note.clone()))
        }
        Reply::Answer(f) => f,
    };
    match level(f) {
        Level::Business(f) => Ok(f),
        Level::ReturnFail { note, config: true } => Err(on_request_error(note)),
        Level::ReturnFail { note, .. } => Err(RefundAnswer::Unknown(note)),
    }
}

/// A `/secapi/pay/refund` answer for the refund `refund_no` of the trade
/// `out_trade_no`.
pub fn refund(reply: &Reply, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
    // A request error refuses this refund call for good.
    let f = match business(reply, RefundAnswer::Failed) {
        Ok(f) => f,
        Err(answer) => return answer,
    };
    if get(f, "result_code") == "SUCCESS" {
        if let Some(note) = not_about(f, out_trade_no, refund_no) {
            return RefundAnswer::Unknown(note);
        }
        // result_code=SUCCESS only says the application was accepted
        // ("退款申请接收成功"); refundquery tells when the money is back.
        return RefundAnswer::Processing(GatewayNote::new(
            "SUCCESS",
            format!("refund accepted, refund_id {}", get(f, "refund_id")),
        ));
    }
    let note = note_of(f);
    match get(f, "err_code") {
        "SYSTEMERROR" | "BIZERR_NEED_RETRY" => RefundAnswer::Unknown(note),
        // "Back off; retry after 1 minute" / rate limited: the same refund
        // number again later, not a refusal for good.
        "INVALID_REQ_TOO_MUCH" | "FREQUENCY_LIMITED" => RefundAnswer::Later(note),
        "TRADE_OVERDUE"
        | "ERROR"
        | "USER_ACCOUNT_ABNORMAL"
        | "NOTENOUGH"
        | "INVALID_TRANSACTIONID"
        | "PARAM_ERROR"
        | "APPID_NOT_EXIST"
        | "MCHID_NOT_EXIST"
        | "ORDERNOTEXIST"
        | "REQUIRE_POST_METHOD"
        | "SIGNERROR"
        | "XML_FORMAT_ERROR"
        | "REFUND_FEE_MISMATCH"
        | "NOAUTH"
        | "APPID_MCHID_NOT_MATCH"
        | "LACK_PARAMS" => RefundAnswer::Failed(note),
        // An undocumented code may hide an accepted refund; declaring it
        // failed could lead to a second refund under a new number.
        _ => RefundAnswer::Unknown(note),
    }
}

/// Why a signed refund answer is not about the refund asked for: WeChat
/// names the trade and the refund it acted on, and an answer for another
/// one (a proxy's mix-up, a refund number reused across tills) must not
/// settle this one.
fn not_about(f: &Fields, out_trade_no: &str, refund_no: &str) -> Option<GatewayNote> {
    let otn = get(f, "out_trade_no");
    let orn = get(f, "out_refund_no");
    if (!otn.is_empty() && otn != out_trade_no) || (!orn.is_empty() && orn != refund_no) {
        return Some(GatewayNote::new(
            "ANSWER_MISMATCH",
            format!("the answer is about {otn}/{orn}, not {out_trade_no}/{refund_no}"),
        ));
    }
    None
}

/// A refund query asked by `out_refund_no`: finds that refund among the
/// indexed `*_$n` fields and reads its `refund_status_$n`.
pub fn refund_query(reply: &Reply, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
    // A request error refuses the query, and says nothing about the refund:
    // "failed" here could lead to a second refund of money already back.
    let f = match business(reply, RefundAnswer::Unknown) {
        Ok(f) => f,
        Err(answer) => return answer,
    };
    if get(f, "result_code") != "SUCCESS" {
        let note = note_of(f);
        return match get(f, "err_code") {
            // The gateway has no such refund: it did not arrive. A retry
            // with the same out_refund_no is still safe.
            "REFUNDNOTEXIST" | "ORDERNOTEXIST" => RefundAnswer::NotFound(note),
            // A request or configuration error says nothing about the
            // refund itself: ask again (the merchant must fix it).
            _ => RefundAnswer::Unknown(note),
        };
    }
    if let Some(note) = not_about(f, out_trade_no, "") {
        return RefundAnswer::Unknown(note);
    }
    let count: usize = get(f, "refund_count").parse().unwrap_or(0);
    let index = (0..count.min(100)).find(|n| get(f, &format!("out_refund_no_{n}")) == refund_no);
    let Some(n) = index else {
        return RefundAnswer::Unknown(GatewayNote::new(
            "REFUND_NOT_LISTED",
            "the refund query answer does not list this refund",
        ));
    };
    let status = get(f, &format!("refund_status_{n}"));
    let note = GatewayNote::new(status, get(f, &format!("refund_recv_accout_{n}")));
    match status {
        "SUCCESS" => {
            let id = get(f, &format!("refund_id_{n}"));
            RefundAnswer::Refunded {
                refund_id: (!id.is_empty()).then(|| id.to_string()),
            }
        }
        "PROCESSING" => RefundAnswer::Processing(note),
        // REFUNDCLOSE: closed; CHANGE: 退款异常, the money did not reach
        // the customer and the merchant must arrange it by hand.
        "REFUNDCLOSE" | "CHANGE" => RefundAnswer::Failed(note),
        _ => RefundAnswer::Unknown(note),
    }
}
