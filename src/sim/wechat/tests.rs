use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::Local;

use super::*;
use crate::domain::{Fen, Provider};
// The requests are built, and the answers checked, with the client's own
// signing and XML: two implementations written apart must agree.
use crate::gateway::wechat::sign::{self, sign_type_name, SignType};
use crate::gateway::wechat::xml;
use crate::sim::behaviour::Behaviour;

const APPID: &str = "wx2421b1c4370ec43b";
const MCH: &str = "10000100";
const KEY: &str = "0123456789abcdefghijklmnopqrstuv";

fn sim() -> WechatSim {
    WechatSim::new(
        Arc::new(Ledger::new(Duration::from_millis(10))),
        APPID,
        MCH,
        KEY,
    )
    .with_same_day_bills()
}

fn post(path: &str, body: impl Into<Bytes>) -> SimRequest {
    SimRequest {
        method: "POST".into(),
        path: path.into(),
        query: None,
        headers: Vec::new(),
        body: body.into(),
    }
}

fn signed(path: &str, pairs: &[(&str, &str)], key: &str, t: SignType) -> SimRequest {
    let mut p: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    p.insert("appid".into(), APPID.into());
    p.insert("mch_id".into(), MCH.into());
    p.insert("nonce_str".into(), sign::nonce());
    if t == SignType::HmacSha256 {
        p.insert("sign_type".into(), sign_type_name(t).into());
    }
    let s = sign::sign(&p, key, t);
    p.insert("sign".into(), s);
    post(path, xml::to_xml(&p))
}

fn answer(r: SimResponse) -> Fields {
    match r {
        SimResponse::Reply { status, body, .. } => {
            assert_eq!(status, 200);
            xml::parse(&body).expect("the simulator answers XML")
        }
        SimResponse::Late { then, .. } => answer(*then),
        SimResponse::Hangup => panic!("hung up"),
    }
}

fn micropay(code: &str, out_trade_no: &str, t: SignType) -> SimRequest {
    signed(
        "/pay/micropay",
        &[
            ("body", "咖啡"),
            ("out_trade_no", out_trade_no),
            ("total_fee", "1234"),
            ("spbill_create_ip", "192.168.1.20"),
            ("device_info", "S001-T03"),
            ("auth_code", code),
        ],
        KEY,
        t,
    )
}

#[test]
fn answers_are_signed_with_the_requests_sign_type() {
    let s = sim();
    for (i, t) in [SignType::Md5, SignType::HmacSha256]
        .into_iter()
        .enumerate()
    {
        let code = Behaviour::PaysAtOnce.code(Provider::Wechat, i as u64);
        let a = answer(s.respond(&micropay(&code, &format!("o{i}"), t)));
        assert_eq!(a["return_code"], "SUCCESS");
        assert_eq!(a["result_code"], "SUCCESS");
        assert!(sign::verify(&a, KEY, t), "{t:?}: {a:?}");
        assert_eq!(a["total_fee"], "1234");
        assert_eq!(a["device_info"], "S001-T03");
        assert_eq!(a["trade_type"], "MICROPAY");
        assert_eq!(a["time_end"].len(), 14);
        assert!(a["transaction_id"].starts_with("4200"));
        assert!(!a.values().any(|v| v == &code), "the code is echoed");
    }
}

#[test]
fn bad_requests_get_the_unsigned_fail_wechat_sends() {
    let s = sim();
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 7);
    let wrong_key = signed(
        "/pay/micropay",
        &[("body", "x"), ("auth_code", &code)],
        "ffffffffffffffffffffffffffffffff",
        SignType::Md5,
    );
    let a = answer(s.respond(&wrong_key));
    assert_eq!(a["return_code"], "FAIL");
    assert_eq!(a["return_msg"], "签名错误");
    assert!(!a.contains_key("sign"));

    // Signed as HMAC but claiming MD5 (no sign_type): does not verify.
    let mut p: BTreeMap<String, String> = [("appid", APPID), ("mch_id", MCH), ("nonce_str", "abc")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hmac = sign::sign(&p, KEY, SignType::HmacSha256);
    p.insert("sign".into(), hmac);
    let a = answer(s.respond(&post("/pay/orderquery", xml::to_xml(&p))));
    assert_eq!(a["return_msg"], "签名错误");

    let a = answer(s.respond(&post("/pay/micropay", "<xml><a>")));
    assert_eq!(a["return_code"], "FAIL");
    assert_eq!(a["return_msg"], "XML格式错误");

    let mut get = micropay(&code, "g1", SignType::Md5);
    get.method = "GET".into();
    assert_eq!(answer(s.respond(&get))["return_code"], "FAIL");
    assert!(matches!(
        s.respond(&post("/pay/unifiedorder", "")),
        SimResponse::Reply { status: 404, .. }
    ));
    assert!(
        s.ledger().orders().is_empty(),
        "a refused request created an order"
    );
}

#[test]
fn micropay_refuses_trade_type_and_missing_fields() {
    let s = sim();
    let code = Behaviour::PaysAtOnce.code(Provider::Wechat, 8);
    let with_type = signed(
        "/pay/micropay",
        &[
            ("body", "x"),
            ("out_trade_no", "t1"),
            ("total_fee", "1"),
            ("spbill_create_ip", "127.0.0.1"),
            ("auth_code", &code),
            ("trade_type", "MICROPAY"),
        ],
        KEY,
        SignType::Md5,
    );
    let a = answer(s.respond(&with_type));
    assert_eq!(a["result_code"], "FAIL");
    assert_eq!(a["err_code"], "PARAM_ERROR");
    assert!(a["err_code_des"].contains("trade_type"));
    assert!(sign::verify(&a, KEY, SignType::Md5));

    let missing = signed(
        "/pay/micropay",
        &[("body", "x"), ("out_trade_no", "t2"), ("total_fee", "1")],
        KEY,
        SignType::Md5,
    );
    let a = answer(s.respond(&missing));
    assert_eq!(a["err_code"], "LACK_PARAMS");
    assert!(s.ledger().orders().is_empty());
}

#[test]
fn behaviours_read_as_wechat_err_codes() {
    let s = sim();
    let cases = [
        (Behaviour::NeverConfirms, "USERPAYING"),
        (Behaviour::InsufficientFunds, "NOTENOUGH"),
        (Behaviour::ExpiredCode, "AUTHCODEEXPIRE"),
        (Behaviour::SystemErrorPaid, "SYSTEMERROR"),
        (Behaviour::SystemErrorUnpaid, "SYSTEMERROR"),
    ];
    for (i, (b, err)) in cases.into_iter().enumerate() {
        let code = b.code(Provider::Wechat, 100 + i as u64);
        let a = answer(s.respond(&micropay(&code, &format!("b{i}"), SignType::Md5)));
        assert_eq!(a["result_code"], "FAIL", "{b:?}");
        assert_eq!(a["err_code"], err, "{b:?}");
        assert!(sign::verify(&a, KEY, SignType::Md5));
    }
    let lost = Behaviour::AnswerLost.code(Provider::Wechat, 200);
    assert!(matches!(
        s.respond(&micropay(&lost, "lost", SignType::Md5)),
        SimResponse::Hangup
    ));
    // The same code again under a new number: single use.
    let a = answer(s.respond(&micropay(&lost, "lost2", SignType::Md5)));
    assert_eq!(a["err_code"], "AUTH_CODE_ERROR");
    // The same request again: the order is paid.
    let a = answer(s.respond(&micropay(&lost, "lost", SignType::Md5)));
    assert_eq!(a["err_code"], "ORDERPAID");
}

// One order through every endpoint in turn: the steps depend on each other.
#[test]
fn query_reverse_and_refund_speak_wechat() {
    let s = sim();
    let t = SignType::HmacSha256;
    let q =
        |no: &str| answer(s.respond(&signed("/pay/orderquery", &[("out_trade_no", no)], KEY, t)));

    let a = q("nobody");
    assert_eq!(a["err_code"], "ORDERNOTEXIST");

    let open = Behaviour::NeverConfirms.code(Provider::Wechat, 300);
    s.respond(&micropay(&open, "open", t));
    assert_eq!(q("open")["trade_state"], "USERPAYING");
    let r = answer(s.respond(&signed(
        "/secapi/pay/reverse",
        &[("out_trade_no", "open")],
        KEY,
        t,
    )));
    assert_eq!(r["result_code"], "SUCCESS");
    assert_eq!(r["recall"], "N");
    assert!(sign::verify(&r, KEY, t));
    assert_eq!(q("open")["trade_state"], "REVOKED");

    let retry = Behaviour::RevokeRetries(1).code(Provider::Wechat, 301);
    s.respond(&micropay(&retry, "retry", t));
    let r = answer(s.respond(&signed(
        "/secapi/pay/reverse",
        &[("out_trade_no", "retry")],
        KEY,
        t,
    )));
    assert_eq!(
        (r["err_code"].as_str(), r["recall"].as_str()),
        ("SYSTEMERROR", "Y")
    );
    let r = answer(s.respond(&signed(
        "/secapi/pay/reverse",
        &[("out_trade_no", "retry")],
        KEY,
        t,
    )));
    assert_eq!(r["result_code"], "SUCCESS");

    let paid = Behaviour::PaysAtOnce.code(Provider::Wechat, 302);
    s.respond(&micropay(&paid, "paid", t));
    let a = q("paid");
    assert_eq!(a["trade_state"], "SUCCESS");
    assert!(sign::verify(&a, KEY, t));
    let refund = |no: &str, fee: &str| {
        answer(s.respond(&signed(
            "/secapi/pay/refund",
            &[
                ("out_trade_no", "paid"),
                ("out_refund_no", no),
                ("total_fee", "1234"),
                ("refund_fee", fee),
            ],
            KEY,
            t,
        )))
    };
    let a = refund("r1", "234");
    assert_eq!(a["result_code"], "SUCCESS");
    assert_eq!(a["refund_fee"], "234");
    assert_eq!(refund("r1", "234")["result_code"], "SUCCESS", "idempotent");
    assert_eq!(refund("r1", "235")["err_code"], "REFUND_FEE_MISMATCH");
    // A second refund of the order within a minute is refused for now.
    assert_eq!(refund("r2", "1001")["err_code"], "FREQUENCY_LIMITED");
    assert_eq!(q("paid")["trade_state"], "REFUND");
    let rq = answer(s.respond(&signed(
        "/pay/refundquery",
        &[("out_refund_no", "r1")],
        KEY,
        t,
    )));
    assert_eq!(rq["refund_count"], "1");
    assert_eq!(rq["out_refund_no_0"], "r1");
    // Accepted; the money lands a little later, as WeChat's refunds do.
    assert_eq!(rq["refund_status_0"], "PROCESSING");
    assert_eq!(s.ledger().money_kept("paid"), 1234, "not back yet");
    assert!(sign::verify(&rq, KEY, t));
    std::thread::sleep(Duration::from_millis(10) * (super::endpoints::REFUND_LANDS_AFTER + 1));
    let rq = answer(s.respond(&signed(
        "/pay/refundquery",
        &[("out_refund_no", "r1")],
        KEY,
        t,
    )));
    assert_eq!(rq["refund_status_0"], "SUCCESS");
    assert!(rq.contains_key("refund_success_time_0"));
    // A minute on, the second refund is looked at: more than is left.
    std::thread::sleep(Duration::from_millis(10) * 61);
    assert_eq!(refund("r2", "1001")["err_code"], "ERROR");
    let rq = answer(s.respond(&signed(
        "/pay/refundquery",
        &[("out_refund_no", "r9")],
        KEY,
        t,
    )));
    assert_eq!(rq["err_code"], "REFUNDNOTEXIST");
    assert_eq!(s.ledger().money_kept("paid"), 1000);
}

fn csv_lines(s: &str) -> Vec<Vec<String>> {
    s.split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

// One bill, checked field by field against the documented layout.
#[test]
fn the_bill_is_wechats_all_format() {
    let s = sim();
    let t = SignType::Md5;
    let ledger = s.ledger().clone();
    // Paid and partly refunded; paid and revoked; never paid.
    s.respond(&micropay(
        &Behaviour::PaysAtOnce.code(Provider::Wechat, 400),
        "p1",
        t,
    ));
    ledger.refund("p1", "R1", Fen(34));
    // A second refund still being processed when the bill is made.
    ledger.refund_landing("p1", "R2", Fen(1000), 1000);
    s.respond(&micropay(
        &Behaviour::PaysAtOnce.code(Provider::Wechat, 401),
        "p2",
        t,
    ));
    ledger.revoke(Provider::Wechat, "p2", None);
    s.respond(&micropay(
        &Behaviour::NeverConfirms.code(Provider::Wechat, 402),
        "p3",
        t,
    ));
    ledger.revoke(Provider::Wechat, "p3", None);

    let today = Local::now().date_naive();
    let text = s.bill_csv(today);
    let lines = csv_lines(&text);
    assert_eq!(lines[0].join(","), DETAIL_HEADER);
    let header: Vec<&str> = DETAIL_HEADER.split(',').collect();
    assert_eq!(header.len(), 27);
    let col = |name: &str| header.iter().position(|h| *h == name).expect("column");
    let details = &lines[1..lines.len() - 2];
    assert_eq!(details.len(), 5, "{text}");
    for row in details {
        assert_eq!(row.len(), 27, "{row:?}");
        assert!(row.iter().all(|f| f.starts_with('`')), "{row:?}");
        assert_eq!(row[col("设备号")], "`S001-T03");
        assert_eq!(row[col("公众账号ID")], format!("`{APPID}"));
        assert_ne!(
            row[col("商户订单号")],
            "`p3",
            "a never-paid order is in the bill"
        );
    }
    let of = |no: &str, status: &str| {
        details
            .iter()
            .find(|r| {
                r[col("商户订单号")] == format!("`{no}")
                    && r[col("交易状态")] == format!("`{status}")
            })
            .unwrap_or_else(|| panic!("no {status} row for {no}: {text}"))
    };
    let payment = of("p1", "SUCCESS");
    assert_eq!(payment[col("应结订单金额")], "`12.34");
    // A payment row's refund numbers are `0, and its fee positive.
    assert_eq!(payment[col("微信退款单号")], "`0");
    assert_eq!(payment[col("商户退款单号")], "`0");
    assert_eq!(payment[col("手续费")], "`0.07000");
    let refund_of = |no: &str| {
        details
            .iter()
            .find(|r| r[col("商户退款单号")] == format!("`{no}"))
            .unwrap_or_else(|| panic!("no refund row {no}: {text}"))
    };
    let refund = refund_of("R1");
    assert_eq!(refund[col("交易状态")], "`REFUND");
    assert_eq!(refund[col("退款金额")], "`0.34");
    assert_eq!(refund[col("退款状态")], "`SUCCESS");
    // The row of a refund still on its way says so, and its fee goes back.
    let processing = refund_of("R2");
    assert_eq!(processing[col("退款状态")], "`PROCESSING");
    assert_eq!(processing[col("手续费")], "`-0.06000");
    let revoked = of("p2", "REVOKED");
    assert_eq!(revoked[col("退款金额")], "`12.34");
    assert_eq!(revoked[col("商户退款单号")], "`");

    assert_eq!(lines[lines.len() - 2].join(","), SUMMARY_HEADER);
    let summary = &lines[lines.len() - 1];
    assert_eq!(summary[0], "`5");
    assert_eq!(summary[1], "`24.68");
    assert_eq!(summary[2], "`22.68");
    // 手续费总金额: 0.07 on each payment, less what the refunds give back
    // (0.07 with the reversed p2, 0.06 with R2, nothing on 0.34).
    assert_eq!(summary[4], "`0.01000");

    // The endpoint serves it, and "No Bill Exist" for an empty day.
    let ask = |d: &str| {
        s.respond(&signed(
            "/pay/downloadbill",
            &[("bill_date", d), ("bill_type", "ALL")],
            KEY,
            t,
        ))
    };
    match ask(&today.format("%Y%m%d").to_string()) {
        SimResponse::Reply { body, .. } => assert_eq!(String::from_utf8(body).ok(), Some(text)),
        other => panic!("{other:?}"),
    }
    let a = answer(ask("20010101"));
    assert_eq!(a["return_code"], "FAIL");
    assert_eq!(a["return_msg"], "No Bill Exist");
    assert_eq!(answer(ask("2001-01-01"))["return_msg"], "invalid bill_date");
}
