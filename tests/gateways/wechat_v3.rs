//! The WeChat Pay v3 client against the simulator's v3 dialect over
//! loopback HTTP with real RSA signatures both ways: every customer
//! behaviour the v2 tests drive, the 202 path, refunds and the trade bill
//! with its hash, answers that do not verify, and the backup domain.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tillpay::domain::Fen;
use tillpay::gateway::wechat::v3::config::{AnswerKey, WechatV3Config};
use tillpay::gateway::wechat::v3::request::Account;
use tillpay::gateway::wechat::v3::WechatV3Gateway;
use tillpay::gateway::{
    BillAnswer, Gateway, PayAnswer, QueryAnswer, RefundAnswer, RefundRequest, RevokeAnswer,
    RevokeEffect,
};
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::http::{serve, BoxFuture, Handler, SimRequest, SimResponse};
use tillpay::sim::ledger::Ledger;
use tillpay::sim::wechat::v3::{keys, WechatV3Sim};

use crate::wechat_sim::{every_behaviour, request, Codes};
use crate::wechat_support::TILL;

const TIME_UNIT: Duration = Duration::from_millis(50);

const V3_CODES: Codes = Codes {
    not_enough: "NOT_ENOUGH",
    code_expired: "AUTH_CODE_EXPIRE",
    system_error: "SYSTEM_ERROR",
    bank_error: "BANK_ERROR",
    retry_reverse: &["SYSTEM_ERROR"],
};

/// One request as the simulator received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: String,
    pub body: Value,
}

type Tamper = Box<dyn Fn(&SimRequest, SimResponse) -> SimResponse + Send + Sync>;

/// The v3 dialect with every request on record, and a hook that may
/// change an answer on its way out (a man in the middle, a broken proxy).
pub struct V3Recorder {
    pub sim: WechatV3Sim,
    pub seen: Mutex<Vec<Seen>>,
    pub tamper: Mutex<Option<Tamper>>,
}

impl Handler for V3Recorder {
    fn handle(&self, req: SimRequest) -> BoxFuture<'_, SimResponse> {
        Box::pin(async move {
            let path = match &req.query {
                Some(q) => format!("{}?{q}", req.path),
                None => req.path.clone(),
            };
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Seen {
                    method: req.method.clone(),
                    path,
                    authorization: req.header("authorization").unwrap_or("").to_string(),
                    body: serde_json::from_slice(&req.body).unwrap_or(Value::Null),
                });
            let answer = self.sim.respond(&req);
            match &*self.tamper.lock().unwrap_or_else(|p| p.into_inner()) {
                Some(t) => t(&req, answer),
                None => answer,
            }
        })
    }
}

pub struct RunningV3 {
    pub base_url: String,
    pub ledger: Arc<Ledger>,
    pub rec: Arc<V3Recorder>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningV3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RunningV3 {
    pub fn seen(&self) -> Vec<Seen> {
        self.rec
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn tamper(
        &self,
        t: impl Fn(&SimRequest, SimResponse) -> SimResponse + Send + Sync + 'static,
    ) {
        *self.rec.tamper.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(t));
    }
}

pub async fn start_v3(ledger: Arc<Ledger>) -> RunningV3 {
    let sim = WechatV3Sim::demo(ledger.clone())
        .expect("simulator keys")
        .with_same_day_bills();
    let rec = Arc::new(V3Recorder {
        sim,
        seen: Mutex::new(Vec::new()),
        tamper: Mutex::new(None),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(serve(listener, rec.clone()));
    RunningV3 {
        base_url: format!("http://{addr}"),
        ledger,
        rec,
        task,
    }
}

fn public_key() -> Vec<u8> {
    tillpay::gateway::rsa::parse_public_key(keys::WECHATPAY_PUBLIC_KEY_PEM).expect("key")
}

/// A v3 client config of the demo merchant at `base_url`, verifying with
/// the WeChat Pay public key only.
pub fn v3_config(base_url: &str) -> WechatV3Config {
    WechatV3Config {
        base_url: base_url.to_string(),
        backup_url: None,
        account: Account::Direct {
            appid: keys::APPID.into(),
            mchid: keys::MCHID.into(),
        },
        private_key_pem: keys::MERCHANT_PRIVATE_KEY_PEM.into(),
        cert_serial_no: keys::MERCHANT_SERIAL.into(),
        merchant_cert: None,
        answer_keys: vec![AnswerKey {
            id: keys::PUBLIC_KEY_ID.into(),
            public_key: public_key(),
            file: "pub_key.pem".into(),
            cert_pem: None,
        }],
        store_id: None,
        ca_pem: None,
        min_reverse_delay: Duration::ZERO,
    }
}

pub fn v3_client(cfg: &WechatV3Config) -> WechatV3Gateway {
    WechatV3Gateway::new(cfg, TILL, Duration::from_secs(2)).expect("client builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_behaviour_the_v2_tests_drive_ends_the_same_on_v3() {
    let sim = start_v3(Arc::new(Ledger::new(TIME_UNIT))).await;
    let gateways: Vec<Arc<dyn Gateway>> = (0..Behaviour::ALL.len())
        .map(|_| Arc::new(v3_client(&v3_config(&sim.base_url))) as Arc<dyn Gateway>)
        .collect();
    every_behaviour(gateways, &sim.ledger, &V3_CODES).await;
    // The customer confirming on the phone was a 202, as v3 code pay answers.
    assert!(sim
        .seen()
        .iter()
        .any(|s| s.path == "/v3/pay/transactions/codepay"));
}

// One sale through every call, then what each request carried: long because it checks each.
#[tokio::test]
async fn requests_are_signed_and_carry_what_v3_requires() {
    let sim = start_v3(Arc::new(Ledger::new(TIME_UNIT))).await;
    let mut cfg = v3_config(&sim.base_url);
    cfg.store_id = Some("S001".into());
    let gw = v3_client(&cfg);
    let mut req = request(Behaviour::PaysAtOnce, 1, 500);
    req.subject = "咖".repeat(60); // 180 bytes
    assert!(matches!(gw.pay(&req).await, PayAnswer::Paid(_)));
    assert!(matches!(
        gw.query(&req.out_trade_no).await,
        QueryAnswer::Paid(_)
    ));
    // Paid, then reversed: the query after the reverse says money moved.
    assert_eq!(
        gw.revoke(&req.out_trade_no).await,
        RevokeAnswer::Revoked(RevokeEffect::Refunded)
    );
    let seen = sim.seen();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    let query = format!(
        "/v3/pay/transactions/out-trade-no/{}?mchid={}",
        req.out_trade_no,
        keys::MCHID
    );
    let reverse = format!(
        "/v3/pay/transactions/out-trade-no/{}/reverse",
        req.out_trade_no
    );
    assert_eq!(
        calls,
        [
            ("POST", "/v3/pay/transactions/codepay"),
            ("GET", query.as_str()),
            ("POST", reverse.as_str()),
            ("GET", query.as_str()),
        ]
    );
    for s in &seen {
        let a = &s.authorization;
        assert!(a.starts_with("WECHATPAY2-SHA256-RSA2048 "), "{a}");
        for part in [
            "mchid=\"1900000001\"",
            "serial_no=\"3775B6A4",
            "timestamp=\"",
            "signature=\"",
        ] {
            assert!(a.contains(part), "{part} in {a}");
        }
    }
    assert_ne!(
        seen[0].authorization, seen[1].authorization,
        "a fresh nonce each time"
    );
    let pay = &seen[0].body;
    assert_eq!(pay["amount"]["total"], 500);
    assert_eq!(pay["payer"]["auth_code"], req.auth_code.expose());
    assert_eq!(pay["scene_info"]["device_id"], TILL);
    assert_eq!(pay["scene_info"]["store_info"]["out_id"], "S001");
    let description = pay["description"].as_str().unwrap_or_default();
    assert!(description.len() <= 127 && req.subject.starts_with(description));
    assert_eq!(
        seen[2].body,
        serde_json::json!({"appid": keys::APPID, "mchid": keys::MCHID})
    );
    // A full code never in the client's own words either.
    assert!(!format!("{gw:?}").contains(req.auth_code.expose()));
}

#[tokio::test]
async fn a_partner_speaks_for_its_shop() {
    let sim = start_v3(Arc::new(Ledger::new(TIME_UNIT))).await;
    let mut cfg = v3_config(&sim.base_url);
    cfg.account = Account::Partner {
        sp_appid: keys::APPID.into(),
        sp_mchid: keys::MCHID.into(),
        sub_mchid: "1900000109".into(),
        sub_appid: None,
    };
    let gw = v3_client(&cfg);
    let req = request(Behaviour::PaysAtOnce, 2, 300);
    assert!(matches!(gw.pay(&req).await, PayAnswer::Paid(_)));
    assert!(matches!(
        gw.query(&req.out_trade_no).await,
        QueryAnswer::Paid(_)
    ));
    let seen = sim.seen();
    assert_eq!(seen[0].path, "/v3/pay/partner/transactions/codepay");
    assert_eq!(seen[0].body["sub_mchid"], "1900000109");
    assert!(
        seen[1]
            .path
            .ends_with("?sp_mchid=1900000001&sub_mchid=1900000109"),
        "{}",
        seen[1].path
    );
}

#[tokio::test]
async fn a_wrong_merchant_key_charges_nothing_and_is_never_called_failed() {
    let sim = start_v3(Arc::new(Ledger::new(TIME_UNIT))).await;
    let mut cfg = v3_config(&sim.base_url);
    // Another key under the same serial: WeChat refuses the signature with
    // an unsigned 401, which proves nothing about the payment.
    cfg.private_key_pem = keys::WECHATPAY_PRIVATE_KEY_PEM.into();
    let gw = v3_client(&cfg);
    let req = request(Behaviour::PaysAtOnce, 3, 100);
    match gw.pay(&req).await {
        PayAnswer::Unknown { note, .. } => {
            assert_eq!(note.code, "UNVERIFIED");
            assert!(note.message.contains("401"), "{}", note.message);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        sim.ledger.order(&req.out_trade_no).is_none(),
        "nothing charged"
    );
}

#[tokio::test]
async fn an_answer_that_does_not_verify_is_unknown_and_the_query_decides() {
    let sim = start_v3(Arc::new(Ledger::new(TIME_UNIT))).await;
    let gw = v3_client(&v3_config(&sim.base_url));
    // A man in the middle turns the code pay's "paid" into a refusal.
    sim.tamper(|req, answer| match answer {
        SimResponse::Reply {
            status, headers, ..
        } if req.path.ends_with("/codepay") => {
            let body = br#"{"code":"NOT_ENOUGH","message":"x"}"#.to_vec();
            let _ = status;
            SimResponse::Reply {
                status: 403,
                content_type: "application/json".into(),
                body,
                headers,
            }
        }
        other => other,
    });
    let req = request(Behaviour::PaysAtOnce, 4, 880);
    match gw.pay(&req).await {
        PayAnswer::Unknown { note, .. } => assert_eq!(note.code, "UNVERIFIED"),
        other => panic!("a forged refusal must not count: {other:?}"),
    }
    // The query's answer is genuine: the money was taken.
    assert!(matches!(
        gw.query(&req.out_trade_no).await,
        QueryAnswer::Paid(_)
    ));

    // A key this till was not given is no key at all.
    let mut cfg = v3_config(&sim.base_url);
    cfg.answer_keys[0].id = "PUB_KEY_ID_0000000000000000000000000000000000".into();
    let stranger = v3_client(&cfg);
    match stranger.query(&req.out_trade_no).await {
        QueryAnswer::Pending { note, .. } => {
            assert!(
                note.message.contains("which this till was not given"),
                "{}",
                note.message
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn platform_certificates_verify_during_a_migration() {
    let sim = start_v3(Arc::new(Ledger::new(TIME_UNIT))).await;
    sim.rec.sim.sign_with_platform_certificate(true);
    let req = request(Behaviour::PaysAtOnce, 5, 100);
    // Only the public key: the platform serial is not one of its keys.
    let only_public = v3_client(&v3_config(&sim.base_url));
    assert!(matches!(
        only_public.pay(&req).await,
        PayAnswer::Unknown { .. }
    ));
    // Both, as a merchant moving to the public key has them.
    let mut cfg = v3_config(&sim.base_url);
    cfg.answer_keys.push(AnswerKey {
        id: keys::PLATFORM_SERIAL.into(),
        public_key: tillpay::gateway::wechat::cert_public_key(keys::PLATFORM_CERT_PEM)
            .expect("certificate key"),
        file: "wechatpay_cert.pem".into(),
        cert_pem: Some(keys::PLATFORM_CERT_PEM.into()),
    });
    let both = v3_client(&cfg);
    assert!(matches!(
        both.query(&req.out_trade_no).await,
        QueryAnswer::Paid(_)
    ));
}

#[tokio::test]
async fn a_retry_of_a_paid_order_is_not_a_failure() {
    let sim = start_v3(Arc::new(Ledger::new(TIME_UNIT))).await;
    let gw = v3_client(&v3_config(&sim.base_url));
    let req = request(Behaviour::AnswerLost, 6, 700);
    assert!(matches!(gw.pay(&req).await, PayAnswer::Unknown { .. }));
    match gw.pay(&req).await {
        PayAnswer::OrderNumberUsed(note) => assert_eq!(note.code, "ORDER_PAID"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sim.ledger.order(&req.out_trade_no).map(|o| o.charges),
        Some(1)
    );
}

// One order refunded step by step, then the day's bill: the steps depend on each other.
#[tokio::test]
async fn refunds_and_the_bill_with_its_hash() {
    let sim = start_v3(Arc::new(Ledger::new(TIME_UNIT))).await;
    let gw = v3_client(&v3_config(&sim.base_url));
    let paid = request(Behaviour::PaysAtOnce, 7, 1000);
    match gw.pay(&paid).await {
        PayAnswer::Paid(info) => {
            assert_eq!(info.amount, Some(Fen(1000)));
            assert!(info
                .paid_at
                .as_deref()
                .is_some_and(|t| t.ends_with("+08:00")));
        }
        other => panic!("{other:?}"),
    }
    let refund = |no: &str, amount: u64| RefundRequest {
        operator_id: None,
        out_trade_no: paid.out_trade_no.clone(),
        transaction_id: None,
        refund_no: no.into(),
        total_amount: Fen(1000),
        refund_amount: Fen(amount),
        reason: Some("顾客退货".into()),
    };
    assert!(matches!(
        gw.refund(&refund("R1", 300)).await,
        RefundAnswer::Processing(_)
    ));
    assert!(matches!(
        gw.refund_query(&paid.out_trade_no, "R1").await,
        RefundAnswer::Processing(_)
    ));
    tokio::time::sleep(TIME_UNIT * 6).await;
    match gw.refund_query(&paid.out_trade_no, "R1").await {
        RefundAnswer::Refunded { refund_id } => assert!(refund_id.is_some()),
        other => panic!("{other:?}"),
    }
    // A new refund within a minute: later, not refused.
    assert!(matches!(
        gw.refund(&refund("R2", 800)).await,
        RefundAnswer::Later(_)
    ));
    tokio::time::sleep(TIME_UNIT * 61).await;
    assert!(matches!(
        gw.refund(&refund("R2", 800)).await,
        RefundAnswer::Failed(_)
    ));
    assert!(matches!(
        gw.refund_query(&paid.out_trade_no, "R2").await,
        RefundAnswer::NotFound(_)
    ));
    assert_eq!(sim.ledger.money_kept(&paid.out_trade_no), 700);

    let today = chrono::Local::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let bytes = match gw.bill(&today).await {
        BillAnswer::File(bytes) => bytes,
        other => panic!("{other:?}"),
    };
    // The same parser as v2's bill reads it.
    let ch = tillpay::gateway::channel("wechat").expect("channel");
    let bill = ch
        .parse_bill(&mut std::io::Cursor::new(bytes), TILL)
        .expect("the v2 parser reads the v3 bill");
    assert!(bill.rows.iter().any(|r| r.out_trade_no == paid.out_trade_no
        && r.kind == tillpay::gateway::bill::RowKind::Refund));
    assert!(matches!(gw.bill("2001-01-01").await, BillAnswer::NoBill(_)));

    // A file that is not the one the signed answer hashed is refused.
    sim.tamper(|req, answer| match answer {
        SimResponse::Reply {
            status,
            content_type,
            mut body,
            headers,
        } if req.path == "/v3/billdownload/file" => {
            body.extend_from_slice(b"`extra row\r\n");
            SimResponse::Reply {
                status,
                content_type,
                body,
                headers,
            }
        }
        other => other,
    });
    match gw.bill(&today).await {
        BillAnswer::Failed(note) => assert_eq!(note.code, "BILL_HASH_MISMATCH"),
        other => panic!("{other:?}"),
    }
}
