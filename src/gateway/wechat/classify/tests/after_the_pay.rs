//! Refund, refund-query, post-reverse and wrong-order answers.

use super::*;

#[test]
fn refund_answers() {
    let r = |result: &str, code: &str| {
        Reply::Answer(fields(&[
            ("return_code", "SUCCESS"),
            ("result_code", result),
            ("err_code", code),
            ("refund_id", "50000001"),
            ("out_trade_no", "T1_A1_1"),
            ("out_refund_no", "T1_R1"),
        ]))
    };
    let refund = |reply: &Reply| super::refund(reply, "T1_A1_1", "T1_R1");
    assert!(matches!(
        refund(&r("SUCCESS", "")),
        RefundAnswer::Processing(_)
    ));
    // An accepted refund of another trade or refund number settles nothing.
    for (otn, orn) in [("T1_B9_1", "T1_R1"), ("T1_A1_1", "T1_R9")] {
        let other = Reply::Answer(fields(&[
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("out_trade_no", otn),
            ("out_refund_no", orn),
        ]));
        assert!(
            matches!(refund(&other), RefundAnswer::Unknown(_)),
            "{otn} {orn}"
        );
    }
    for code in ["SYSTEMERROR", "BIZERR_NEED_RETRY", "UNHEARD_OF"] {
        assert!(
            matches!(refund(&r("FAIL", code)), RefundAnswer::Unknown(_)),
            "{code}"
        );
    }
    // Rate limits ("retry after 1 minute"): the same refund, later.
    for code in ["INVALID_REQ_TOO_MUCH", "FREQUENCY_LIMITED"] {
        assert!(
            matches!(refund(&r("FAIL", code)), RefundAnswer::Later(_)),
            "{code}"
        );
    }
    for code in [
        "TRADE_OVERDUE",
        "ERROR",
        "USER_ACCOUNT_ABNORMAL",
        "NOTENOUGH",
        "INVALID_TRANSACTIONID",
        "PARAM_ERROR",
        "APPID_NOT_EXIST",
        "MCHID_NOT_EXIST",
        "ORDERNOTEXIST",
        "REQUIRE_POST_METHOD",
        "SIGNERROR",
        "XML_FORMAT_ERROR",
        "REFUND_FEE_MISMATCH",
    ] {
        assert!(
            matches!(refund(&r("FAIL", code)), RefundAnswer::Failed(_)),
            "{code}"
        );
    }
}

#[test]
fn refund_query_reads_the_status_of_the_refund_asked_for() {
    let q = |status: &str| {
        Reply::Answer(fields(&[
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("out_trade_no", "T1_A1_1"),
            ("refund_count", "2"),
            ("out_refund_no_0", "other"),
            ("refund_status_0", "REFUNDCLOSE"),
            ("out_refund_no_1", "r1"),
            ("refund_id_1", "5000R1"),
            ("refund_status_1", status),
        ]))
    };
    let refund_query = |reply: &Reply, no: &str| super::refund_query(reply, "T1_A1_1", no);
    assert_eq!(
        refund_query(&q("SUCCESS"), "r1"),
        RefundAnswer::Refunded {
            refund_id: Some("5000R1".into())
        }
    );
    assert!(matches!(
        refund_query(&q("PROCESSING"), "r1"),
        RefundAnswer::Processing(_)
    ));
    assert!(matches!(
        refund_query(&q("REFUNDCLOSE"), "r1"),
        RefundAnswer::Failed(_)
    ));
    assert!(matches!(
        refund_query(&q("CHANGE"), "r1"),
        RefundAnswer::Failed(_)
    ));
    assert!(matches!(
        refund_query(&q("NEW"), "r1"),
        RefundAnswer::Unknown(_)
    ));
    assert!(matches!(
        refund_query(&q("SUCCESS"), "r9"),
        RefundAnswer::Unknown(_)
    ));
    let missing = Reply::Answer(fields(&[
        ("return_code", "SUCCESS"),
        ("result_code", "FAIL"),
        ("err_code", "REFUNDNOTEXIST"),
    ]));
    assert!(matches!(
        refund_query(&missing, "r1"),
        RefundAnswer::NotFound(_)
    ));
    // Listed under another trade: not this refund's answer.
    assert!(matches!(
        super::refund_query(&q("SUCCESS"), "T1_B9_1", "r1"),
        RefundAnswer::Unknown(_)
    ));
}

#[test]
fn the_query_after_a_reverse_tells_closed_from_refunded() {
    let q = |state: &str, time_end: Option<&str>| {
        let mut f = vec![
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("trade_state", state),
        ];
        if let Some(t) = time_end {
            f.push(("time_end", t));
            f.push(("transaction_id", "4200000001"));
        }
        Reply::Answer(fields(&f))
    };
    // Paid, then reversed: the money went back.
    assert_eq!(
        revoke_effect(&q("REVOKED", Some("20261201101500"))),
        RevokeEffect::Refunded
    );
    // Never paid: closed, no money moved.
    assert_eq!(revoke_effect(&q("REVOKED", None)), RevokeEffect::Closed);
    // Anything the gateway does not say plainly stays unstated.
    assert_eq!(
        revoke_effect(&q("SUCCESS", Some("20261201101500"))),
        RevokeEffect::Unstated
    );
    assert_eq!(
        revoke_effect(&Reply::Lost(GatewayNote::new("TIMEOUT", "t"))),
        RevokeEffect::Unstated
    );
}

#[test]
fn a_signed_answer_about_another_order_is_never_taken_as_this_ones() {
    let paid = |otn: &str| {
        Reply::Answer(fields(&[
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("trade_state", "SUCCESS"),
            ("transaction_id", "4200000001"),
            ("out_trade_no", otn),
            ("total_fee", "100"),
        ]))
    };
    assert!(matches!(
        query(&about_order(paid("T1_A1_1"), "T1_A1_1")),
        QueryAnswer::Paid(_)
    ));
    assert!(matches!(
        query(&about_order(paid("T1_B7_1"), "T1_A1_1")),
        QueryAnswer::Pending { .. }
    ));
    assert!(matches!(
        pay(&about_order(paid("T1_B7_1"), "T1_A1_1")),
        PayAnswer::Unknown { .. }
    ));
}

#[test]
fn a_refund_query_refused_as_a_request_error_leaves_the_refund_unknown() {
    let fail = Reply::Answer(fields(&[
        ("return_code", "FAIL"),
        ("return_msg", "签名错误"),
    ]));
    // The refund call itself is refused for good ...
    assert!(matches!(
        super::refund(&fail, "T1_A1_1", "T1_R1"),
        RefundAnswer::Failed(_)
    ));
    // ... but a refused query says nothing about a refund that may be back.
    assert!(matches!(
        super::refund_query(&fail, "T1_A1_1", "T1_R1"),
        RefundAnswer::Unknown(_)
    ));
}
