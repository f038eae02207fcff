//! The `unified.trade.*` table, row by row.

use super::*;

fn answer(pairs: &[(&str, &str)]) -> Reply {
    Reply::Answer {
        fields: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        verified: true,
    }
}

const OTN: &str = "T1_A1_1";

fn paid_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("status", "0"),
        ("result_code", "0"),
        ("pay_result", "0"),
        ("out_trade_no", OTN),
        ("total_fee", "1234"),
        ("transaction_id", "7551000001201612010000001"),
        ("time_end", "20261201093000"),
        ("trade_type", "pay.unionpay.micropay"),
    ]
}

#[test]
fn a_verified_success_for_this_order_and_amount_is_paid() {
    match pay(&answer(&paid_fields()), OTN, Fen(1234)) {
        PayAnswer::Paid(info) => {
            assert_eq!(info.amount, Some(Fen(1234)));
            assert_eq!(info.paid_at.as_deref(), Some("2026-12-01T09:30:00+08:00"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_success_that_does_not_add_up_is_unknown() {
    let with = |k: &'static str, v: &'static str| {
        let mut f = paid_fields();
        f.retain(|(key, _)| *key != k);
        f.push((k, v));
        answer(&f)
    };
    for (k, v) in [
        ("pay_result", "1"),
        ("total_fee", "1"),
        ("out_trade_no", "T1_A2_1"),
        ("transaction_id", ""),
    ] {
        assert!(
            matches!(pay(&with(k, v), OTN, Fen(1234)), PayAnswer::Unknown { .. }),
            "{k}={v}"
        );
    }
    let Reply::Answer { fields, .. } = answer(&paid_fields()) else {
        unreachable!()
    };
    let unsigned = Reply::Answer {
        fields,
        verified: false,
    };
    assert!(matches!(
        pay(&unsigned, OTN, Fen(1234)),
        PayAnswer::Unknown { .. }
    ));
}

#[test]
fn status_is_communication_and_never_settles_a_sale() {
    let refused = answer(&[("status", "400"), ("message", "签名错误")]);
    match pay(&refused, OTN, Fen(1)) {
        PayAnswer::Unknown { note, .. } => assert_eq!(note.code, "STATUS_400"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(query(&refused, OTN), QueryAnswer::Pending { .. }));
    assert!(matches!(reverse(&refused), RevokeAnswer::Retry(_)));
}

#[test]
fn business_failures_need_need_query_n_to_be_final() {
    let fail = |code: &'static str, need_query: &'static str| {
        answer(&[
            ("status", "0"),
            ("result_code", "1"),
            ("err_code", code),
            ("err_msg", "m"),
            ("need_query", need_query),
        ])
    };
    assert!(matches!(
        pay(&fail("NOTENOUGH", "N"), OTN, Fen(1)),
        PayAnswer::Failed {
            config_error: false,
            ..
        }
    ));
    assert!(matches!(
        pay(&fail("SIGNERROR", "N"), OTN, Fen(1)),
        PayAnswer::Failed {
            config_error: true,
            ..
        }
    ));
    assert!(matches!(
        pay(&fail("NOTENOUGH", "Y"), OTN, Fen(1)),
        PayAnswer::Unknown { .. }
    ));
    assert!(
        matches!(
            pay(&fail("NOTENOUGH", ""), OTN, Fen(1)),
            PayAnswer::Unknown { .. }
        ),
        "without need_query the query decides"
    );
    for code in ["SYSTEMERROR", "BANKERROR", "ACQ.SYSTEM_ERROR", "20000"] {
        assert!(
            matches!(
                pay(&fail(code, "N"), OTN, Fen(1)),
                PayAnswer::Unknown {
                    user_paying: false,
                    ..
                }
            ),
            "{code}"
        );
    }
    for code in ["USERPAYING", "10003"] {
        assert!(
            matches!(
                pay(&fail(code, "N"), OTN, Fen(1)),
                PayAnswer::Unknown {
                    user_paying: true,
                    ..
                }
            ),
            "{code}"
        );
    }
    for code in ["ORDERPAID", "OUT_TRADE_NO_USED", "ACQ.TRADE_HAS_SUCCESS"] {
        assert!(
            matches!(
                pay(&fail(code, "N"), OTN, Fen(1)),
                PayAnswer::OrderNumberUsed(_)
            ),
            "{code}"
        );
    }
    let lost = Reply::Lost(GatewayNote::new("TIMEOUT", "t"));
    assert!(matches!(pay(&lost, OTN, Fen(1)), PayAnswer::Unknown { .. }));
    let not_sent = Reply::NotSent(GatewayNote::new("NOT_SENT", "refused"));
    assert!(matches!(pay(&not_sent, OTN, Fen(1)), PayAnswer::NotSent(_)));
}

#[test]
fn each_trade_state_means_what_the_query_page_says() {
    let q = |state: &'static str| {
        let mut f = paid_fields();
        f.push(("trade_state", state));
        query(&answer(&f), OTN)
    };
    assert!(matches!(q("SUCCESS"), QueryAnswer::Paid(_)));
    assert!(
        matches!(q("REFUND"), QueryAnswer::Paid(_)),
        "refunded later, paid first"
    );
    assert!(matches!(
        q("USERPAYING"),
        QueryAnswer::Pending {
            user_paying: true,
            ..
        }
    ));
    assert!(matches!(
        q("NOTPAY"),
        QueryAnswer::Pending {
            user_paying: false,
            ..
        }
    ));
    for s in ["CLOSED", "REVOKED", "REVERSE"] {
        assert!(matches!(q(s), QueryAnswer::NotPaid(_)), "{s}");
    }
    assert!(matches!(q("PAYERROR"), QueryAnswer::PayError(_)));
    assert!(matches!(q("SOMETHING_NEW"), QueryAnswer::Pending { .. }));
    let missing = answer(&[
        ("status", "0"),
        ("result_code", "1"),
        ("err_code", "ORDERNOTEXIST"),
    ]);
    assert!(matches!(query(&missing, OTN), QueryAnswer::Pending { .. }));
    let mut other = paid_fields();
    other.retain(|(k, _)| *k != "out_trade_no");
    other.push(("out_trade_no", "T9_A9_9"));
    other.push(("trade_state", "SUCCESS"));
    assert!(matches!(
        query(&answer(&other), OTN),
        QueryAnswer::Pending { .. }
    ));
}

#[test]
fn a_reverse_is_retried_unless_it_landed_or_is_refused_for_good() {
    let rev = |pairs: &[(&str, &str)]| {
        let mut f = vec![("status", "0")];
        f.extend_from_slice(pairs);
        reverse(&answer(&f))
    };
    assert_eq!(
        rev(&[("result_code", "0")]),
        RevokeAnswer::Revoked(RevokeEffect::Unstated)
    );
    assert!(matches!(
        rev(&[("result_code", "1"), ("err_code", "SYSTEMERROR")]),
        RevokeAnswer::Retry(_)
    ));
    assert!(matches!(
        rev(&[
            ("result_code", "1"),
            ("err_code", "REVERSE_EXPIRE"),
            ("recall", "Y")
        ]),
        RevokeAnswer::Retry(_)
    ));
    assert!(matches!(
        rev(&[
            ("result_code", "1"),
            ("err_code", "REVERSE_EXPIRE"),
            ("recall", "N")
        ]),
        RevokeAnswer::Refused(_)
    ));
    assert!(matches!(
        rev(&[("result_code", "1"), ("err_code", "UNHEARD_OF")]),
        RevokeAnswer::Retry(_)
    ));
}
