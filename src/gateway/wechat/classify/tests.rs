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

/// The official micropay error table (pay.weixin.qq.com micropay.php
/// chapter 9_10; gateway-facts.md §W4) as the document gives it: 错误码,
/// 支付状态, 原因, 解决方案. The expected answers are derived from these
/// columns below, not written down a second time.
const OFFICIAL_TABLE: &[(&str, &str, &str, &str)] = &[
    (
        "SYSTEMERROR",
        "支付结果未知",
        "系统超时",
        "请立即调用被扫订单结果查询API，查询当前订单状态，并根据订单的状态决定下一步的操作",
    ),
    (
        "BANKERROR",
        "支付结果未知",
        "银行端超时",
        "请立即调用被扫订单结果查询API，查询当前订单的不同状态，决定下一步的操作",
    ),
    (
        "USERPAYING",
        "支付结果未知",
        "该笔交易因为业务规则要求，需要用户输入支付密码",
        "等待5秒，然后调用被扫订单结果查询API，查询当前订单的不同状态，决定下一步的操作",
    ),
    (
        "PARAM_ERROR",
        "支付确认失败",
        "请求参数未按指引进行填写",
        "请根据接口返回的详细信息检查您的程序",
    ),
    (
        "ORDERPAID",
        "支付确认失败",
        "订单号重复",
        "请确认该订单号是否重复支付，如果是新单，请使用新订单号提交",
    ),
    (
        "NOAUTH",
        "支付确认失败",
        "商户没有开通被扫支付权限",
        "请开通商户号权限",
    ),
    (
        "AUTHCODEEXPIRE",
        "支付确认失败",
        "用户的条码已经过期",
        "请收银员提示用户，请用户在微信上刷新条码，然后请收银员重新扫码",
    ),
    (
        "NOTENOUGH",
        "支付确认失败",
        "用户的零钱余额不足",
        "请收银员提示用户更换当前支付的卡，然后请收银员重新扫码",
    ),
    (
        "NOTSUPORTCARD",
        "支付确认失败",
        "用户使用卡种不支持当前支付形式",
        "请用户重新选择卡种",
    ),
    (
        "ORDERCLOSED",
        "支付确认失败",
        "该订单已关",
        "商户订单号异常，请重新下单支付",
    ),
    (
        "ORDERREVERSED",
        "支付确认失败",
        "当前订单已经被撤销",
        "当前订单状态为“订单已撤销”，请提示用户重新支付",
    ),
    (
        "AUTH_CODE_ERROR",
        "支付确认失败",
        "请求参数未按指引进行填写",
        "每个二维码仅限使用一次，请刷新再试",
    ),
    (
        "AUTH_CODE_INVALID",
        "支付确认失败",
        "收银员扫描的不是微信支付的条码",
        "请扫描微信支付被扫条码/二维码",
    ),
    (
        "XML_FORMAT_ERROR",
        "支付确认失败",
        "XML格式错误",
        "请检查XML参数格式是否正确",
    ),
    (
        "REQUIRE_POST_METHOD",
        "支付确认失败",
        "未使用post传递参数",
        "请检查请求参数是否通过post方法提交",
    ),
    (
        "SIGNERROR",
        "支付确认失败",
        "参数签名结果不正确",
        "请检查签名参数和方法是否都符合签名算法要求",
    ),
    (
        "LACK_PARAMS",
        "支付确认失败",
        "缺少必要的请求参数",
        "请检查参数是否齐全",
    ),
    (
        "NOT_UTF8",
        "支付确认失败",
        "未使用指定编码格式",
        "请使用UTF-8编码格式",
    ),
    (
        "BUYER_MISMATCH",
        "支付确认失败",
        "暂不支持同一笔订单更换支付方",
        "请确认支付方是否相同",
    ),
    (
        "APPID_NOT_EXIST",
        "支付确认失败",
        "参数中缺少APPID",
        "请检查APPID是否正确",
    ),
    (
        "MCHID_NOT_EXIST",
        "支付确认失败",
        "参数中缺少MCHID",
        "请检查MCHID是否正确",
    ),
    (
        "APPID_MCHID_NOT_MATCH",
        "支付确认失败",
        "appid和mch_id不匹配",
        "请确认appid和mch_id是否匹配",
    ),
    (
        "OUT_TRADE_NO_USED",
        "支付确认失败",
        "同一笔交易不能多次提交",
        "请核实商户订单号是否重复提交",
    ),
    (
        "INVALID_REQUEST",
        "支付确认失败",
        "商户系统异常导致，商户权限异常、重复请求支付、证书错误、频率限制等",
        "请确认商户系统是否正常，是否具有相应支付权限，确认证书是否正确，控制频率",
    ),
    (
        "TRADE_ERROR",
        "支付确认失败",
        "业务错误导致交易失败、用户账号异常、风控、规则限制等",
        "请确认帐号是否存在异常",
    ),
];

/// What tillpay must do with a row of the official table, read off its
/// columns: "支付结果未知" is unknown (the password screen when the reason
/// is the password); a failure whose reason is that this order number was
/// already submitted names an earlier trade, so only a query can tell
/// (payment-rules.md §5); a failure whose remedy speaks to the customer or
/// the cashier (refresh, rescan, another card, pay again) is a decline; any
/// other documented failure is for the merchant to fix: a configuration
/// error.
fn expected_class(status: &str, reason: &str, remedy: &str) -> PayClass {
    if status == "支付结果未知" {
        return if reason.contains("输入支付密码") {
            PayClass::UserPaying
        } else {
            PayClass::Unknown
        };
    }
    if reason.contains("订单号重复") || reason.contains("不能多次提交") {
        return PayClass::Unknown;
    }
    let for_the_customer = [
        "用户",
        "收银员",
        "刷新",
        "扫描",
        "支付方",
        "重新下单",
        "帐号",
    ];
    if for_the_customer.iter().any(|k| remedy.contains(k)) {
        PayClass::Declined
    } else {
        PayClass::ConfigError
    }
}

#[test]
fn every_micropay_err_code_is_taken_as_the_official_table_says() {
    for (code, status, reason, remedy) in OFFICIAL_TABLE {
        let class = expected_class(status, reason, remedy);
        assert_eq!(
            pay_err_class(code),
            class,
            "{code}: {status} / {reason} / {remedy}"
        );
        let answer = pay(&pay_fail(code));
        let note = GatewayNote::new(*code, "描述");
        let expected = match class {
            PayClass::UserPaying => PayAnswer::Unknown {
                note,
                user_paying: true,
            },
            PayClass::Unknown => PayAnswer::Unknown {
                note,
                user_paying: false,
            },
            PayClass::Declined => PayAnswer::Failed {
                note,
                config_error: false,
            },
            PayClass::ConfigError => PayAnswer::Failed {
                note,
                config_error: true,
            },
        };
        assert_eq!(answer, expected, "{code}");
    }
    // A code the table does not list: nobody may call it a failure
    // without a query (payment-rules.md §6).
    assert_eq!(pay_err_class("SOMETHING_NEW"), PayClass::Unknown);
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
