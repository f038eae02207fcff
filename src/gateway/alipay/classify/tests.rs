//! The classification table: every code and sub_code of gateway-facts.md
//! §A4-§A8 with the answer payment-rules.md asks for, as one table.

use super::*;

const OTN: &str = "T1_A100_1";

fn reply(fields: &str) -> Reply {
    let raw = format!("{{\"msg\":\"m\",{fields}}}");
    Reply::from_node(&raw).unwrap_or_else(|| panic!("bad test json {raw}"))
}

fn pay(a: PayAnswer) -> String {
    match a {
        PayAnswer::Paid(_) => "paid".into(),
        PayAnswer::Failed {
            config_error: true, ..
        } => "failed_config".into(),
        PayAnswer::Failed { .. } => "failed".into(),
        PayAnswer::Unknown {
            user_paying: true, ..
        } => "unknown_paying".into(),
        PayAnswer::Unknown { .. } => "unknown".into(),
        PayAnswer::NotSent(_) => "not_sent".into(),
        PayAnswer::OrderNumberUsed(_) => "unknown_number_used".into(),
    }
}

fn query(a: QueryAnswer) -> String {
    match a {
        QueryAnswer::Paid(_) => "paid".into(),
        QueryAnswer::Pending {
            user_paying: true, ..
        } => "pending_paying".into(),
        QueryAnswer::Pending { .. } => "pending".into(),
        QueryAnswer::NotPaid(_) => "not_paid".into(),
        QueryAnswer::PayError(_) => "pay_error".into(),
    }
}

fn cancel(a: RevokeAnswer) -> String {
    match a {
        RevokeAnswer::Revoked(RevokeEffect::Closed) => "revoked_close".into(),
        RevokeAnswer::Revoked(RevokeEffect::Refunded) => "revoked_refund".into(),
        RevokeAnswer::Revoked(RevokeEffect::Unstated) => "revoked_unstated".into(),
        RevokeAnswer::Retry(_) => "retry".into(),
        RevokeAnswer::Refused(_) => "refused".into(),
        RevokeAnswer::NotFound(_) => "not_found".into(),
    }
}

fn refund(a: RefundAnswer) -> String {
    match a {
        RefundAnswer::Refunded { .. } => "refunded".into(),
        RefundAnswer::Processing(_) => "processing".into(),
        RefundAnswer::Failed(_) => "failed".into(),
        RefundAnswer::Unknown(_) => "unknown".into(),
        RefundAnswer::Later(_) => "later".into(),
        RefundAnswer::NotFound(_) => "not_found".into(),
    }
}

fn bill(a: Result<String, BillAnswer>) -> String {
    match a {
        Ok(url) => format!("url {url}"),
        Err(BillAnswer::NotYet(_)) => "not_yet".into(),
        Err(BillAnswer::NoBill(_)) => "no_bill".into(),
        Err(BillAnswer::Failed(_)) => "failed".into(),
        Err(BillAnswer::File(_)) => "file".into(),
    }
}

const PAID: &str = r#""trade_no":"2024010222001","out_trade_no":"T1_A100_1","total_amount":"12.34","gmt_payment":"2024-01-02 03:04:05""#;

// A table, one row per documented code: long by nature.
#[test]
fn classification_table() {
    let biz = |sub: &str| format!(r#""code":"40004","sub_code":"{sub}","sub_msg":"s""#);
    #[rustfmt::skip]
    let table: Vec<(&str, String, &str)> = vec![
        // ---- gateway-facts.md §A4 alipay.trade.pay: gateway codes
        ("pay", format!(r#""code":"10000",{PAID}"#), "paid"),
        ("pay", r#""code":"10000","trade_no":"x","total_amount":"1.001""#.into(), "unknown"),
        ("pay", r#""code":"10000","trade_no":"x","total_amount":"abc""#.into(), "unknown"),
        ("pay", r#""code":"10000","trade_no":"x","total_amount":"0.1""#.into(), "unknown"),
        ("pay", r#""code":"10000","trade_no":"x","total_amount":12.34"#.into(), "unknown"),
        ("pay", r#""code":"10000","total_amount":"1.00""#.into(), "unknown"),
        ("pay", r#""code":"10000","trade_no":"x","out_trade_no":"other""#.into(), "unknown"),
        ("pay", r#""code":"10003","trade_no":"x""#.into(), "unknown_paying"),
        ("pay", r#""code":"20000","sub_code":"isp.unknow-error""#.into(), "unknown"),
        ("pay", r#""code":"20000","sub_code":"aop.ACQ.SYSTEM_ERROR""#.into(), "unknown"),
        ("pay", r#""code":"20000""#.into(), "unknown"),
        ("pay", r#""code":"20001","sub_code":"aop.invalid-auth-token""#.into(), "failed_config"),
        ("pay", r#""code":"40001","sub_code":"isv.missing-app-id""#.into(), "failed_config"),
        ("pay", r#""code":"40002","sub_code":"isv.invalid-signature""#.into(), "failed_config"),
        ("pay", r#""code":"40006","sub_code":"isv.insufficient-isv-permissions""#.into(), "failed_config"),
        ("pay", r#""code":"99999""#.into(), "unknown"),
        ("pay", r#""sub_msg":"no code at all""#.into(), "unknown"),
        // ACQ.SYSTEM_ERROR under ANY code is unknown.
        ("pay", biz("ACQ.SYSTEM_ERROR"), "unknown"),
        ("pay", biz("aop.ACQ.SYSTEM_ERROR"), "unknown"),
        ("pay", r#""code":"40002","sub_code":"ACQ.SYSTEM_ERROR""#.into(), "unknown"),
        ("pay", r#""code":"10000","sub_code":"ACQ.SYSTEM_ERROR""#.into(), "unknown"),
        // ---- gateway-facts.md §A4 40004 sub_codes
        ("pay", biz("ACQ.TRADE_HAS_SUCCESS"), "unknown_number_used"),
        ("pay", biz("ACQ.PAYMENT_AUTH_CODE_INVALID"), "failed"),
        ("pay", biz("ACQ.BUYER_BALANCE_NOT_ENOUGH"), "failed"),
        ("pay", biz("ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH"), "failed"),
        ("pay", biz("ACQ.ERROR_BALANCE_PAYMENT_DISABLE"), "failed"),
        ("pay", biz("ACQ.PULL_MOBILE_CASHIER_FAIL"), "failed"),
        ("pay", biz("ACQ.MOBILE_PAYMENT_SWITCH_OFF"), "failed"),
        ("pay", biz("ACQ.PAYMENT_FAIL"), "failed"),
        ("pay", biz("ACQ.PAYMENT_REQUEST_HAS_RISK"), "failed"),
        ("pay", biz("ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE"), "failed"),
        ("pay", biz("ACQ.TRADE_HAS_CLOSE"), "failed"),
        ("pay", biz("ACQ.TRADE_BUYER_NOT_MATCH"), "failed"),
        ("pay", biz("ACQ.BUYER_SELLER_EQUAL"), "failed"),
        ("pay", biz("ACQ.BUYER_ENABLE_STATUS_FORBID"), "failed"),
        ("pay", biz("ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR"), "failed"),
        ("pay", biz("ACQ.BEYOND_PAY_RESTRICTION"), "failed"),
        ("pay", biz("ACQ.BEYOND_PER_RECEIPT_RESTRICTION"), "failed"),
        ("pay", biz("ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT"), "failed"),
        ("pay", biz("ACQ.CONTEXT_INCONSISTENT"), "failed_config"),
        ("pay", biz("ACQ.SELLER_BEEN_BLOCKED"), "failed_config"),
        ("pay", biz("ACQ.INVALID_PARAMETER"), "failed_config"),
        ("pay", biz("ACQ.ACCESS_FORBIDDEN"), "failed_config"),
        ("pay", biz("ACQ.EXIST_FORBIDDEN_WORD"), "failed_config"),
        ("pay", biz("ACQ.PARTNER_ERROR"), "failed_config"),
        ("pay", biz("ACQ.TOTAL_FEE_EXCEED"), "failed_config"),
        ("pay", biz("ACQ.SUB_MERCHANT_CREATE_FAIL"), "failed_config"),
        ("pay", biz("ACQ.SUB_MERCHANT_TYPE_INVALID"), "failed_config"),
        ("pay", biz("isv.invalid-signature"), "failed_config"),
        // An undocumented 40004 sub_code: the trade may exist, query decides.
        ("pay", biz("ACQ.SOMETHING_NEW"), "unknown"),
        // ---- gateway-facts.md §A5 alipay.trade.query
        ("query", format!(r#""code":"10000","trade_status":"TRADE_SUCCESS",{}"#, PAID.replace("gmt_payment", "send_pay_date")), "paid"),
        ("query", r#""code":"10000","trade_status":"TRADE_FINISHED","trade_no":"x","total_amount":"1.00""#.into(), "paid"),
        ("query", r#""code":"10000","trade_status":"TRADE_SUCCESS","trade_no":"x","total_amount":"1.0""#.into(), "pending"),
        ("query", r#""code":"10000","trade_status":"TRADE_SUCCESS","total_amount":"1.00""#.into(), "pending"),
        ("query", r#""code":"10000","trade_status":"TRADE_SUCCESS","trade_no":"x","out_trade_no":"zz""#.into(), "pending"),
        ("query", r#""code":"10000","trade_status":"WAIT_BUYER_PAY","trade_no":"x""#.into(), "pending_paying"),
        ("query", r#""code":"10000","trade_status":"TRADE_CLOSED","trade_no":"x""#.into(), "not_paid"),
        ("query", r#""code":"10000","trade_status":"SOMETHING_NEW""#.into(), "pending"),
        ("query", r#""code":"10000""#.into(), "pending"),
        ("query", biz("ACQ.TRADE_NOT_EXIST"), "pending"),
        ("query", biz("ACQ.SYSTEM_ERROR"), "pending"),
        ("query", biz("ACQ.INVALID_PARAMETER"), "pending"),
        ("query", r#""code":"20000","sub_code":"isp.unknow-error""#.into(), "pending"),
        ("query", r#""code":"40002","sub_code":"isv.invalid-signature""#.into(), "pending"),
        // ---- gateway-facts.md §A6 alipay.trade.cancel
        ("cancel", r#""code":"10000","action":"close","retry_flag":"N""#.into(), "revoked_close"),
        ("cancel", r#""code":"10000","action":"refund","retry_flag":"N""#.into(), "revoked_refund"),
        ("cancel", r#""code":"10000","retry_flag":"N""#.into(), "revoked_unstated"),
        ("cancel", r#""code":"10000","action":"close""#.into(), "revoked_close"),
        ("cancel", r#""code":"10000","retry_flag":"Y""#.into(), "retry"),
        ("cancel", format!(r#"{},"retry_flag":"Y""#, biz("ACQ.SYSTEM_ERROR")), "retry"),
        ("cancel", biz("ACQ.SYSTEM_ERROR"), "retry"),
        ("cancel", format!(r#"{},"retry_flag":"Y""#, biz("ACQ.TRADE_STATUS_ERROR")), "retry"),
        ("cancel", biz("ACQ.TRADE_NOT_EXIST"), "not_found"),
        ("cancel", r#""code":"20000","sub_code":"isp.unknow-error""#.into(), "retry"),
        ("cancel", format!(r#"{},"retry_flag":"N""#, biz("ACQ.REASON_TRADE_BEEN_FREEZEN")), "refused"),
        ("cancel", format!(r#"{},"retry_flag":"N""#, biz("ACQ.TRADE_NOT_EXIST")), "not_found"),
        ("cancel", r#""code":"40002","sub_code":"isv.invalid-signature""#.into(), "refused"),
        ("cancel", r#""code":"99999""#.into(), "retry"),
        // ---- gateway-facts.md §A7 alipay.trade.refund
        ("refund", r#""code":"10000","fund_change":"Y","refund_fee":"1.00""#.into(), "refunded"),
        ("refund", r#""code":"10000","fund_change":"N","refund_fee":"1.00""#.into(), "unknown"),
        ("refund", r#""code":"10000","fund_change":"Y","out_trade_no":"zz""#.into(), "unknown"),
        ("refund", r#""code":"20000""#.into(), "unknown"),
        ("refund", biz("ACQ.SYSTEM_ERROR"), "unknown"),
        ("refund", biz("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"), "failed"),
        ("refund", biz("ACQ.TRADE_NOT_EXIST"), "failed"),
        ("refund", biz("ACQ.TRADE_STATUS_ERROR"), "failed"),
        ("refund", biz("ACQ.SELLER_BALANCE_NOT_ENOUGH"), "failed"),
        ("refund", biz("ACQ.SOMETHING_NEW"), "unknown"),
        ("refund", r#""code":"40002","sub_code":"isv.invalid-signature""#.into(), "failed"),
        ("refund", r#""code":"99999""#.into(), "unknown"),
        // ---- refund query
        ("refund_query", r#""code":"10000","out_request_no":"R1","refund_amount":"1.00","refund_status":"REFUND_SUCCESS""#.into(), "refunded"),
        ("refund_query", r#""code":"10000","out_request_no":"R1","refund_amount":"1.00""#.into(), "refunded"),
        ("refund_query", r#""code":"10000","out_request_no":"R1","refund_status":"REFUND_PROCESSING""#.into(), "processing"),
        ("refund_query", r#""code":"10000","out_request_no":"R1","refund_amount":"1.0""#.into(), "unknown"),
        ("refund_query", r#""code":"10000","out_request_no":"R2","refund_amount":"1.00""#.into(), "unknown"),
        ("refund_query", r#""code":"10000","trade_no":"x""#.into(), "not_found"),
        ("refund_query", biz("ACQ.TRADE_NOT_EXIST"), "not_found"),
        ("refund_query", biz("ACQ.SYSTEM_ERROR"), "unknown"),
        ("refund_query", r#""code":"20000""#.into(), "unknown"),
        // ---- gateway-facts.md §A8 bill download URL (recent day / older day)
        ("bill_old", r#""code":"10000","bill_download_url":"http://h/b.zip""#.into(), "url http://h/b.zip"),
        ("bill_old", r#""code":"10000""#.into(), "failed"),
        ("bill_old", biz("isp.bill_not_exist"), "no_bill"),
        ("bill_recent", biz("isp.bill_not_exist"), "no_bill"),
        ("bill_recent", r#""code":"40002","sub_code":"isv.invalid-arguments""#.into(), "not_yet"),
        ("bill_old", r#""code":"40002","sub_code":"isv.invalid-arguments""#.into(), "failed"),
        ("bill_recent", r#""code":"20000""#.into(), "failed"),
    ];
    let mut wrong = Vec::new();
    for (call, fields, want) in &table {
        let r = reply(fields);
        let got = match *call {
            "pay" => pay(classify_pay(&r, OTN)),
            "query" => query(classify_query(&r, OTN)),
            "cancel" => cancel(classify_cancel(&r)),
            "refund" => refund(classify_refund(&r, OTN)),
            "refund_query" => refund(classify_refund_query(&r, OTN, "R1")),
            "bill_old" => bill(classify_bill(&r, false)),
            "bill_recent" => bill(classify_bill(&r, true)),
            other => panic!("no call {other}"),
        };
        if got != *want {
            wrong.push(format!("{call} {{{fields}}}: got {got}, want {want}"));
        }
    }
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
}

#[test]
fn paid_answers_carry_trade_no_china_time_and_exact_amount() {
    let r = reply(&format!(r#""code":"10000",{PAID}"#));
    assert_eq!(
        classify_pay(&r, OTN),
        PayAnswer::Paid(PaidInfo {
            paid_by: Default::default(),
            transaction_id: "2024010222001".into(),
            paid_at: Some("2024-01-02T03:04:05+08:00".into()),
            amount: Some(Fen(1234)),
        })
    );
    let failed = classify_pay(
        &reply(
            r#""code":"40004","sub_code":"ACQ.BUYER_BALANCE_NOT_ENOUGH","sub_msg":"买家余额不足""#,
        ),
        OTN,
    );
    assert_eq!(
        failed,
        PayAnswer::Failed {
            note: GatewayNote::new("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足"),
            config_error: false
        }
    );
}

#[test]
fn amounts_convert_exactly_at_the_edges() {
    for (fen, yuan) in [
        (1, "0.01"),
        (10, "0.10"),
        (100, "1.00"),
        (99_999_999, "999999.99"),
    ] {
        assert_eq!(Fen(fen).to_yuan(), yuan);
        assert_eq!(Fen::parse_yuan(yuan, true), Ok(Fen(fen)));
        let r = reply(&format!(
            r#""code":"10000","trade_no":"x","total_amount":"{yuan}""#
        ));
        assert!(
            matches!(classify_pay(&r, OTN), PayAnswer::Paid(PaidInfo { amount: Some(Fen(f)), .. }) if f == fen)
        );
    }
    assert_eq!(Fen::parse_yuan("1.00", true), Ok(Fen(100)));
    for bad in ["0.1", "1.001", "abc", "1", "-1.00", "1e2"] {
        assert!(Fen::parse_yuan(bad, true).is_err(), "{bad}");
    }
}

#[test]
fn china_time_is_utc_plus_eight_whatever_the_machine_zone() {
    assert_eq!(
        china_time_to_rfc3339("2024-12-31 23:59:59").as_deref(),
        Some("2024-12-31T23:59:59+08:00")
    );
    assert_eq!(china_time_to_rfc3339("2024-12-31T23:59:59"), None);
    assert_eq!(china_time_to_rfc3339(""), None);
}
