//! The refund and bill tables, row by row.

use serde_json::json;

use super::*;

fn answer(status: u16, body: Value) -> V3Reply {
    V3Reply::Answer { status, body }
}

fn refund_body(status: &str) -> Value {
    json!({"out_trade_no": "T1_A1_1", "out_refund_no": "T1_R1", "refund_id": "5000", "status": status})
}

#[test]
fn each_refund_status_and_error_is_classified_as_the_table_says() {
    let r = |reply: V3Reply| refund(&reply, "T1_A1_1", "T1_R1");
    assert_eq!(
        r(answer(200, refund_body("SUCCESS"))),
        RefundAnswer::Refunded { refund_id: Some("5000".into()) }
    );
    assert!(matches!(r(answer(200, refund_body("PROCESSING"))), RefundAnswer::Processing(_)));
    assert!(matches!(r(answer(200, refund_body("CLOSED"))), RefundAnswer::Failed(_)));
    assert!(matches!(r(answer(200, refund_body("ABNORMAL"))), RefundAnswer::Failed(n) if n.message.contains("merchant portal")));
    assert!(matches!(r(answer(200, refund_body("NEW_STATE"))), RefundAnswer::Unknown(_)));
    let err = |status, code: &str| answer(status, json!({"code": code, "message": "m"}));
    assert!(matches!(r(err(429, "FREQUENCY_LIMITED")), RefundAnswer::Later(_)));
    assert!(matches!(r(err(500, "SYSTEM_ERROR")), RefundAnswer::Unknown(_)));
    assert!(matches!(r(err(403, "NOT_ENOUGH")), RefundAnswer::Failed(_)));
    assert!(matches!(r(err(400, "INVALID_REQUEST")), RefundAnswer::Failed(_)));
    assert!(matches!(r(err(404, "RESOURCE_NOT_EXISTS")), RefundAnswer::Failed(_)));
    assert!(
        matches!(r(err(400, "SOMETHING_NEW")), RefundAnswer::Unknown(_)),
        "an undocumented code may hide an accepted refund"
    );
    let lost = V3Reply::Lost(GatewayNote::new("TIMEOUT", "t"));
    assert!(matches!(r(lost), RefundAnswer::Unknown(_)));
}

#[test]
fn an_answer_about_another_refund_settles_nothing() {
    let mut other = refund_body("SUCCESS");
    other["out_refund_no"] = json!("T2_R1");
    assert!(matches!(refund(&answer(200, other.clone()), "T1_A1_1", "T1_R1"), RefundAnswer::Unknown(_)));
    assert!(matches!(refund_query(&answer(200, other), "T1_A1_1", "T1_R1"), RefundAnswer::Unknown(_)));
}

#[test]
fn a_refund_query_tells_a_missing_refund_from_a_failed_query() {
    let q = |reply: V3Reply| refund_query(&reply, "T1_A1_1", "T1_R1");
    let missing = answer(404, json!({"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"}));
    assert!(matches!(q(missing), RefundAnswer::NotFound(_)));
    // A refused query says nothing about the refund.
    let refused = answer(400, json!({"code": "PARAM_ERROR", "message": "m"}));
    assert!(matches!(q(refused), RefundAnswer::Unknown(_)));
    assert!(matches!(q(answer(200, refund_body("SUCCESS"))), RefundAnswer::Refunded { .. }));
}

#[test]
fn the_bill_is_found_hashed_or_not_there_yet() {
    let err = |code: &str| answer(400, json!({"code": code, "message": "m"}));
    assert!(matches!(bill_location(&err("NO_STATEMENT_EXIST")), Err(BillAnswer::NoBill(_))));
    assert!(matches!(bill_location(&err("STATEMENT_CREATING")), Err(BillAnswer::NotYet(_))));
    assert!(matches!(bill_location(&err("PARAM_ERROR")), Err(BillAnswer::Failed(_))));
    let file = b"\xe4\xba\xa4\xe6\x98\x93\xe6\x97\xb6\xe9\x97\xb4,...\r\n".to_vec();
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &file);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let found = answer(
        200,
        json!({"hash_type": "SHA1", "hash_value": hex, "download_url": "https://api.mch.weixin.qq.com/v3/billdownload/file?token=x"}),
    );
    let (url, sha1) = bill_location(&found).expect("found");
    assert!(url.ends_with("token=x"));
    assert_eq!(bill_file(file.clone(), &sha1), BillAnswer::File(file.clone()));
    let mut changed = file;
    changed.push(b'x');
    assert!(matches!(bill_file(changed, &sha1), BillAnswer::Failed(n) if n.code == "BILL_HASH_MISMATCH"));
    let no_hash = answer(200, json!({"download_url": "https://x/y"}));
    assert!(matches!(bill_location(&no_hash), Err(BillAnswer::Failed(_))));
}
