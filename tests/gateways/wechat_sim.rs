//! The WeChat client against the simulator over loopback HTTP: every
//! customer behaviour driven the way payment-rules.md says the engine does (pay,
//! poll, revoke), with the final status checked against the simulator's
//! ledger of money.

use crate::wechat_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tillpay::domain::{Fen, Provider};
use tillpay::gateway::wechat::WechatGateway;
use tillpay::gateway::wechat::WechatSignType;
use tillpay::gateway::{
    BillAnswer, Gateway, PayAnswer, PayRequest, QueryAnswer, RefundAnswer, RefundRequest,
    RevokeAnswer, RevokeEffect,
};
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::ledger::Ledger;
use wechat_support::*;

const TIME_UNIT: Duration = Duration::from_millis(50);
const POLL: Duration = Duration::from_millis(25);
const PAY_TIMEOUT: Duration = Duration::from_millis(1500);
const REVOKE_INTERVAL: Duration = Duration::from_millis(10);
const REVOKE_MAX: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    Paid(String),
    Failed(String),
    Revoked,
    NeedsAttention,
}

/// What the engine does with one attempt, per payment-rules.md §4-12, recording the
/// classified answers it saw.
pub async fn drive(gw: &dyn Gateway, req: &PayRequest, seen: &mut Vec<String>) -> Final {
    let started = Instant::now();
    let pay = gw.pay(req).await;
    seen.push(format!("pay:{pay:?}"));
    match pay {
        PayAnswer::Paid(info) => return Final::Paid(info.transaction_id),
        PayAnswer::Failed { note, .. } => return Final::Failed(note.code),
        PayAnswer::NotSent(note) => return Final::Failed(note.code),
        PayAnswer::Unknown { .. } | PayAnswer::OrderNumberUsed(_) => {}
    }
    loop {
        let q = gw.query(&req.out_trade_no).await;
        seen.push(format!("query:{q:?}"));
        match q {
            QueryAnswer::Paid(info) => return Final::Paid(info.transaction_id),
            QueryAnswer::NotPaid(note) => return Final::Failed(note.code),
            QueryAnswer::PayError(_) => break,
            QueryAnswer::Pending { .. } => {}
        }
        if started.elapsed() >= PAY_TIMEOUT {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    for _ in 0..REVOKE_MAX {
        let r = gw.revoke(&req.out_trade_no).await;
        seen.push(format!("revoke:{r:?}"));
        match r {
            RevokeAnswer::Revoked(_) => return Final::Revoked,
            RevokeAnswer::Refused(_) | RevokeAnswer::NotFound(_) => return Final::NeedsAttention,
            RevokeAnswer::Retry(_) => tokio::time::sleep(REVOKE_INTERVAL).await,
        }
    }
    Final::NeedsAttention
}

/// A WeChat client of the simulator at `base_url`.
fn client(base_url: &str, sign_type: WechatSignType) -> WechatGateway {
    WechatGateway::new(&config(base_url, sign_type), TILL, Duration::from_secs(2))
        .expect("client builds")
}

pub fn request(b: Behaviour, serial: u64, amount: u64) -> PayRequest {
    request_of(Provider::Wechat, b, serial, amount)
}

/// A sale of `amount` paid with a code of `provider`'s that asks for `b`.
pub fn request_of(provider: Provider, b: Behaviour, serial: u64, amount: u64) -> PayRequest {
    let code = b.code(provider, serial);
    PayRequest {
        operator_id: None,
        out_trade_no: format!("S001T03_B{serial}_1"),
        order_no: "A".into(),
        seq: 1,
        amount: Fen(amount),
        auth_code: tillpay::gateway::recognise(&code).expect("a valid payment code"),
        subject: format!("{} 测试", b.describe()),
    }
}

/// The codes a dialect words the customer behaviours with.
pub struct Codes {
    pub not_enough: &'static str,
    pub code_expired: &'static str,
    pub system_error: &'static str,
    pub bank_error: &'static str,
    /// What a reverse the gateway asks to retry says.
    pub retry_reverse: &'static [&'static str],
}

pub const V2_CODES: Codes = Codes {
    not_enough: "NOTENOUGH",
    code_expired: "AUTHCODEEXPIRE",
    system_error: "SYSTEMERROR",
    bank_error: "BANKERROR",
    retry_reverse: &["recall", "SYSTEMERROR"],
};

// One arm per simulator behaviour: long because there are many behaviours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_behaviour_ends_as_the_ledger_says() {
    let sim = start_sim(TIME_UNIT).await;
    let gateways: Vec<Arc<dyn Gateway>> = (0..Behaviour::ALL.len())
        .map(|i| {
            // Both sign types, alternately: the simulator answers in kind.
            let sign_type = if i % 2 == 0 {
                WechatSignType::Md5
            } else {
                WechatSignType::HmacSha256
            };
            Arc::new(
                WechatGateway::new(
                    &config(&sim.base_url, sign_type),
                    TILL,
                    Duration::from_secs(2),
                )
                .expect("client builds"),
            ) as Arc<dyn Gateway>
        })
        .collect();
    every_behaviour(gateways, &sim.ledger, &V2_CODES).await;
}

/// Drives one sale of every customer behaviour, each through its own
/// client of `gateways`, and checks what was seen and where the money is.
pub async fn every_behaviour(gateways: Vec<Arc<dyn Gateway>>, ledger: &Ledger, codes: &Codes) {
    every_behaviour_of(Provider::Wechat, 1000, gateways, ledger, codes).await
}

/// As [`every_behaviour`], with `provider`'s codes, serials from `first`.
// One arm per simulator behaviour: long because there are many behaviours.
pub async fn every_behaviour_of(
    provider: Provider,
    first: u64,
    gateways: Vec<Arc<dyn Gateway>>,
    ledger: &Ledger,
    codes: &Codes,
) {
    let mut tasks = Vec::new();
    for (i, b) in Behaviour::ALL.into_iter().enumerate() {
        let gw = gateways[i].clone();
        let req = request_of(provider, b, first + i as u64, 1234 + i as u64);
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let end = drive(gw.as_ref(), &req, &mut seen).await;
            (b, req, end, seen)
        }));
    }
    for t in tasks {
        let (b, req, end, seen) = t.await.expect("task");
        let order = ledger.order(&req.out_trade_no);
        let kept = ledger.money_kept(&req.out_trade_no);
        let charges = order.as_ref().map_or(0, |o| o.charges);
        assert!(charges <= 1, "{b:?} charged {charges} times");
        let first = seen.first().cloned().unwrap_or_default();
        let ctx = format!("{b:?}: {end:?} after {seen:#?}");
        match b {
            Behaviour::PaysAtOnce => {
                assert!(first.starts_with("pay:Paid"), "{ctx}");
                assert_eq!(seen.len(), 1, "{ctx}");
            }
            // The receipt's split: 2 yuan by coupon, the rest from the wallet.
            Behaviour::Coupon(_) => {
                let paid = req.amount.0 - 200;
                assert!(first.starts_with("pay:Paid"), "{ctx}");
                assert!(
                    first.contains(&format!("customer_paid: Some(Fen({paid}))"))
                        && first.contains("discount: Some(Fen(200))"),
                    "{ctx}"
                );
            }
            Behaviour::ConfirmsAfter(_) | Behaviour::NeverConfirms => {
                assert!(first.contains("user_paying: true"), "{ctx}");
                assert!(seen[1].contains("user_paying: true"), "{ctx}");
            }
            Behaviour::InsufficientFunds => {
                assert_eq!(end, Final::Failed(codes.not_enough.into()), "{ctx}")
            }
            Behaviour::ExpiredCode => {
                assert_eq!(end, Final::Failed(codes.code_expired.into()), "{ctx}")
            }
            Behaviour::SystemErrorPaid | Behaviour::SystemErrorUnpaid => {
                assert!(
                    first.contains(codes.system_error) && first.contains("user_paying: false"),
                    "{ctx}"
                )
            }
            Behaviour::AnswerLost => {
                assert!(first.starts_with("pay:Unknown"), "{ctx}");
                assert!(seen[1].starts_with("query:Paid"), "{ctx}");
            }
            Behaviour::RevokeRetries(n) => {
                let retries = seen
                    .iter()
                    .filter(|s| s.starts_with("revoke:Retry"))
                    .count();
                assert_eq!(retries, n as usize, "{ctx}");
                assert!(
                    seen.iter()
                        .any(|s| codes.retry_reverse.iter().any(|c| s.contains(c))),
                    "{ctx}"
                );
            }
            Behaviour::RevokeFails => {}
            Behaviour::GivesUp(_) | Behaviour::BankError => {
                // Failed at the customer's or the bank's end: PAYERROR, and
                // still reversed to close the loop.
                assert!(
                    seen.iter().any(|s| s.starts_with("query:PayError")),
                    "{ctx}"
                );
                assert!(
                    seen.iter().any(|s| s.starts_with("revoke:Revoked")),
                    "{ctx}"
                );
                if b == Behaviour::BankError {
                    assert!(first.contains(codes.bank_error), "{ctx}");
                }
            }
            Behaviour::ReverseWhilePaying(n) => {
                let refused = seen
                    .iter()
                    .filter(|s| s.starts_with("revoke:Retry") && s.contains("USERPAYING"))
                    .count();
                // WeChat refuses to reverse while the customer decides;
                // Alipay closes the waiting trade at once.
                let want = if provider == Provider::Wechat {
                    n as usize
                } else {
                    0
                };
                assert_eq!(refused, want, "{ctx}");
            }
            Behaviour::RefundCloses
            | Behaviour::RefundChange
            | Behaviour::RefundSystemError
            | Behaviour::SlowAnswer(_) => {
                assert!(first.starts_with("pay:Paid"), "{ctx}");
            }
            Behaviour::BadGateway => {
                // A 502 page after the request left: unknown, never failed.
                assert!(first.starts_with("pay:Unknown"), "{ctx}");
                assert!(first.contains("502"), "{ctx}");
                assert!(seen[1].starts_with("query:Paid"), "{ctx}");
            }
            Behaviour::SystemBusy => {
                // Unsigned return_code=FAIL for WeChat's own reason: unknown.
                assert!(first.starts_with("pay:Unknown"), "{ctx}");
                assert!(
                    seen.iter().any(|s| s.starts_with("query:PayError")),
                    "{ctx}"
                );
            }
        }
        let expected_final = match b {
            Behaviour::PaysAtOnce
            | Behaviour::ConfirmsAfter(_)
            | Behaviour::SystemErrorPaid
            | Behaviour::AnswerLost
            | Behaviour::RefundCloses
            | Behaviour::RefundChange
            | Behaviour::RefundSystemError
            | Behaviour::SlowAnswer(_)
            | Behaviour::BadGateway
            | Behaviour::Coupon(_) => "paid",
            Behaviour::InsufficientFunds | Behaviour::ExpiredCode => "failed",
            Behaviour::NeverConfirms
            | Behaviour::SystemErrorUnpaid
            | Behaviour::RevokeRetries(_)
            | Behaviour::GivesUp(_)
            | Behaviour::BankError
            | Behaviour::ReverseWhilePaying(_)
            | Behaviour::SystemBusy => "revoked",
            Behaviour::RevokeFails => "needs_attention",
        };
        match (&end, expected_final) {
            (Final::Paid(tid), "paid") => {
                assert_eq!(kept, req.amount.0, "{ctx}");
                assert_eq!(charges, 1, "{ctx}");
                assert_eq!(
                    order.as_ref().map(|o| o.transaction_id.as_str()),
                    Some(tid.as_str()),
                    "{ctx}"
                );
            }
            (Final::Failed(_), "failed")
            | (Final::Revoked, "revoked")
            | (Final::NeedsAttention, "needs_attention") => {
                assert_eq!(kept, 0, "{ctx}: money kept although not paid");
            }
            _ => panic!("expected {expected_final}: {ctx}"),
        }
        if b == Behaviour::RevokeFails {
            assert_eq!(order.map(|o| o.revoke_calls), Some(REVOKE_MAX), "{ctx}");
        }
    }
}

#[tokio::test]
async fn requests_carry_what_wechat_requires() {
    let sim = start_sim(TIME_UNIT).await;
    let mut cfg = config(&sim.base_url, WechatSignType::HmacSha256);
    cfg.sub_mch_id = Some("1900000109".into());
    cfg.sub_appid = Some("wx8888888888888888".into());
    let gw = WechatGateway::new(&cfg, TILL, Duration::from_secs(2)).expect("client");
    let mut req = request(Behaviour::PaysAtOnce, 1, 500);
    req.subject = "咖".repeat(60); // 180 bytes
    assert!(matches!(gw.pay(&req).await, PayAnswer::Paid(_)));
    assert!(matches!(
        gw.query(&req.out_trade_no).await,
        QueryAnswer::Paid(_)
    ));
    // Paid, then reversed: the query after the reverse says money moved.
    assert!(matches!(
        gw.revoke(&req.out_trade_no).await,
        RevokeAnswer::Revoked(RevokeEffect::Refunded)
    ));
    let _ = gw.bill("2001-01-01").await;

    let seen = sim.recorder.requests();
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/pay/micropay",
            "/pay/orderquery",
            "/secapi/pay/reverse",
            "/pay/orderquery",
            "/pay/downloadbill"
        ]
    );
    for (path, f) in &seen {
        assert_eq!(
            f.get("sub_mch_id").map(String::as_str),
            Some("1900000109"),
            "{path}"
        );
        assert_eq!(
            f.get("sub_appid").map(String::as_str),
            Some("wx8888888888888888"),
            "{path}"
        );
        assert_eq!(
            f.get("sign_type").map(String::as_str),
            Some("HMAC-SHA256"),
            "{path}"
        );
        assert_eq!(f.get("nonce_str").map(String::len), Some(32), "{path}");
    }
    let pay = &seen[0].1;
    assert!(!pay.contains_key("trade_type"));
    assert_eq!(pay["device_info"], TILL);
    assert_eq!(pay["total_fee"], "500");
    assert_eq!(pay["spbill_create_ip"], "127.0.0.1");
    assert_eq!(pay["auth_code"], req.auth_code.expose());
    assert!(pay["body"].len() <= 128 && req.subject.starts_with(&pay["body"]));
    assert_eq!(pay["body"].chars().count(), 42);
    assert_ne!(seen[0].1["nonce_str"], seen[1].1["nonce_str"]);
    let bill = &seen[4].1;
    assert_eq!(
        (bill["bill_date"].as_str(), bill["bill_type"].as_str()),
        ("20010101", "ALL")
    );
}

#[tokio::test]
async fn a_wrong_key_is_a_config_error_and_charges_nothing() {
    let sim = start_sim(TIME_UNIT).await;
    let mut cfg = config(&sim.base_url, WechatSignType::Md5);
    cfg.api_key = "ffffffffffffffffffffffffffffffff".into();
    let gw = WechatGateway::new(&cfg, TILL, Duration::from_secs(2)).expect("client");
    let req = request(Behaviour::PaysAtOnce, 2, 100);
    match gw.pay(&req).await {
        PayAnswer::Failed { note, config_error } => {
            assert!(config_error);
            assert_eq!(note.message, "签名错误");
        }
        other => panic!("{other:?}"),
    }
    assert!(sim.ledger.order(&req.out_trade_no).is_none());
}

#[tokio::test]
async fn a_retry_of_a_paid_order_is_not_a_failure() {
    let sim = start_sim(TIME_UNIT).await;
    let gw = client(&sim.base_url, WechatSignType::Md5);
    let req = request(Behaviour::AnswerLost, 3, 700);
    assert!(matches!(gw.pay(&req).await, PayAnswer::Unknown { .. }));
    // The same request again: ORDERPAID, which only a query may settle.
    match gw.pay(&req).await {
        PayAnswer::OrderNumberUsed(note) => assert_eq!(note.code, "ORDERPAID"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sim.ledger.order(&req.out_trade_no).map(|o| o.charges),
        Some(1)
    );
}

// One order refunded step by step, then the day's bill: the steps depend on each other.
#[tokio::test]
async fn refunds_and_the_bill() {
    let sim = start_sim(TIME_UNIT).await;
    let gw = client(&sim.base_url, WechatSignType::HmacSha256);
    let paid = request(Behaviour::PaysAtOnce, 4, 1000);
    let tid = match gw.pay(&paid).await {
        PayAnswer::Paid(info) => {
            assert_eq!(info.amount, Some(Fen(1000)));
            assert!(info
                .paid_at
                .as_deref()
                .is_some_and(|t| t.ends_with("+08:00")));
            info.transaction_id
        }
        other => panic!("{other:?}"),
    };
    let refund = |no: &str, amount: u64| RefundRequest {
        operator_id: None,
        out_trade_no: paid.out_trade_no.clone(),
        transaction_id: Some(tid.clone()),
        refund_no: no.into(),
        total_amount: Fen(1000),
        refund_amount: Fen(amount),
        reason: Some("顾客退货".into()),
    };
    assert!(matches!(
        gw.refund(&refund("R1", 300)).await,
        RefundAnswer::Processing(_)
    ));
    // Accepted, not landed: the query says PROCESSING until it lands.
    assert!(matches!(
        gw.refund_query(&paid.out_trade_no, "R1").await,
        RefundAnswer::Processing(_)
    ));
    assert_eq!(
        sim.ledger.money_kept(&paid.out_trade_no),
        1000,
        "not back yet"
    );
    tokio::time::sleep(TIME_UNIT * 6).await;
    match gw.refund_query(&paid.out_trade_no, "R1").await {
        RefundAnswer::Refunded { refund_id } => assert!(refund_id.is_some()),
        other => panic!("{other:?}"),
    }
    // Retried with the same number: still one refund.
    assert!(matches!(
        gw.refund(&refund("R1", 300)).await,
        RefundAnswer::Processing(_)
    ));
    // A new refund of the order within a minute: later, not refused.
    assert!(matches!(
        gw.refund(&refund("R2", 800)).await,
        RefundAnswer::Later(_)
    ));
    tokio::time::sleep(TIME_UNIT * 61).await;
    assert!(matches!(
        gw.refund(&refund("R2", 800)).await,
        RefundAnswer::Failed(_)
    ));
    // The refused one was never made.
    assert!(matches!(
        gw.refund_query(&paid.out_trade_no, "R2").await,
        RefundAnswer::NotFound(_)
    ));
    assert_eq!(sim.ledger.money_kept(&paid.out_trade_no), 700);
    assert!(
        matches!(gw.query(&paid.out_trade_no).await, QueryAnswer::Paid(_)),
        "REFUND is still paid"
    );

    // A payment whose answer was lost, then revoked: money came back.
    let lost = request(Behaviour::AnswerLost, 5, 250);
    assert!(matches!(gw.pay(&lost).await, PayAnswer::Unknown { .. }));
    assert!(matches!(
        gw.revoke(&lost.out_trade_no).await,
        RevokeAnswer::Revoked(_)
    ));
    assert!(matches!(
        gw.query(&lost.out_trade_no).await,
        QueryAnswer::NotPaid(_)
    ));
    assert_eq!(sim.ledger.money_kept(&lost.out_trade_no), 0);

    let today = chrono::Local::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let text = match gw.bill(&today).await {
        BillAnswer::File(bytes) => String::from_utf8(bytes).expect("UTF-8 bill"),
        other => panic!("{other:?}"),
    };
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[0].starts_with("交易时间,公众账号ID,商户号"), "{text}");
    let has = |no: &str, status: &str| {
        rows.iter().any(|r| {
            r.contains(&format!("`{no},"))
                && r.contains(&format!(",`{status},"))
                && r.contains(&format!(",`{TILL},"))
        })
    };
    assert!(has(&paid.out_trade_no, "SUCCESS"), "{text}");
    assert!(has(&paid.out_trade_no, "REFUND"), "{text}");
    assert!(has(&lost.out_trade_no, "SUCCESS"), "{text}");
    assert!(has(&lost.out_trade_no, "REVOKED"), "{text}");
    assert!(matches!(gw.bill("2001-01-01").await, BillAnswer::NoBill(_)));
    assert!(matches!(gw.bill("2001-02-30").await, BillAnswer::Failed(_)));
}

#[tokio::test]
async fn todays_bill_is_still_being_made_as_at_the_real_gateway() {
    // WeChat serves day D's bill from 09:00 Beijing time on D+1: asked the
    // same day, it answers "Bill Creating", which is "not yet", never
    // "no bill" (a day with sales would then look empty).
    let sim = start_strict_sim(TIME_UNIT).await;
    let gw = client(&sim.base_url, WechatSignType::HmacSha256);
    let req = request(Behaviour::PaysAtOnce, 77, 500);
    assert!(matches!(gw.pay(&req).await, PayAnswer::Paid(_)));
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let answer = gw.bill(&today).await;
    assert!(
        matches!(&answer, BillAnswer::NotYet(n) if n.message == "Bill Creating"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_refund_number_is_unique_across_the_merchant_account() {
    // Two tills of one merchant refund their own sales under the same POS
    // refund number: tillpay puts the till id in the number WeChat sees, so
    // both are new. The same number on another order is refused.
    let sim = start_sim(TIME_UNIT).await;
    let gw = client(&sim.base_url, WechatSignType::HmacSha256);
    let a = request(Behaviour::PaysAtOnce, 80, 1000);
    let b = request(Behaviour::PaysAtOnce, 81, 1000);
    assert!(matches!(gw.pay(&a).await, PayAnswer::Paid(_)));
    assert!(matches!(gw.pay(&b).await, PayAnswer::Paid(_)));
    let refund = |otn: &str, till: &str| RefundRequest {
        operator_id: None,
        out_trade_no: otn.to_string(),
        transaction_id: None,
        refund_no: tillpay::domain::out_refund_no(till, "R1"),
        total_amount: Fen(1000),
        refund_amount: Fen(100),
        reason: None,
    };
    let t1 = gw.refund(&refund(&a.out_trade_no, "T1")).await;
    assert!(matches!(t1, RefundAnswer::Processing(_)), "{t1:?}");
    let t2 = gw.refund(&refund(&b.out_trade_no, "T2")).await;
    assert!(matches!(t2, RefundAnswer::Processing(_)), "{t2:?}");
    let reused = gw.refund(&refund(&b.out_trade_no, "T1")).await;
    assert!(
        matches!(&reused, RefundAnswer::Failed(n) if n.code == "PARAM_ERROR"),
        "{reused:?}"
    );
}
