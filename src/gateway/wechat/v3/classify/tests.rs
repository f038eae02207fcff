//! Every row of the v3 table in `classify.rs`.

use serde_json::json;

use super::*;

const E: Expect<'static> = Expect {
    mchid: "1230000109",
    out_trade_no: "T1_A1_1",
};

fn answer(status: u16, body: Value) -> V3Reply {
    V3Reply::Answer { status, body }
}

fn paid_body() -> Value {
    json!({
        "appid": "wxd678efh567hg6787", "mchid": "1230000109",
        "out_trade_no": "T1_A1_1", "transaction_id": "4200000000202612010000000001",
        "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
        "success_time": "2026-12-01T10:00:10+08:00",
        "amount": {"total": 1234, "currency": "CNY"}
    })
}

fn error(code: &str) -> Value {
    json!({"code": code, "message": format!("{code} text")})
}

#[test]
fn a_verified_success_is_paid_with_its_id_time_and_amount() {
    let PayAnswer::Paid(info) = pay(&answer(200, paid_body()), &E) else {
        panic!("not paid");
    };
    assert_eq!(info.transaction_id, "4200000000202612010000000001");
    assert_eq!(info.paid_at.as_deref(), Some("2026-12-01T10:00:10+08:00"));
    assert_eq!(info.amount, Some(Fen(1234)));
    assert!(matches!(query(&answer(200, paid_body()), &E), QueryAnswer::Paid(_)));
}

#[test]
fn http_202_is_the_customer_confirming_never_a_failure() {
    let a = pay(&answer(202, json!({"trade_state": "USERPAYING"})), &E);
    assert!(matches!(a, PayAnswer::Unknown { user_paying: true, .. }), "{a:?}");
    // Even with an empty body.
    let a = pay(&answer(202, Value::Null), &E);
    assert!(matches!(a, PayAnswer::Unknown { user_paying: true, .. }), "{a:?}");
}

#[test]
fn a_success_without_a_transaction_id_or_about_another_order_is_unknown() {
    let mut body = paid_body();
    body["transaction_id"] = json!("");
    assert!(matches!(pay(&answer(200, body), &E), PayAnswer::Unknown { .. }));
    for (k, v) in [("mchid", "999"), ("out_trade_no", "T1_B2_1")] {
        let mut body = paid_body();
        body[k] = json!(v);
        let a = pay(&answer(200, body.clone()), &E);
        assert!(matches!(&a, PayAnswer::Unknown { note, .. } if note.code == "OTHER_ORDER"), "{a:?}");
        assert!(matches!(query(&answer(200, body), &E), QueryAnswer::Pending { .. }));
    }
}

#[test]
fn a_4xx_is_a_failed_pay_and_request_errors_are_the_merchants_to_fix() {
    let a = pay(&answer(403, error("NOT_ENOUGH")), &E);
    assert!(matches!(&a, PayAnswer::Failed { note, config_error: false } if note.code == "NOT_ENOUGH"), "{a:?}");
    for (status, code) in [(400, "PARAM_ERROR"), (401, "SIGN_ERROR"), (403, "NO_AUTH"), (400, "INVALID_REQUEST")] {
        let a = pay(&answer(status, error(code)), &E);
        assert!(matches!(a, PayAnswer::Failed { config_error: true, .. }), "{code}: {a:?}");
    }
}

#[test]
fn codes_of_an_unknown_outcome_and_5xx_and_429_are_unknown() {
    for (status, code, paying) in [
        (403, "USERPAYING", true),
        (400, "SYSTEM_ERROR", false),
        (403, "BANK_ERROR", false),
        (429, "FREQUENCY_LIMITED", false),
        (500, "SYSTEM_ERROR", false),
        (503, "", false),
    ] {
        let a = pay(&answer(status, error(code)), &E);
        assert!(matches!(a, PayAnswer::Unknown { user_paying, .. } if user_paying == paying), "{status} {code}: {a:?}");
    }
    assert!(matches!(pay(&V3Reply::Lost(GatewayNote::new("TIMEOUT", "t")), &E), PayAnswer::Unknown { .. }));
    assert!(matches!(pay(&V3Reply::NotSent(GatewayNote::new("CONNECT", "c")), &E), PayAnswer::NotSent(_)));
}

#[test]
fn an_order_number_already_used_lets_the_query_decide() {
    for code in ["ORDER_PAID", "OUT_TRADE_NO_USED"] {
        assert!(matches!(pay(&answer(400, error(code)), &E), PayAnswer::OrderNumberUsed(_)), "{code}");
    }
}

#[test]
fn query_states_map_as_in_v2_and_errors_keep_polling() {
    let state = |s: &str| {
        let mut b = paid_body();
        b["trade_state"] = json!(s);
        query(&answer(200, b), &E)
    };
    assert!(matches!(state("REFUND"), QueryAnswer::Paid(_)));
    assert!(matches!(state("USERPAYING"), QueryAnswer::Pending { user_paying: true, .. }));
    assert!(matches!(state("NOTPAY"), QueryAnswer::Pending { user_paying: false, .. }));
    assert!(matches!(state("CLOSED"), QueryAnswer::NotPaid(_)));
    assert!(matches!(state("REVOKED"), QueryAnswer::NotPaid(_)));
    assert!(matches!(state("PAYERROR"), QueryAnswer::PayError(_)));
    assert!(matches!(state("SOMETHING_NEW"), QueryAnswer::Pending { .. }));
    for (status, code) in [(404, "ORDER_NOT_EXIST"), (500, "SYSTEM_ERROR"), (401, "SIGN_ERROR")] {
        assert!(matches!(query(&answer(status, error(code)), &E), QueryAnswer::Pending { .. }), "{code}");
    }
}

#[test]
fn a_reverse_is_done_retried_or_refused() {
    assert_eq!(reverse(&answer(200, json!({"out_trade_no": "T1_A1_1"}))), RevokeAnswer::Revoked(RevokeEffect::Unstated));
    assert_eq!(reverse(&answer(204, Value::Null)), RevokeAnswer::Revoked(RevokeEffect::Unstated));
    for (status, code) in [(500, "SYSTEM_ERROR"), (403, "USERPAYING"), (429, "FREQUENCY_LIMITED"), (404, "ORDER_NOT_EXIST"), (403, "BANK_ERROR")] {
        assert!(matches!(reverse(&answer(status, error(code))), RevokeAnswer::Retry(_)), "{code}");
    }
    for (status, code) in [(400, "PARAM_ERROR"), (403, "REVERSE_EXPIRE"), (401, "SIGN_ERROR")] {
        assert!(matches!(reverse(&answer(status, error(code))), RevokeAnswer::Refused(_)), "{code}");
    }
    assert!(matches!(reverse(&V3Reply::Lost(GatewayNote::new("TIMEOUT", "t"))), RevokeAnswer::Retry(_)));
}
