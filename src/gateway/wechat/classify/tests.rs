use super::*;
use crate::gateway::RefundAnswer;

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pay_fail(err_code: &str) -> Reply {
    Reply::Answer(fields(&[
        ("return_code", "SUCCESS"),
        ("return_msg", "OK"),
        ("result_code", "FAIL"),
        ("err_code", err_code),
        ("err_code_des", "描述"),
    ]))
}

/// Every trade_state of gateway-facts.md §W6 and payment-rules.md §9.
#[test]
fn every_trade_state_maps_to_its_policy_class() {
    let table = [
        ("SUCCESS", TradeStateClass::Paid),
        ("REFUND", TradeStateClass::Paid),
        ("NOTPAY", TradeStateClass::Pending),
        ("CLOSED", TradeStateClass::NotPaid),
        ("REVOKED", TradeStateClass::NotPaid),
        ("USERPAYING", TradeStateClass::UserPaying),
        ("PAYERROR", TradeStateClass::PayError),
        ("ACCEPT", TradeStateClass::Pending),
        ("SOMETHING_NEW", TradeStateClass::Pending),
    ];
    for (state, class) in table {
        assert_eq!(trade_state_class(state), class, "{state}");
        let reply = Reply::Answer(fields(&[
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("trade_state", state),
            ("trade_state_desc", "desc"),
            ("transaction_id", "4200000001"),
            ("time_end", "20260105093000"),
            ("total_fee", "1234"),
        ]));
        let note = GatewayNote::new(state, "desc");
        let expected = match class {
            TradeStateClass::Paid => QueryAnswer::Paid(PaidInfo {
                paid_by: Default::default(),
                transaction_id: "4200000001".into(),
                paid_at: Some("2026-01-05T09:30:00+08:00".into()),
                amount: Some(Fen(1234)),
            }),
            TradeStateClass::UserPaying => QueryAnswer::Pending {
                note,
                user_paying: true,
            },
            TradeStateClass::Pending => QueryAnswer::Pending {
                note,
                user_paying: false,
            },
            TradeStateClass::NotPaid => QueryAnswer::NotPaid(note),
            TradeStateClass::PayError => QueryAnswer::PayError(note),
        };
        assert_eq!(query(&reply), expected, "{state}");
    }
}

#[test]
fn a_paid_micropay_carries_its_facts() {
    let reply = Reply::Answer(fields(&[
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("transaction_id", "4200001234"),
        ("time_end", "20251231235959"),
        ("total_fee", "1"),
    ]));
    assert_eq!(
        pay(&reply),
        PayAnswer::Paid(PaidInfo {
            paid_by: Default::default(),
            transaction_id: "4200001234".into(),
            paid_at: Some("2025-12-31T23:59:59+08:00".into()),
            amount: Some(Fen(1)),
        })
    );
    // "Paid" without a transaction id is not believed.
    let reply = Reply::Answer(fields(&[
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
    ]));
    assert!(matches!(pay(&reply), PayAnswer::Unknown { .. }));
}

#[test]
fn transport_outcomes_follow_policy_4() {
    let note = GatewayNote::new("X", "y");
    assert_eq!(
        pay(&Reply::NotSent(note.clone())),
        PayAnswer::NotSent(note.clone())
    );
    assert!(matches!(
        pay(&Reply::Lost(note.clone())),
        PayAnswer::Unknown {
            user_paying: false,
            ..
        }
    ));
    assert!(matches!(
        query(&Reply::NotSent(note.clone())),
        QueryAnswer::Pending { .. }
    ));
    assert!(matches!(
        revoke(&Reply::Lost(note.clone())),
        RevokeAnswer::Retry(_)
    ));
    assert!(matches!(
        revoke(&Reply::NotSent(note.clone())),
        RevokeAnswer::Retry(_)
    ));
    assert!(matches!(
        refund(&Reply::NotSent(note.clone()), "T1_A1_1", "T1_R1"),
        RefundAnswer::Unknown(_)
    ));
    assert!(matches!(
        refund_query(&Reply::Lost(note), "T1_A1_1", "r1"),
        RefundAnswer::Unknown(_)
    ));
}

#[test]
fn return_code_fail_is_unknown_unless_it_names_a_request_error() {
    let fail = |msg: &str| Reply::Answer(fields(&[("return_code", "FAIL"), ("return_msg", msg)]));
    for msg in [
        "签名错误",
        "参数错误",
        "mch_id参数格式错误",
        "appid和mch_id不匹配",
        "受理机构必须传入sub_mch_id",
        "无效的trade_type",
        "XML格式错误",
        "sign_type参数格式错误",
        "缺少参数sign",
        "nonce_str参数错误",
    ] {
        assert!(
            matches!(
                pay(&fail(msg)),
                PayAnswer::Failed {
                    config_error: true,
                    ..
                }
            ),
            "{msg}"
        );
    }
    // Free text that only mentions a parameter or a signature is not a
    // documented request error: the request may have been processed.
    for msg in [
        "系统繁忙,请稍后再试",
        "",
        "timeout",
        "参数错误，请稍后再试",
        "签名错误?系统繁忙",
        "<html>bad param</html>",
    ] {
        assert!(
            matches!(pay(&fail(msg)), PayAnswer::Unknown { .. }),
            "{msg:?}"
        );
    }
    // A return_code WeChat never documented, e.g. SYSTEMERROR: unknown.
    let odd = Reply::Answer(fields(&[
        ("return_code", "SYSTEMERROR"),
        ("return_msg", "签名"),
    ]));
    assert!(matches!(pay(&odd), PayAnswer::Unknown { .. }));
    assert!(matches!(
        query(&fail("签名错误")),
        QueryAnswer::Pending { .. }
    ));
    assert!(matches!(
        revoke(&fail("签名错误")),
        RevokeAnswer::Refused(_)
    ));
    assert!(matches!(revoke(&fail("系统繁忙")), RevokeAnswer::Retry(_)));
}

#[test]
fn query_errors_keep_polling() {
    for code in ["ORDERNOTEXIST", "SYSTEMERROR", "PARAM_ERROR"] {
        let reply = Reply::Answer(fields(&[
            ("return_code", "SUCCESS"),
            ("result_code", "FAIL"),
            ("err_code", code),
        ]));
        assert!(
            matches!(
                query(&reply),
                QueryAnswer::Pending {
                    user_paying: false,
                    ..
                }
            ),
            "{code}"
        );
    }
}

#[test]
fn reverse_answers_follow_recall_and_err_code() {
    let rev = |result: &str, code: &str, recall: &str| {
        Reply::Answer(fields(&[
            ("return_code", "SUCCESS"),
            ("result_code", result),
            ("err_code", code),
            ("recall", recall),
        ]))
    };
    assert_eq!(
        revoke(&rev("SUCCESS", "", "N")),
        RevokeAnswer::Revoked(RevokeEffect::Unstated)
    );
    for (code, recall) in [
        ("SYSTEMERROR", "Y"),
        ("SYSTEMERROR", "N"),
        ("USERPAYING", "N"),
        ("SOMETHING", "Y"),
        ("SOMETHING_UNDOCUMENTED", "N"),
    ] {
        assert!(
            matches!(revoke(&rev("FAIL", code, recall)), RevokeAnswer::Retry(_)),
            "{code} {recall}"
        );
    }
    for code in [
        "REVERSE_EXPIRE",
        "INVALID_TRANSACTIONID",
        "PARAM_ERROR",
        "REQUIRE_POST_METHOD",
        "SIGNERROR",
        "INVALID_REQUEST",
        "TRADE_ERROR",
    ] {
        assert!(
            matches!(revoke(&rev("FAIL", code, "N")), RevokeAnswer::Refused(_)),
            "{code}"
        );
    }
}

#[test]
fn bill_answers_tell_csv_from_xml_errors() {
    let csv = "交易时间,公众账号ID\r\n`2026-01-05 10:00:00,`wx1\r\n"
        .as_bytes()
        .to_vec();
    assert_eq!(bill(Ok(csv.clone())), BillAnswer::File(csv));
    let err = |msg: &str, code: &str| {
        format!(
            "  <xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[{msg}]]></return_msg>\
             <error_code><![CDATA[{code}]]></error_code></xml>"
        )
        .into_bytes()
    };
    assert!(matches!(
        bill(Ok(err("No Bill Exist", "20002"))),
        BillAnswer::NoBill(_)
    ));
    assert!(matches!(
        bill(Ok(err("NO Bill Exist", ""))),
        BillAnswer::NoBill(_)
    ));
    assert!(matches!(
        bill(Ok(err("Bill Creating", "20003"))),
        BillAnswer::NotYet(_)
    ));
    assert!(matches!(
        bill(Ok(err("invalid bill_date", "20001"))),
        BillAnswer::Failed(_)
    ));
    assert!(matches!(
        bill(Ok(b"<xml><broken".to_vec())),
        BillAnswer::Failed(_)
    ));
    assert!(matches!(bill(Ok(b"  \n".to_vec())), BillAnswer::Failed(_)));
    assert!(matches!(
        bill(Err(GatewayNote::new("NO_ANSWER", "timeout"))),
        BillAnswer::Failed(_)
    ));
}

#[test]
fn time_end_converts_to_beijing_rfc3339() {
    assert_eq!(
        time_end_rfc3339("20260105093000").as_deref(),
        Some("2026-01-05T09:30:00+08:00")
    );
    assert_eq!(time_end_rfc3339("2026-01-05"), None);
    assert_eq!(time_end_rfc3339(""), None);
}

mod after_the_pay;
mod micropay_table;
