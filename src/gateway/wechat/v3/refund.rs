//! What v3 refund, refund query and trade bill answers mean. Pure, like
//! [`super::classify`]: the client hands in verified answers only.
//!
//! | answer | refund | refund query | source |
//! |---|---|---|---|
//! | 200 `status` `SUCCESS` | refunded | refunded | refunds guide (退款状态) |
//! | 200 `status` `PROCESSING` | processing | processing | refunds guide |
//! | 200 `status` `CLOSED` | failed | failed | refunds guide: closed after 7 days without funds |
//! | 200 `status` `ABNORMAL` | failed, for the merchant portal | same | refunds guide: the card was void; as v2 `CHANGE` |
//! | 200 about another trade or refund | unknown | unknown | payment-rules.md §4 |
//! | 429 `FREQUENCY_LIMITED` | later | unknown | refund API errors |
//! | 5xx, `SYSTEM_ERROR` | unknown | unknown | v3 rules: 5xx = retry with the same request |
//! | 4xx request, account and order errors | failed | unknown | refund API errors |
//! | 404 `RESOURCE_NOT_EXISTS` | failed (no such order) | not found | refund query API errors |
//! | any other 4xx code | unknown | unknown | an undocumented code may hide an accepted refund |
//!
//! Refunds guide: <https://pay.weixin.qq.com/doc/v3/merchant/4013071031>;
//! query: <https://pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter4_2_10.shtml>;
//! trade bill: <https://pay.weixin.qq.com/wiki/doc/apiv3/wxpay/pay/bill/chapter3_1.shtml>
//! (`NO_STATEMENT_EXIST`, `STATEMENT_CREATING`).

use serde_json::Value;

use super::classify::{error_note, text, V3Reply};
use crate::gateway::{BillAnswer, GatewayNote, RefundAnswer};

/// Refund errors that refuse this refund for good: the request, the
/// account or the order is wrong, or the merchant's balance cannot pay it.
fn refused(code: &str) -> bool {
    matches!(
        code,
        "PARAM_ERROR"
            | "INVALID_REQUEST"
            | "SIGN_ERROR"
            | "NO_AUTH"
            | "MCH_NOT_EXISTS"
            | "APPID_MCHID_NOT_MATCH"
            | "RESOURCE_NOT_EXISTS"
            | "NOT_ENOUGH"
            | "USER_ACCOUNT_ABNORMAL"
    )
}

/// A 200 refund body about `out_trade_no` / `refund_no`, classified by its
/// `status`.
fn refund_state(body: &Value, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
    let otn = text(body, "out_trade_no");
    let orn = text(body, "out_refund_no");
    if (!otn.is_empty() && otn != out_trade_no) || orn != refund_no {
        return RefundAnswer::Unknown(GatewayNote::new(
            "ANSWER_MISMATCH",
            format!("the answer is about {otn}/{orn}, not {out_trade_no}/{refund_no}"),
        ));
    }
    let status = text(body, "status");
    let note = GatewayNote::new(status, text(body, "user_received_account"));
    match status {
        "SUCCESS" => {
            let id = text(body, "refund_id");
            RefundAnswer::Refunded {
                refund_id: (!id.is_empty()).then(|| id.to_string()),
            }
        }
        "PROCESSING" => RefundAnswer::Processing(note),
        "CLOSED" => RefundAnswer::Failed(note),
        // 退款异常: the money did not reach the customer (a void card) and
        // waits in WeChat's refund account for the merchant to redirect it
        // in the portal or by the abnormal-refund API.
        "ABNORMAL" => RefundAnswer::Failed(GatewayNote::new(
            "ABNORMAL",
            "refund abnormal: the customer's card refused it; redirect it in the merchant portal (交易中心)",
        )),
        _ => RefundAnswer::Unknown(note),
    }
}

/// The answer to `POST /v3/refund/domestic/refunds`.
pub fn refund(reply: &V3Reply, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
    let (status, body) = match reply {
        V3Reply::NotSent(n) | V3Reply::Lost(n) => return RefundAnswer::Unknown(n.clone()),
        V3Reply::Answer { status, body } => (*status, body),
    };
    match status {
        200 => refund_state(body, out_trade_no, refund_no),
        429 => RefundAnswer::Later(error_note(status, body)),
        400..=499 => {
            let note = error_note(status, body);
            match note.code.as_str() {
                "FREQUENCY_LIMITED" => RefundAnswer::Later(note),
                c if refused(c) => RefundAnswer::Failed(note),
                _ => RefundAnswer::Unknown(note),
            }
        }
        _ => RefundAnswer::Unknown(error_note(status, body)),
    }
}

/// The answer to `GET /v3/refund/domestic/refunds/{out_refund_no}`.
pub fn refund_query(reply: &V3Reply, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
    let (status, body) = match reply {
        V3Reply::NotSent(n) | V3Reply::Lost(n) => return RefundAnswer::Unknown(n.clone()),
        V3Reply::Answer { status, body } => (*status, body),
    };
    match status {
        200 => refund_state(body, out_trade_no, refund_no),
        // No such refund: after a refund call that was never answered, it
        // did not arrive, and the same number may be sent again.
        404 if text(body, "code") == "RESOURCE_NOT_EXISTS" => {
            RefundAnswer::NotFound(error_note(status, body))
        }
        // An error about the query says nothing about the refund.
        _ => RefundAnswer::Unknown(error_note(status, body)),
    }
}

/// Where the day's bill file is and the SHA-1 it must have, or what the
/// gateway said instead.
pub fn bill_location(reply: &V3Reply) -> Result<(String, String), BillAnswer> {
    let (status, body) = match reply {
        V3Reply::NotSent(n) | V3Reply::Lost(n) => return Err(BillAnswer::Failed(n.clone())),
        V3Reply::Answer { status, body } => (*status, body),
    };
    if status != 200 {
        let note = error_note(status, body);
        return Err(match note.code.as_str() {
            "NO_STATEMENT_EXIST" => BillAnswer::NoBill(note),
            "STATEMENT_CREATING" => BillAnswer::NotYet(note),
            _ => BillAnswer::Failed(note),
        });
    }
    let url = text(body, "download_url");
    let hash = text(body, "hash_value");
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || text(body, "hash_type") != "SHA1"
        || hash.len() != 40
    {
        return Err(BillAnswer::Failed(GatewayNote::new(
            "BAD_RESPONSE",
            "the trade bill answer has no usable download_url, SHA1 hash_type and hash_value",
        )));
    }
    Ok((url.to_string(), hash.to_ascii_lowercase()))
}

/// The downloaded file, kept only if its SHA-1 is the one the signed
/// answer gave (the download itself carries no signature).
pub fn bill_file(bytes: Vec<u8>, sha1_hex: &str) -> BillAnswer {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &bytes);
    let got: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    if got != sha1_hex {
        return BillAnswer::Failed(GatewayNote::new(
            "BILL_HASH_MISMATCH",
            format!("the bill file's SHA-1 is {got}, the gateway said {sha1_hex}"),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return BillAnswer::Failed(GatewayNote::new("EMPTY_BILL", "empty bill file"));
    }
    BillAnswer::File(bytes)
}

#[cfg(test)]
mod tests;
