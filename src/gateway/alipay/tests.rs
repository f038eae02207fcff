//! Response verification over the raw node text.

use super::classify::Reply;
use super::{keys, sign, verify_answer};
use crate::sim::alipay::keys::{SIM_PRIVATE_KEY_PEM, SIM_PUBLIC_KEY_PEM};

fn signed_body(node_name: &str, node: &str) -> String {
    let key = keys::parse_private_key(SIM_PRIVATE_KEY_PEM).expect("sim key");
    let sig = sign::sign(&key, node).expect("signs");
    // Alipay escapes '/' in the sign; a JSON-aware reader must undo it.
    let sig = sig.replace('/', "\\/");
    format!("{{\"{node_name}\":{node},\"sign\":\"{sig}\"}}")
}

fn public() -> Vec<u8> {
    keys::parse_public_key(SIM_PUBLIC_KEY_PEM).expect("sim public key")
}

const TRICKY: &str = r#"{"code":"10000","msg":"Success","subject":"杯 {大} \"特\" },\"sign\":\"x\"","n":[{"a":"]"}],"total_amount":"1.00"}"#;

#[test]
fn a_node_with_braces_and_escaped_quotes_in_strings_verifies() {
    let body = signed_body("alipay_trade_query_response", TRICKY);
    let reply: Reply = verify_answer(&public(), "alipay.trade.query", &body).expect("verifies");
    assert_eq!(reply.code, "10000");
    assert_eq!(
        reply.str("subject"),
        Some("杯 {大} \"特\" },\"sign\":\"x\"")
    );
}

#[test]
fn one_changed_byte_fails_verification() {
    let body = signed_body("alipay_trade_query_response", TRICKY);
    let at = body.find("1.00").expect("amount in body");
    let mut bytes = body.into_bytes();
    bytes[at] = b'9';
    let tampered = String::from_utf8(bytes).expect("utf-8");
    let err = verify_answer(&public(), "alipay.trade.query", &tampered).expect_err("must fail");
    assert_eq!(err.code, "UNVERIFIED");
    // Whitespace added outside the node does not matter; inside it does.
    let body = signed_body("alipay_trade_query_response", TRICKY);
    let spaced = body.replacen('{', "{ \n", 1);
    assert!(verify_answer(&public(), "alipay.trade.query", &spaced).is_ok());
    let inside = body.replacen("\"code\"", " \"code\"", 1);
    assert!(verify_answer(&public(), "alipay.trade.query", &inside).is_err());
}

#[test]
fn unsigned_wrong_key_and_wrong_node_are_unverified() {
    let node = r#"{"code":"10000","msg":"Success","trade_no":"1"}"#;
    let unsigned = format!("{{\"alipay_trade_pay_response\":{node}}}");
    let err = verify_answer(&public(), "alipay.trade.pay", &unsigned).expect_err("unsigned");
    assert!(err.message.contains("not signed"), "{}", err.message);
    let empty_sign = format!("{{\"alipay_trade_pay_response\":{node},\"sign\":\"\"}}");
    assert!(verify_answer(&public(), "alipay.trade.pay", &empty_sign).is_err());
    // Signed by the app key instead of Alipay's: must not verify.
    let app = keys::parse_private_key(crate::sim::alipay::keys::DEMO_APP_PRIVATE_KEY_PEM)
        .expect("app key");
    let sig = sign::sign(&app, node).expect("signs");
    let wrong = format!("{{\"alipay_trade_pay_response\":{node},\"sign\":\"{sig}\"}}");
    assert!(verify_answer(&public(), "alipay.trade.pay", &wrong).is_err());
    // A node for another method is not this call's answer.
    let other = signed_body("alipay_trade_query_response", node);
    assert!(verify_answer(&public(), "alipay.trade.pay", &other).is_err());
    // error_response is used when the method's node is absent.
    let err_body = signed_body(
        "error_response",
        r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-method"}"#,
    );
    let r = verify_answer(&public(), "alipay.trade.pay", &err_body).expect("verifies");
    assert_eq!(r.sub_code, "isv.invalid-method");
    assert!(verify_answer(
        &public(),
        "alipay.trade.pay",
        "<html>502 Bad Gateway</html>"
    )
    .is_err());
}
