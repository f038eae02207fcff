//! The paths of a sale: paid, confirmed on the phone, revoked at the
//! deadline, declined, cancelled, refused codes, and the first refunds.

use super::*;

#[tokio::test(start_paused = true)]
async fn paid_at_once() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(p.transaction_id.as_deref(), Some("4200000000001"));
    assert_eq!(p.out_trade_no.as_deref(), Some("T1_A1_1"));
    assert_eq!(p.provider, Some(Provider::Wechat));
    assert_eq!(gw.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn customer_confirms_after_two_polls() {
    let gw = Scripted::new(Provider::Alipay)
        .pays(user_paying("10003"))
        .queries([pending(), QueryAnswer::Paid(paid_info())]);
    let t = till(&gw);
    let mut events = t.engine.subscribe();
    let p = charged(&t, "A1", ALIPAY_CODE).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    let sent = gw.sent();
    assert_eq!(
        sent.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        vec![Sent::Pay("T1_A1_1".into()), Sent::Query, Sent::Query]
    );
    assert_eq!(
        sent[1].1,
        Duration::from_secs(5),
        "first poll after poll_interval"
    );
    assert_eq!(sent[2].1, Duration::from_secs(10));
    let mut seen = Vec::new();
    while let Ok(n) = events.try_recv() {
        seen.push(n.params()["event"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(seen, ["submitted", "user_paying", "user_paying", "paid"]);
}

#[tokio::test(start_paused = true)]
async fn never_confirms_is_revoked_at_the_deadline() {
    let gw = Scripted::new(Provider::Alipay).pays(user_paying("10003"));
    let t = till(&gw);
    let p = charged(&t, "A1", ALIPAY_CODE).await;
    assert_eq!(p.status, PaymentStatus::Revoked);
    let sent = gw.sent();
    let (last, at) = sent.last().expect("calls");
    assert_eq!(*last, Sent::Revoke);
    assert_eq!(*at, Duration::from_secs(30));
    assert_eq!(gw.count(|s| *s == Sent::Query), 6);
}

#[tokio::test(start_paused = true)]
async fn unknown_pay_answer_then_query_paid_is_paid() {
    let gw = Scripted::new(Provider::Wechat)
        .pays(PayAnswer::Unknown {
            note: note("SYSTEMERROR"),
            user_paying: false,
        })
        .queries([QueryAnswer::Paid(paid_info())]);
    let t = till(&gw);
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(gw.count(|s| *s == Sent::Revoke), 0);
}

#[tokio::test(start_paused = true)]
async fn definite_failure_is_failed_with_the_gateway_code_and_a_new_attempt_may_follow() {
    let gw = Scripted::new(Provider::Wechat).pays(PayAnswer::Failed {
        note: note("NOTENOUGH"),
        config_error: false,
    });
    let t = till(&gw);
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::Failed);
    assert_eq!(p.error.as_ref().map(|e| e.code.as_str()), Some("NOTENOUGH"));
    let p = t
        .engine
        .charge(charge("A1", Some("104567890123456789")))
        .await
        .expect("charge");
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(p.out_trade_no.as_deref(), Some("T1_A1_2"));
}

#[tokio::test(start_paused = true)]
async fn a_scan_timeout_ends_cancelled_with_its_own_code_and_a_new_charge_clears_it() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let p = t.engine.charge(charge("A1", None)).await.expect("charge");
    assert_eq!(p.status, PaymentStatus::Cancelled);
    let why = p.error.map(|e| e.code);
    assert_eq!(
        why.as_deref(),
        Some("SCAN_TIMED_OUT"),
        "not the cashier's cancel"
    );
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(p.error, None);
}

#[tokio::test(start_paused = true)]
async fn cancel_before_any_scan_is_cancelled() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let pending_charge = spawn_charge(&t, "A1", None);
    tokio::task::yield_now().await;
    wait_armed(&t).await;
    assert_eq!(
        t.engine.payment("A1").await.expect("p").status,
        PaymentStatus::WaitingScan
    );
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(p.status, PaymentStatus::Cancelled);
    let p = pending_charge.await.expect("join").expect("charge");
    assert_eq!(p.status, PaymentStatus::Cancelled);
    let why = p.error.map(|e| e.code);
    assert_eq!(why.as_deref(), Some("CANCELLED_BY_CASHIER"));
    assert!(gw.sent().is_empty());
    assert!(matches!(
        t.engine
            .scan(crate::gateway::recognise(WECHAT_CODE).expect("code"))
            .await,
        ScanOutcome::Ignored(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_scan_reaches_the_waiting_charge_and_a_second_charge_is_busy() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let pending_charge = spawn_charge(&t, "A1", None);
    wait_armed(&t).await;
    let busy = t.engine.charge(charge("B2", None)).await;
    assert_eq!(busy.map_err(|e| code(&e)), Err(1001));
    let out = t
        .engine
        .scan(crate::gateway::recognise(WECHAT_CODE).expect("code"))
        .await;
    assert_eq!(
        out,
        ScanOutcome::Taken {
            order_no: "A1".into()
        }
    );
    let p = pending_charge.await.expect("join").expect("charge");
    assert_eq!(p.status, PaymentStatus::Paid);
}

#[tokio::test(start_paused = true)]
async fn wechat_cancel_at_3s_waits_until_15s_before_revoking() {
    let gw = Scripted::new(Provider::Wechat).pays(user_paying("USERPAYING"));
    let t = till(&gw);
    let pending_charge = spawn_charge(&t, "A1", Some(WECHAT_CODE));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(p.status, PaymentStatus::Revoked);
    let revoke_at = gw.first(&Sent::Revoke);
    assert_eq!(revoke_at, Some(Duration::from_secs(15)));
    assert!(gw.count(|s| *s == Sent::Query) >= 2, "polls meanwhile");
    assert_eq!(
        pending_charge.await.expect("join").expect("charge").status,
        PaymentStatus::Revoked
    );
}

#[tokio::test(start_paused = true)]
async fn alipay_cancel_while_paying_revokes_at_once() {
    let gw = Scripted::new(Provider::Alipay).pays(user_paying("10003"));
    let t = till(&gw);
    let _charge = spawn_charge(&t, "A1", Some(ALIPAY_CODE));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(p.status, PaymentStatus::Revoked);
    let revoke_at = gw.first(&Sent::Revoke);
    assert_eq!(revoke_at, Some(Duration::from_secs(3)));
}

#[tokio::test(start_paused = true)]
async fn a_paid_order_is_never_charged_again() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(WECHAT_CODE)))
        .await
        .expect("charge");
    let again = t
        .engine
        .charge(charge("A1", Some("104567890123456789")))
        .await
        .expect("charge");
    assert_eq!(again.status, PaymentStatus::Paid);
    assert_eq!(again.out_trade_no.as_deref(), Some("T1_A1_1"));
    assert_eq!(gw.count(|s| matches!(s, Sent::Pay(_))), 1);
    let other_amount = ChargeRequest {
        amount: 99,
        ..charge("A1", None)
    };
    assert_eq!(
        t.engine.charge(other_amount).await.map_err(|e| code(&e)),
        Err(1002)
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_code_for_a_sale_in_flight_is_an_order_conflict() {
    let gw = Scripted::new(Provider::Wechat).pays(user_paying("USERPAYING"));
    let t = till(&gw);
    let _charge = spawn_charge(&t, "A1", Some(WECHAT_CODE));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = t
        .engine
        .charge(charge("A1", Some("104567890123456789")))
        .await;
    assert_eq!(second.map_err(|e| code(&e)), Err(1002));
    assert_eq!(gw.count(|s| matches!(s, Sent::Pay(_))), 1);
}

#[tokio::test(start_paused = true)]
async fn a_code_of_an_unconfigured_provider_is_refused() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let r = t.engine.charge(charge("A1", Some(ALIPAY_CODE))).await;
    assert_eq!(r.map_err(|e| code(&e)), Err(1003));
    let r = t.engine.charge(charge("A1", Some("6901234567892"))).await;
    assert_eq!(r.map_err(|e| code(&e)), Err(-32602));
}

#[tokio::test(start_paused = true)]
async fn refunds_are_bounded_and_idempotent() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(WECHAT_CODE)))
        .await
        .expect("charge");
    let r = t
        .engine
        .refund("A1", "R1", 1000, None, None)
        .await
        .expect("refund");
    assert_eq!(r.status, "refunded");
    let again = t
        .engine
        .refund("A1", "R1", 1000, None, None)
        .await
        .expect("same refund");
    assert_eq!(again.status, "refunded");
    assert_eq!(
        gw.count(|s| matches!(s, Sent::Refund(_))),
        1,
        "a retry with the same refund_no sends nothing"
    );
    let too_much = t.engine.refund("A1", "R2", 235, None, None).await;
    assert_eq!(too_much.map_err(|e| code(&e)), Err(1006));
    let p = t.engine.payment("A1").await.expect("payment");
    assert_eq!(p.refunded_amount, 1000);
    // The gateway refuses one: 1006 with its reason, and the same again.
    gw.refund
        .lock()
        .expect("lock")
        .push_back(RefundAnswer::Failed(note("NOTENOUGH")));
    for _ in 0..2 {
        let e = t
            .engine
            .refund("A1", "R3", 100, None, None)
            .await
            .expect_err("refused");
        assert_eq!(code(&e), 1006);
        assert!(e.to_string().contains("NOTENOUGH"), "{e}");
    }
    assert_eq!(gw.count(|s| matches!(s, Sent::Refund(_))), 2);
    let p = t.engine.payment("A1").await.expect("payment");
    assert_eq!(p.refunded_amount, 1000, "a refused refund moved nothing");
}

#[tokio::test(start_paused = true)]
async fn a_revoked_attempt_is_never_refunded() {
    let gw = Scripted::new(Provider::Alipay).pays(user_paying("10003"));
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(ALIPAY_CODE)))
        .await
        .expect("charge");
    let r = t.engine.refund("A1", "R1", 100, None, None).await;
    assert_eq!(r.map_err(|e| code(&e)), Err(1006));
}
