//! The v3 signatures against vectors made by openssl
//! (`tests/fixtures/wechat_v3/README.md`): PKCS#1 v1.5 signing is
//! deterministic, so tillpay's signature of the same message must be
//! openssl's, byte for byte.

use super::*;

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wechat_v3")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn merchant() -> Merchant {
    Merchant {
        mchid: "1900009191".into(),
        serial_no: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C".into(),
        key: rsa::parse_private_key(&fixture("merchant_private_pkcs8.pem")).expect("key"),
    }
}

fn wechatpay_keys() -> VerifyKeys {
    let public = rsa::parse_public_key(&fixture("wechatpay_public_spki.pem")).expect("key");
    VerifyKeys::new(vec![("PUB_KEY_ID_0114232134912410000000000000".into(), public)])
}

const TS: i64 = 1554208460;
const NONCE: &str = "593BEC0C930BF1AFEB40B4A08C8FB242";

#[test]
fn the_request_message_is_the_documented_five_lines() {
    // The example of WeChat's signing guide: GET /v3/certificates.
    assert_eq!(
        request_message("GET", "/v3/certificates", TS, NONCE, ""),
        fixture("request_message.txt")
    );
}

#[test]
fn the_authorization_header_carries_openssls_signature() {
    let h = authorization(&merchant(), "GET", "/v3/certificates", TS, NONCE, "").expect("signs");
    let want = fixture("request_message.sig");
    assert_eq!(
        h,
        format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1900009191\",nonce_str=\"{NONCE}\",\
             signature=\"{}\",timestamp=\"{TS}\",serial_no=\"1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C\"",
            want.trim()
        )
    );
}

const TS_ANSWER: &str = "1554209980";
const NONCE_ANSWER: &str = "c5ac7061fccab6bf3e254dcf98995b8c";

fn answer() -> (String, String, String, String) {
    let text = fixture("answer_message.txt");
    let mut lines = text.lines();
    let ts = lines.next().unwrap_or("").to_string();
    let nonce = lines.next().unwrap_or("").to_string();
    let body = lines.next().unwrap_or("").to_string();
    (ts, nonce, body, fixture("answer_message.sig"))
}

/// The headers of the fixture answer, with `serial` and `sig`.
fn h<'a>(serial: &'a str, sig: &'a str) -> AnswerHeaders<'a> {
    AnswerHeaders {
        timestamp: Some(TS_ANSWER),
        nonce: Some(NONCE_ANSWER),
        signature: Some(sig),
        serial: Some(serial),
    }
}

#[test]
fn an_answer_signed_by_the_wechat_pay_key_verifies_and_nothing_else_does() {
    let (ts, nonce, body, sig) = answer();
    let now: i64 = ts.parse().expect("ts");
    let keys = wechatpay_keys();
    assert_eq!((ts.as_str(), nonce.as_str()), (TS_ANSWER, NONCE_ANSWER));
    let sig: &str = &sig;
    let id = "PUB_KEY_ID_0114232134912410000000000000";
    assert_eq!(verify_answer(&keys, &h(id, sig), body.as_bytes(), now), Ok(()));
    // One byte of the body changed.
    let mut changed = body.clone().into_bytes();
    changed[3] ^= 1;
    assert_eq!(
        verify_answer(&keys, &h(id, sig), &changed, now),
        Err(Unverified::BadSignature)
    );
    // A key the till does not have; WeChat's probe signature.
    assert!(matches!(
        verify_answer(&keys, &h("5157F09EFDC096DE15EBE81A47057A7232F1B8E1", sig), body.as_bytes(), now),
        Err(Unverified::UnknownKey(_))
    ));
    assert_eq!(
        verify_answer(&keys, &h(id, "WECHATPAY/SIGNTEST/abc"), body.as_bytes(), now),
        Err(Unverified::BadSignature)
    );
    // Five minutes of skew either way, not one second more.
    assert_eq!(verify_answer(&keys, &h(id, sig), body.as_bytes(), now + 300), Ok(()));
    assert_eq!(
        verify_answer(&keys, &h(id, sig), body.as_bytes(), now + 301),
        Err(Unverified::Stale { skew_secs: 301 })
    );
    assert_eq!(
        verify_answer(&keys, &h(id, sig), body.as_bytes(), now - 301),
        Err(Unverified::Stale { skew_secs: -301 })
    );
    // A missing header.
    let mut no_nonce = h(id, sig);
    no_nonce.nonce = None;
    assert_eq!(
        verify_answer(&keys, &no_nonce, body.as_bytes(), now),
        Err(Unverified::MissingHeader("Wechatpay-Nonce"))
    );
}

#[test]
fn the_merchant_key_does_not_verify_as_the_wechat_pay_key() {
    let (ts, nonce, body, _) = answer();
    let m = merchant();
    let forged = rsa::sign(&m.key, &String::from_utf8_lossy(&answer_message(&ts, &nonce, body.as_bytes())))
        .expect("signs");
    let h = AnswerHeaders {
        timestamp: Some(&ts),
        nonce: Some(&nonce),
        signature: Some(&forged),
        serial: Some("PUB_KEY_ID_0114232134912410000000000000"),
    };
    let now: i64 = ts.parse().expect("ts");
    assert_eq!(
        verify_answer(&wechatpay_keys(), &h, body.as_bytes(), now),
        Err(Unverified::BadSignature)
    );
}
