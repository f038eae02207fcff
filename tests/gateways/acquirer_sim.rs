//! The acquirer client against the simulator's `unified.trade.*` dialect
//! over loopback HTTP with real MD5 signatures: every customer behaviour,
//! for WeChat, Alipay and UnionPay codes, through the one route; refunds
//! and the merchant bill; a wrong key and a forged answer.

use std::sync::Arc;
use std::time::Duration;

use tillpay::domain::{Fen, Provider};
use tillpay::gateway::acquirer::AcquirerGateway;
use tillpay::gateway::bill::RowKind;
use tillpay::gateway::{
    BillAnswer, Gateway, PayAnswer, QueryAnswer, RefundAnswer, RefundRequest, RevokeAnswer,
    RevokeEffect,
};
use tillpay::sim::behaviour::Behaviour;
use tillpay::sim::Simulator;

use crate::wechat_sim::{every_behaviour_of, request_of, Codes};
use crate::wechat_support::TILL;

const TIME_UNIT: Duration = Duration::from_millis(50);

const ACQUIRER_CODES: Codes = Codes {
    not_enough: "NOTENOUGH",
    code_expired: "AUTHCODEEXPIRE",
    system_error: "SYSTEMERROR",
    bank_error: "BANKERROR",
    retry_reverse: &["SYSTEMERROR"],
};

fn client(sim: &Simulator) -> AcquirerGateway {
    AcquirerGateway::new(
        &sim.acquirer_config(Duration::ZERO),
        TILL,
        Duration::from_secs(2),
    )
    .expect("client builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_behaviour_ends_as_the_ledger_says_for_all_three_wallets() {
    let sim = Simulator::start(TIME_UNIT).await.expect("simulator");
    for (provider, first) in [
        (Provider::Wechat, 1000),
        (Provider::Alipay, 2000),
        (Provider::Unionpay, 3000),
    ] {
        let gateways: Vec<Arc<dyn Gateway>> = (0..Behaviour::ALL.len())
            .map(|_| Arc::new(client(&sim)) as Arc<dyn Gateway>)
            .collect();
        every_behaviour_of(provider, first, gateways, &sim.ledger, &ACQUIRER_CODES).await;
    }
}

#[tokio::test]
async fn a_unionpay_payment_through_the_acquirer_is_refunded_and_billed() {
    let sim = Simulator::start(TIME_UNIT).await.expect("simulator");
    let gw = client(&sim);
    let req = request_of(Provider::Unionpay, Behaviour::PaysAtOnce, 1, 1000);
    assert_eq!(req.auth_code.provider(), Provider::Unionpay);
    let tid = match gw.pay(&req).await {
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
    let refund = |no: &str, amount| RefundRequest {
        operator_id: None,
        out_trade_no: req.out_trade_no.clone(),
        transaction_id: Some(tid.clone()),
        refund_no: no.into(),
        total_amount: Fen(1000),
        refund_amount: Fen(amount),
        reason: None,
    };
    assert!(matches!(
        gw.refund(&refund("S001T03_R1", 300)).await,
        RefundAnswer::Processing(_)
    ));
    assert!(matches!(
        gw.refund_query(&req.out_trade_no, "S001T03_R1").await,
        RefundAnswer::Processing(_)
    ));
    tokio::time::sleep(TIME_UNIT * 6).await;
    assert!(matches!(
        gw.refund_query(&req.out_trade_no, "S001T03_R1").await,
        RefundAnswer::Refunded { .. }
    ));
    assert!(matches!(
        gw.refund_query(&req.out_trade_no, "S001T03_R9").await,
        RefundAnswer::NotFound(_)
    ));

    // An Alipay payment whose answer was lost, then revoked: money back.
    let lost = request_of(Provider::Alipay, Behaviour::AnswerLost, 2, 250);
    assert!(matches!(gw.pay(&lost).await, PayAnswer::Unknown { .. }));
    assert_eq!(
        gw.revoke(&lost.out_trade_no).await,
        RevokeAnswer::Revoked(RevokeEffect::Refunded)
    );

    let today = chrono::Local::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let bytes = match gw.bill(&today).await {
        BillAnswer::File(b) => b,
        other => panic!("{other:?}"),
    };
    let ch = tillpay::gateway::channel("acquirer").expect("registered");
    let bill = ch
        .parse_bill(&mut std::io::Cursor::new(bytes), TILL)
        .expect("parses");
    let kinds: Vec<(Provider, RowKind, u64)> = bill
        .rows
        .iter()
        .map(|r| (r.provider, r.kind, r.amount.0))
        .collect();
    assert!(
        kinds.contains(&(Provider::Unionpay, RowKind::Payment, 1000)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(Provider::Unionpay, RowKind::Refund, 300)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(Provider::Alipay, RowKind::Payment, 250)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(Provider::Alipay, RowKind::RevokeRefund, 250)),
        "{kinds:?}"
    );
    assert!(matches!(gw.bill("2001-01-01").await, BillAnswer::NoBill(_)));
}

#[tokio::test]
async fn a_wrong_key_charges_nothing_and_is_never_called_failed() {
    let sim = Simulator::start(TIME_UNIT).await.expect("simulator");
    let mut cfg = sim.acquirer_config(Duration::ZERO);
    cfg.keys = tillpay::gateway::acquirer::config::Keys::Md5 {
        key: "f".repeat(32),
    };
    let gw = AcquirerGateway::new(&cfg, TILL, Duration::from_secs(2)).expect("client");
    let req = request_of(Provider::Wechat, Behaviour::PaysAtOnce, 3, 100);
    match gw.pay(&req).await {
        PayAnswer::Unknown { note, .. } => assert_eq!(note.code, "STATUS_400"),
        other => panic!("{other:?}"),
    }
    assert!(sim.ledger.order(&req.out_trade_no).is_none());
    assert!(matches!(
        gw.query(&req.out_trade_no).await,
        QueryAnswer::Pending { .. }
    ));
}

/// The acquirer dialect behind a hook that may change its answers on the
/// way out (a man in the middle).
struct Tampering {
    sim: tillpay::sim::acquirer::AcquirerSim,
    forge: bool,
}

impl tillpay::sim::http::Handler for Tampering {
    fn handle(
        &self,
        req: tillpay::sim::http::SimRequest,
    ) -> tillpay::sim::http::BoxFuture<'_, tillpay::sim::http::SimResponse> {
        use tillpay::sim::http::SimResponse;
        Box::pin(async move {
            let answer = self.sim.respond(&req);
            let micropay = String::from_utf8_lossy(&req.body).contains("unified.trade.micropay");
            match answer {
                // A paid answer turned into a refusal, its sign left as it was.
                SimResponse::Reply {
                    status,
                    content_type,
                    body,
                    headers,
                } if self.forge && micropay => {
                    use tillpay::sim::wechat::wire;
                    let mut f = wire::parse(&body).expect("the simulator answers XML");
                    f.insert("result_code".into(), "1".into());
                    f.insert("err_code".into(), "NOTENOUGH".into());
                    f.insert("need_query".into(), "N".into());
                    SimResponse::Reply {
                        status,
                        content_type,
                        body: wire::to_xml(&f).into_bytes(),
                        headers,
                    }
                }
                other => other,
            }
        })
    }
}

#[tokio::test]
async fn a_forged_answer_is_unknown_and_the_query_finds_the_money() {
    let ledger = Arc::new(tillpay::sim::ledger::Ledger::new(TIME_UNIT));
    let handler = Arc::new(Tampering {
        sim: tillpay::sim::acquirer::AcquirerSim::new(ledger.clone()),
        forge: true,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(tillpay::sim::http::serve(listener, handler));
    let sim = Simulator::start(TIME_UNIT).await.expect("simulator");
    let mut cfg = sim.acquirer_config(Duration::ZERO);
    cfg.gateway_url = format!("http://{addr}/pay/gateway");
    let gw = AcquirerGateway::new(&cfg, TILL, Duration::from_secs(2)).expect("client");
    for provider in [Provider::Wechat, Provider::Alipay, Provider::Unionpay] {
        let req = request_of(provider, Behaviour::PaysAtOnce, 40, 660);
        let req = tillpay::gateway::PayRequest {
            operator_id: None,
            out_trade_no: format!("{}_{provider}", req.out_trade_no),
            ..req
        };
        match gw.pay(&req).await {
            PayAnswer::Unknown { note, .. } => assert_eq!(note.code, "BAD_SIGNATURE", "{provider}"),
            other => panic!("{provider}: a forged refusal must not count: {other:?}"),
        }
        assert!(
            matches!(gw.query(&req.out_trade_no).await, QueryAnswer::Paid(_)),
            "{provider}"
        );
        assert_eq!(ledger.money_kept(&req.out_trade_no), 660);
    }
    task.abort();
}

#[tokio::test]
async fn the_cashier_goes_as_op_user_id_and_a_coupon_comes_back_on_the_receipt() {
    let sim = Simulator::start(TIME_UNIT).await.expect("simulator");
    let gw = client(&sim);
    for (provider, serial) in [(Provider::Wechat, 70), (Provider::Alipay, 71)] {
        let req = tillpay::gateway::PayRequest {
            operator_id: Some("alice".into()),
            ..request_of(provider, Behaviour::Coupon(2), serial, 1000)
        };
        let PayAnswer::Paid(info) = gw.pay(&req).await else {
            panic!("{provider}: not paid")
        };
        // coupon_fee: 2 yuan; the customer paid the rest.
        assert_eq!(info.paid_by.discount, Some(Fen(200)), "{provider}");
        assert_eq!(info.paid_by.customer_paid, Some(Fen(800)), "{provider}");
        let order = sim.ledger.order(&req.out_trade_no).expect("order");
        assert_eq!(order.operator.as_deref(), Some("alice"), "{provider}");
    }
    // Without a cashier, the configured operator (the merchant number) goes.
    let req = request_of(Provider::Unionpay, Behaviour::PaysAtOnce, 72, 1000);
    assert!(matches!(gw.pay(&req).await, PayAnswer::Paid(_)));
    let order = sim.ledger.order(&req.out_trade_no).expect("order");
    assert!(
        order.operator.as_deref().is_some_and(|o| o != "alice"),
        "{order:?}"
    );
}
