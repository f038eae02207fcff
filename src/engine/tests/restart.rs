//! Recovery at start-up (payment-rules.md §15): asked first, polled to the
//! original deadline, revoked only when unpaid.

use super::*;

#[tokio::test(start_paused = true)]
async fn recovery_of_a_submitting_attempt_queries_and_finds_it_paid() {
    let gw = Scripted::new(Provider::Wechat).queries([QueryAnswer::Paid(paid_info())]);
    let t = till_with(
        vec![gw.clone()],
        crashed_journal("submitting", Duration::from_secs(2), Provider::Wechat),
    );
    let mut events = t.engine.subscribe();
    let p = recover_and_wait(&t).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    // A POS listening when tillpay restarts hears the end as from a live sale.
    let told = payment_event(&mut events, "paid").await;
    assert_eq!(told["order_no"], "A1");
    assert!(told["seq"].as_u64().is_some_and(|s| s > 0), "{told}");
    assert_eq!(
        gw.sent().first().map(|s| s.0.clone()),
        Some(Sent::Query),
        "never resubmits the pay"
    );
    assert_eq!(gw.count(|s| matches!(s, Sent::Pay(_))), 0);
}

#[tokio::test(start_paused = true)]
async fn recovery_of_a_paying_attempt_polls_to_the_original_deadline() {
    let gw = Scripted::new(Provider::Alipay);
    let t = till_with(
        vec![gw.clone()],
        crashed_journal("paying", Duration::from_secs(20), Provider::Alipay),
    );
    let p = recover_and_wait(&t).await;
    assert_eq!(p.status, PaymentStatus::Revoked);
    let revoke_at = gw.first(&Sent::Revoke);
    let revoke_at = revoke_at.expect("revoked");
    assert!(
        revoke_at <= Duration::from_secs(11),
        "deadline counted from submission: {revoke_at:?}"
    );
    assert!(revoke_at >= Duration::from_secs(9), "{revoke_at:?}");
}

#[tokio::test(start_paused = true)]
async fn recovery_past_the_deadline_asks_first_then_revokes_what_is_unpaid() {
    for phase in ["submitting", "paying", "revoking"] {
        let gw = Scripted::new(Provider::Wechat)
            .revokes([RevokeAnswer::Revoked(RevokeEffect::Refunded)]);
        let t = till_with(
            vec![gw.clone()],
            crashed_journal(phase, Duration::from_secs(3600), Provider::Wechat),
        );
        let p = recover_and_wait(&t).await;
        assert_eq!(p.status, PaymentStatus::Revoked, "{phase}");
        assert_eq!(
            gw.sent().iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
            vec![Sent::Query, Sent::Revoke],
            "{phase}: asked first, and the customer is still confirming"
        );
        let (_, attempts) = t.engine.journal().sale("A1").expect("read").expect("sale");
        assert_eq!(attempts[0].revoke_effect, Some(RevokeEffect::Refunded));
    }
}

#[tokio::test(start_paused = true)]
async fn a_payment_that_succeeded_while_the_till_was_down_is_paid_even_past_the_deadline() {
    // The success answer was on its way when the till died; it restarts
    // an hour later. The query finds the payment: paid, nothing revoked.
    for phase in ["submitting", "paying"] {
        let gw = Scripted::new(Provider::Wechat).queries([QueryAnswer::Paid(paid_info())]);
        let t = till_with(
            vec![gw.clone()],
            crashed_journal(phase, Duration::from_secs(3600), Provider::Wechat),
        );
        let p = recover_and_wait(&t).await;
        assert_eq!(p.status, PaymentStatus::Paid, "{phase}");
        assert_eq!(p.transaction_id.as_deref(), Some("4200000000001"));
        assert_eq!(
            gw.count(|s| *s == Sent::Revoke),
            0,
            "{phase}: the money is kept"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn recovery_without_the_provider_needs_attention() {
    let gw = Scripted::new(Provider::Alipay);
    let t = till_with(
        vec![gw],
        crashed_journal("paying", Duration::from_secs(5), Provider::Wechat),
    );
    t.engine.recover().await.expect("recover");
    assert_eq!(
        t.engine.payment("A1").await.expect("p").status,
        PaymentStatus::NeedsAttention
    );
}

#[tokio::test(start_paused = true)]
async fn recovery_cancels_a_sale_left_waiting_for_a_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let j = Journal::open(&dir.path().join("journal.sqlite"), "T1").expect("journal");
        j.ensure_sale("W1", Fen(500), "x", None).expect("sale");
    }
    let t = till_with(vec![Scripted::new(Provider::Wechat)], dir);
    assert_eq!(t.engine.recover().await.expect("recover"), 0);
    let p = t.engine.payment("W1").await.expect("p");
    assert_eq!(p.status, PaymentStatus::Cancelled);
    let why = p.error.map(|e| e.code);
    assert_eq!(why.as_deref(), Some("DAEMON_RESTARTED"));
}

#[tokio::test(start_paused = true)]
async fn a_pay_that_never_reached_the_gateway_ends_unpaid_once_the_pay_window_has_passed() {
    // The till died before its pay request left. Alipay has never heard of
    // the order: the query finds nothing, and so does the cancel.
    let gone = || RevokeAnswer::NotFound(note("ACQ.TRADE_NOT_EXIST"));
    let nothing = || QueryAnswer::Pending {
        note: note("ACQ.TRADE_NOT_EXIST"),
        user_paying: false,
    };
    let gw = Scripted::new(Provider::Alipay)
        .queries(std::iter::repeat_n(nothing(), 200))
        .revokes([gone(), gone()]);
    let ago = Duration::from_secs(40);
    let t = till_with(
        vec![gw.clone()],
        crashed_journal("submitting", ago, Provider::Alipay),
    );
    let p = recover_and_wait(&t).await;
    assert_eq!(p.status, PaymentStatus::Revoked, "{p:?}");
    let revokes = gw.times(&Sent::Revoke);
    assert_eq!(revokes.len(), 2, "asked again once the window was over");
    // The second cancel waits until the pay window since the request has
    // passed: a pay still on its way would have landed by then.
    let window_end = crate::machine::PAY_WINDOW - ago;
    assert!(revokes[1] >= window_end, "{revokes:?}");
    let (_, attempts) = t.engine.journal().sale("A1").expect("read").expect("sale");
    assert_eq!(attempts[0].revoke_effect, Some(RevokeEffect::Closed));
    assert_eq!(attempts[0].state.revoke_tries, 0, "not counted as failures");
    assert!(t.engine.journal().attention().expect("read").is_empty());
}
