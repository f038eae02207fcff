//! The v3 requests as the code pay, query and reverse pages give them.

use serde_json::json;

use super::*;
use crate::domain::{AuthCode, Fen, Provider};

fn direct() -> Account {
    Account::Direct {
        appid: "wxd678efh567hg6787".into(),
        mchid: "1230000109".into(),
    }
}

fn partner() -> Account {
    Account::Partner {
        sp_appid: "wx8888888888888888".into(),
        sp_mchid: "1900000100".into(),
        sub_mchid: "1900000109".into(),
        sub_appid: None,
    }
}

fn pay(subject: &str) -> PayRequest {
    PayRequest {
        operator_id: None,
        out_trade_no: "T1_A1_1".into(),
        order_no: "A".into(),
        seq: 1,
        amount: Fen(1234),
        auth_code: AuthCode::new("134567890123456789", Provider::Wechat),
        subject: subject.into(),
    }
}

#[test]
fn a_direct_code_pay_carries_the_code_the_amount_in_fen_and_the_till_as_device() {
    let r = codepay(&direct(), &pay("2 coffees"), "S001T03", Some("S001"));
    assert_eq!((r.method, r.path.as_str()), ("POST", "/v3/pay/transactions/codepay"));
    assert_eq!(
        r.body,
        Some(json!({
            "appid": "wxd678efh567hg6787", "mchid": "1230000109",
            "description": "2 coffees", "out_trade_no": "T1_A1_1",
            "payer": {"auth_code": "134567890123456789"},
            "amount": {"total": 1234, "currency": "CNY"},
            "scene_info": {"device_id": "S001T03", "store_info": {"out_id": "S001"}}
        }))
    );
    assert!(!format!("{r:?}").contains("134567890123456789"), "never in a log");
    let r = codepay(&direct(), &pay(""), "S001T03", None);
    let body = r.body.unwrap_or_default();
    assert_eq!(body["description"], "tillpay", "WeChat requires one");
    assert_eq!(
        body["scene_info"]["store_info"]["out_id"], "S001T03",
        "store_info is required: the till stands for the store"
    );
}

#[test]
fn a_partner_code_pay_names_the_provider_and_the_shop() {
    let r = codepay(&partner(), &pay("x"), "T", None);
    assert_eq!(r.path, "/v3/pay/partner/transactions/codepay");
    let body = r.body.unwrap_or_default();
    assert_eq!(
        (body["sp_mchid"].as_str(), body["sub_mchid"].as_str(), body.get("mchid")),
        (Some("1900000100"), Some("1900000109"), None)
    );
}

#[test]
fn a_long_description_is_cut_to_127_bytes_on_a_character() {
    let r = codepay(&direct(), &pay(&"咖".repeat(60)), "T", None);
    let d = r.body.unwrap_or_default()["description"].as_str().unwrap_or("").to_string();
    assert!(d.len() <= 127 && d.len() > 120, "{}", d.len());
    assert!(d.chars().all(|c| c == '咖'));
}

#[test]
fn query_and_reverse_paths_and_bodies() {
    let q = query(&direct(), "T1_A1_1").expect("query");
    assert_eq!((q.method, q.path.as_str()), ("GET", "/v3/pay/transactions/out-trade-no/T1_A1_1?mchid=1230000109"));
    assert_eq!(q.body_text(), "");
    let q = query(&partner(), "T1_A1_1").expect("query");
    assert_eq!(
        q.path,
        "/v3/pay/partner/transactions/out-trade-no/T1_A1_1?sp_mchid=1900000100&sub_mchid=1900000109"
    );
    let r = reverse(&direct(), "T1_A1_1").expect("reverse");
    assert_eq!(r.path, "/v3/pay/transactions/out-trade-no/T1_A1_1/reverse");
    assert_eq!(r.body, Some(json!({"appid": "wxd678efh567hg6787", "mchid": "1230000109"})));
    // Nothing that could change what a path means.
    assert!(query(&direct(), "T1/../x").is_err());
    assert!(reverse(&direct(), "a?b").is_err());
}

#[test]
fn refunds_and_bills_carry_the_amounts_in_fen_and_a_partners_shop() {
    let req = RefundRequest {
        operator_id: None,
        out_trade_no: "T1_A1_1".into(),
        transaction_id: None,
        refund_no: "T1-R1".into(),
        total_amount: Fen(1234),
        refund_amount: Fen(34),
        reason: Some(format!("  {}  ", "退".repeat(90))),
    };
    let r = refund(&direct(), &req);
    assert_eq!((r.method, r.path.as_str()), ("POST", "/v3/refund/domestic/refunds"));
    let body = r.body.clone().unwrap_or_default();
    assert_eq!(body["amount"], json!({"refund": 34, "total": 1234, "currency": "CNY"}));
    assert_eq!(body["out_refund_no"], "T1-R1");
    assert_eq!(body["reason"].as_str().map(|s| s.chars().count()), Some(80));
    assert!(body.get("sub_mchid").is_none());
    assert_eq!(refund(&partner(), &req).body.unwrap_or_default()["sub_mchid"], "1900000109");
    assert_eq!(
        refund_query(&partner(), "T1-R1").map(|r| r.path),
        Ok("/v3/refund/domestic/refunds/T1-R1?sub_mchid=1900000109".to_string())
    );
    assert!(refund_query(&direct(), "a/b").is_err(), "never a second path segment");
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default();
    assert_eq!(
        trade_bill(&direct(), day).map(|r| (r.method, r.path)),
        Ok(("GET", "/v3/bill/tradebill?bill_date=2026-11-30&bill_type=ALL".to_string()))
    );
}
