//! Races and hostile input found by second readings: cancels against
//! calls in flight, used codes, payments that are not this sale's.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_cancel_during_an_in_flight_query_still_revokes() {
    let gw = Scripted::new(Provider::Alipay).pays(user_paying("10003"));
    *gw.query_delay.lock().expect("lock") = Duration::from_secs(2);
    let t = till(&gw);
    let charge_task = spawn_charge(&t, "A1", Some(ALIPAY_CODE));
    // The first query goes out at 5 s and answers at 7 s: cancel at 6 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(
        p.status,
        PaymentStatus::Revoked,
        "cancel answers once final"
    );
    assert_eq!(gw.count(|s| *s == Sent::Revoke), 1);
    assert_eq!(
        charge_task.await.expect("join").expect("charge").status,
        PaymentStatus::Revoked
    );
}

#[tokio::test]
async fn a_cancel_racing_the_start_of_an_attempt_never_hides_a_payment() {
    for i in 0..20u32 {
        let gw = Scripted::new(Provider::Alipay);
        let t = till(&gw);
        let order = format!("R{i}");
        let charge_task = spawn_charge(&t, &order, Some(ALIPAY_CODE));
        for _ in 0..i {
            tokio::task::yield_now().await;
        }
        let cancelled = t.engine.cancel(&order).await;
        let charged = charge_task.await.expect("join");
        let paid_at_gateway = gw.count(|s| matches!(s, Sent::Pay(_))) == 1;
        let revoked = gw.count(|s| *s == Sent::Revoke) == 1;
        let status = charged
            .map(|p| p.status)
            .or_else(|_| cancelled.clone().map(|p| p.status));
        match status {
            Ok(PaymentStatus::Cancelled) => {
                assert!(!paid_at_gateway, "{i}: cancelled, yet a pay was sent")
            }
            Ok(PaymentStatus::Revoked) => assert!(revoked, "{i}"),
            // The cancel came after the sale was paid: it stays paid.
            Ok(PaymentStatus::Paid) => assert!(paid_at_gateway && !revoked, "{i}"),
            other => panic!("{i}: {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_sale_charged_again_shows_waiting_scan_then_cancelled() {
    let gw = Scripted::new(Provider::Wechat).pays(PayAnswer::Failed {
        note: note("NOTENOUGH"),
        config_error: false,
    });
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(WECHAT_CODE)))
        .await
        .expect("charge");
    let again = spawn_charge(&t, "A1", None);
    wait_armed(&t).await;
    assert_eq!(
        t.engine.payment("A1").await.expect("p").status,
        PaymentStatus::WaitingScan
    );
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(p.status, PaymentStatus::Cancelled);
    // Why this round ended, not why the earlier attempt failed.
    let why = p.error.map(|e| e.code);
    assert_eq!(why.as_deref(), Some("CANCELLED_BY_CASHIER"));
    assert_eq!(
        again.await.expect("join").expect("charge").status,
        PaymentStatus::Cancelled
    );
}

#[tokio::test(start_paused = true)]
async fn hostile_refunds_are_rejected_without_stopping_the_till() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(WECHAT_CODE)))
        .await
        .expect("charge");
    t.engine
        .refund("A1", "R1", 100, None, None)
        .await
        .expect("refund");
    let huge = t.engine.refund("A1", "R2", u64::MAX - 50, None, None).await;
    assert_eq!(huge.map_err(|e| code(&e)), Err(1006));
    assert!(
        t.engine.journal_ok(),
        "a bad request is not a journal failure"
    );
    let p = t
        .engine
        .charge(charge("B1", Some("104567890123456789")))
        .await
        .expect("charges go on");
    assert_eq!(p.status, PaymentStatus::Paid);
}

#[tokio::test(start_paused = true)]
async fn a_refund_not_found_after_an_unknown_answer_is_sent_again_under_its_number() {
    let gw = Scripted::new(Provider::Alipay);
    gw.refund
        .lock()
        .expect("lock")
        .push_back(RefundAnswer::Unknown(note("TIMEOUT")));
    gw.refund_query
        .lock()
        .expect("lock")
        .push_back(RefundAnswer::NotFound(note("ACQ.TRADE_NOT_EXIST")));
    let t = till(&gw);
    t.engine
        .charge(charge("A1", Some(ALIPAY_CODE)))
        .await
        .expect("charge");
    let mut events = t.engine.subscribe();
    let r = t
        .engine
        .refund("A1", "R1", 100, None, None)
        .await
        .expect("refund");
    assert_eq!(r.status, "processing", "unknown is not failed: {r:?}");
    // The daemon asks, finds nothing, and sends the same refund again.
    let ended = refund_event(&mut events).await;
    assert_eq!(ended["status"], "refunded");
    assert_eq!(ended["refund_no"], "R1");
    let sent: Vec<_> = gw
        .sent()
        .into_iter()
        .filter_map(|(s, _)| match s {
            Sent::Refund(no) => Some(no),
            _ => None,
        })
        .collect();
    assert_eq!(sent, ["T1_RR1", "T1_RR1"], "the same number both times");
    let p = t.engine.payment("A1").await.expect("p");
    assert_eq!(p.refunded_amount, 100, "refunded once");
}

#[tokio::test(start_paused = true)]
async fn a_code_used_before_is_never_sent_again() {
    // Payment codes are single-use at both gateways: a code already given to
    // an attempt (here: paid for A1) is refused for any other sale.
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::Paid);

    // Typed in by hand: an invalid-params error naming auth_code.
    let typed = t.engine.charge(charge("B2", Some(WECHAT_CODE))).await;
    let Err(e) = typed else {
        panic!("a used code was accepted: {typed:?}")
    };
    assert_eq!(code(&e), -32602);
    assert!(
        e.to_string().contains("auth_code") && e.to_string().contains("A1"),
        "{e}"
    );
    assert!(!e.to_string().contains(WECHAT_CODE), "{e}");

    // Scanned: ignored with the reason, and the charge keeps waiting for a
    // fresh code.
    let waiting = spawn_charge(&t, "C3", None);
    wait_armed(&t).await;
    let again = t
        .engine
        .scan(crate::gateway::recognise(WECHAT_CODE).expect("code"))
        .await;
    let ScanOutcome::Ignored(why) = again else {
        panic!("a used code was taken: {again:?}")
    };
    assert!(why.contains("already used") && why.contains("A1"), "{why}");
    assert_eq!(t.engine.counts().await.0.as_deref(), Some("C3"));
    let fresh = t
        .engine
        .scan(crate::gateway::recognise("134567890123450000").expect("code"))
        .await;
    assert_eq!(
        fresh,
        ScanOutcome::Taken {
            order_no: "C3".into()
        }
    );
    let p = waiting.await.expect("join").expect("charge");
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(
        gw.count(|s| matches!(s, Sent::Pay(_))),
        2,
        "the used code was sent once only"
    );
}

#[tokio::test(start_paused = true)]
async fn a_payment_of_another_amount_needs_an_operator_and_the_pos_is_told_why() {
    let gw = Scripted::new(Provider::Alipay).pays(PayAnswer::Paid(PaidInfo {
        paid_by: Default::default(),
        amount: Some(Fen(1)),
        ..paid_info()
    }));
    let t = till(&gw);
    let p = charged(&t, "A1", ALIPAY_CODE).await;
    assert_eq!(p.status, PaymentStatus::NeedsAttention, "{p:?}");
    let error = p.error.expect("an error says why");
    assert_eq!(error.code, "AMOUNT_MISMATCH");
    assert_eq!(
        p.transaction_id.as_deref(),
        Some("4200000000001"),
        "kept for the operator"
    );
    let (_, attempts) = t.engine.journal().sale("A1").expect("read").expect("sale");
    assert_eq!(attempts[0].booked, Some(Fen(1)), "kept for reconciliation");
    assert_eq!(
        gw.sent().iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
        vec![Sent::Pay("T1_A1_1".into())],
        "nothing revoked: it may be another sale's payment"
    );
    // The same amount is simply paid.
    let gw = Scripted::new(Provider::Alipay).pays(PayAnswer::Paid(PaidInfo {
        paid_by: Default::default(),
        amount: Some(Fen(1234)),
        ..paid_info()
    }));
    let t = till(&gw);
    assert_eq!(
        charged(&t, "A1", ALIPAY_CODE).await.status,
        PaymentStatus::Paid
    );
}

#[tokio::test(start_paused = true)]
async fn resending_the_charge_of_a_paid_sale_with_its_code_answers_paid() {
    // The POS lost the answer and sends the very same request again.
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    assert_eq!(
        charged(&t, "A1", WECHAT_CODE).await.status,
        PaymentStatus::Paid
    );
    let again = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(again.status, PaymentStatus::Paid);
    assert_eq!(again.out_trade_no.as_deref(), Some("T1_A1_1"));
    assert_eq!(gw.count(|s| matches!(s, Sent::Pay(_))), 1, "charged once");
}

#[tokio::test(start_paused = true)]
async fn a_code_whose_pay_request_never_left_is_still_good() {
    // Connection refused: the gateway never saw the code, so the cashier's
    // retry with the same code goes through.
    let gw = Scripted::new(Provider::Wechat).pays(PayAnswer::NotSent(note("NOT_SENT")));
    let t = till(&gw);
    assert_eq!(
        charged(&t, "A1", WECHAT_CODE).await.status,
        PaymentStatus::Failed
    );
    let retry = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(retry.status, PaymentStatus::Paid);
    assert_eq!(retry.out_trade_no.as_deref(), Some("T1_A1_2"));
}

#[tokio::test(start_paused = true)]
async fn a_charge_armed_before_a_journal_failure_sends_nothing() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let waiting = spawn_charge(&t, "B1", None);
    wait_armed(&t).await;
    // Another attempt's journal write failed meanwhile: fail-stop.
    t.engine
        .fail_stop(&JournalError::Internal("disk I/O error".into()));
    let _ = t
        .engine
        .scan(crate::gateway::recognise(WECHAT_CODE).expect("code"))
        .await;
    let r = waiting.await.expect("join");
    assert_eq!(r.map_err(|e| code(&e)), Err(1004));
    assert!(gw.sent().is_empty(), "nothing reached the gateway");
}

#[tokio::test(start_paused = true)]
async fn an_order_number_paid_long_before_this_attempt_is_another_sales() {
    // "Already paid" to a first and only pay request: the query shows an
    // old payment of the same amount under this out_trade_no (a till id
    // shared by two tills, a replaced journal). Not this sale's money.
    // One pay request answered ORDERPAID, then a query showing a payment
    // of the sale's amount made at `paid_at`.
    let sale = |paid_at: String| {
        let gw = Scripted::new(Provider::Wechat)
            .pays(PayAnswer::OrderNumberUsed(note("ORDERPAID")))
            .queries([QueryAnswer::Paid(PaidInfo {
                paid_by: Default::default(),
                paid_at: Some(paid_at),
                amount: Some(Fen(1234)),
                ..paid_info()
            })]);
        let t = till(&gw);
        (gw, t)
    };
    let (gw, t) = sale("2025-01-02T10:00:00+08:00".into());
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::NeedsAttention, "{p:?}");
    assert_eq!(
        p.error.map(|e| e.code).as_deref(),
        Some("OUT_TRADE_NO_COLLISION")
    );
    assert_eq!(
        gw.count(|s| *s == Sent::Revoke),
        0,
        "the old sale is left alone"
    );
    // The same "already paid" with a payment made just now is followed.
    let (_, t) = sale(chrono::Local::now().to_rfc3339());
    assert_eq!(
        charged(&t, "A1", WECHAT_CODE).await.status,
        PaymentStatus::Paid
    );
}
