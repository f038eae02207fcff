//! The v3 dialect's own checks: who may call it, and that its answers are
//! signed the way WeChat documents. Cross-checked with the client's
//! signature code on purpose.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::gateway::wechat::v3::sign::{self as client_sign, AnswerHeaders, Merchant, VerifyKeys};

fn sim() -> WechatV3Sim {
    WechatV3Sim::demo(Arc::new(Ledger::new(Duration::from_millis(10)))).expect("keys")
}

fn signed(method: &str, path: &str, body: &str, key_pem: &str, timestamp: i64) -> SimRequest {
    let merchant = Merchant {
        mchid: keys::MCHID.into(),
        serial_no: keys::MERCHANT_SERIAL.into(),
        key: key_parse::parse_private_key(key_pem).expect("key"),
    };
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (path.to_string(), None),
    };
    let auth = client_sign::authorization(&merchant, method, path, timestamp, "n0nce", body)
        .expect("signs");
    SimRequest {
        method: method.into(),
        path: p,
        query: q,
        headers: vec![("authorization".into(), auth)],
        body: bytes::Bytes::from(body.to_string()),
    }
}

fn parts(r: SimResponse) -> (u16, Vec<(String, String)>, Vec<u8>) {
    match r {
        SimResponse::Reply {
            status,
            headers,
            body,
            ..
        } => (status, headers, body),
        other => panic!("{other:?}"),
    }
}

fn header<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn a_request_signed_with_another_key_or_clock_gets_an_unsigned_401() {
    let s = sim();
    let now = chrono::Utc::now().timestamp();
    let path = "/v3/pay/transactions/out-trade-no/T1_A1_1?mchid=1900000001";
    let wrong_key = signed("GET", path, "", keys::WECHATPAY_PRIVATE_KEY_PEM, now);
    let (status, headers, body) = parts(s.respond(&wrong_key));
    assert_eq!(status, 401);
    assert!(
        header(&headers, "Wechatpay-Signature").is_none(),
        "unsigned"
    );
    assert!(String::from_utf8_lossy(&body).contains("SIGN_ERROR"));
    let stale = signed("GET", path, "", keys::MERCHANT_PRIVATE_KEY_PEM, now - 600);
    assert_eq!(parts(s.respond(&stale)).0, 401);
    let good = signed("GET", path, "", keys::MERCHANT_PRIVATE_KEY_PEM, now);
    assert_eq!(
        parts(s.respond(&good)).0,
        404,
        "no such order, but a signed answer"
    );
}

#[test]
fn answers_are_signed_over_timestamp_nonce_and_body_with_the_named_key() {
    let s = sim();
    let now = chrono::Utc::now().timestamp();
    let path = "/v3/pay/transactions/out-trade-no/T1_A1_1?mchid=1900000001";
    let public = key_parse::parse_public_key(keys::WECHATPAY_PUBLIC_KEY_PEM).expect("key");
    for platform in [false, true] {
        s.sign_with_platform_certificate(platform);
        let req = signed("GET", path, "", keys::MERCHANT_PRIVATE_KEY_PEM, now);
        let (status, h, body) = parts(s.respond(&req));
        assert_eq!(status, 404);
        let id = if platform {
            keys::PLATFORM_SERIAL
        } else {
            keys::PUBLIC_KEY_ID
        };
        assert_eq!(header(&h, "Wechatpay-Serial"), Some(id));
        let keys = VerifyKeys::new(vec![(id.to_string(), public.clone())]);
        let headers = AnswerHeaders {
            timestamp: header(&h, "Wechatpay-Timestamp"),
            nonce: header(&h, "Wechatpay-Nonce"),
            signature: header(&h, "Wechatpay-Signature"),
            serial: header(&h, "Wechatpay-Serial"),
        };
        assert_eq!(
            client_sign::verify_answer(&keys, &headers, &body, now),
            Ok(())
        );
    }
}

#[test]
fn code_pay_requires_the_store_info_the_schema_requires() {
    let s = sim();
    let now = chrono::Utc::now().timestamp();
    let body = serde_json::json!({
        "appid": keys::APPID, "mchid": keys::MCHID, "description": "x",
        "out_trade_no": "T1_A1_1", "payer": {"auth_code": "134567890123456789"},
        "amount": {"total": 1}, "scene_info": {"device_id": "T1"},
    })
    .to_string();
    let req = signed(
        "POST",
        "/v3/pay/transactions/codepay",
        &body,
        keys::MERCHANT_PRIVATE_KEY_PEM,
        now,
    );
    let (status, _, answer) = parts(s.respond(&req));
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&answer).contains("store_info"));
    assert!(s.ledger().order("T1_A1_1").is_none());
}
