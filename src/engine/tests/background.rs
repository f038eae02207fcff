//! Revokes that go on in the background (payment-rules.md §12): the POS
//! hears `needs_attention` after `revoke_max_attempts`, and a revoke that
//! lands later settles the sale; they stop after 24 hours, on an operator's
//! verdict, and resume after a restart.

use super::*;

fn retry() -> RevokeAnswer {
    RevokeAnswer::Retry(note("SYSTEMERROR"))
}

#[tokio::test(start_paused = true)]
async fn a_revoke_that_lands_after_needs_attention_settles_the_sale_revoked() {
    // The gateway asks to retry fifteen times: five revokes give the POS
    // its answer, ten more run in the background, the sixteenth lands.
    let gw = Scripted::new(Provider::Wechat)
        .pays(user_paying("USERPAYING"))
        .revokes((0..15).map(|_| retry()));
    let t = till(&gw);
    let mut events = t.engine.subscribe();
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::NeedsAttention, "{p:?}");
    assert_eq!(gw.count(|s| *s == Sent::Revoke), 5, "revoke_max_attempts");
    let listed = t.engine.journal().attention().expect("attention");
    assert!(listed[0].state.background_revoke, "the operator sees it");
    let told = payment_event(&mut events, "revoked").await;
    assert_eq!(told["order_no"], "A1");
    assert_eq!(gw.count(|s| *s == Sent::Revoke), 16);
    let p = t.engine.payment("A1").await.expect("payment");
    assert_eq!(p.status, PaymentStatus::Revoked, "{p:?}");
    assert!(t
        .engine
        .journal()
        .attention()
        .expect("attention")
        .is_empty());
    // Spaced out: from the give-up to the landing took the doubling waits.
    let revokes = gw.times(&Sent::Revoke);
    let gaps: Vec<u64> = revokes
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs())
        .collect();
    assert_eq!(gaps, [2, 2, 2, 2, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60]);
    // The sale is open again: the customer may pay another way.
    let p = charged(&t, "A1", "134567890123450000").await;
    assert_eq!(p.status, PaymentStatus::Paid);
}

#[tokio::test(start_paused = true)]
async fn background_revokes_stop_after_24_hours_and_stay_with_the_operator() {
    let gw = Scripted::new(Provider::Alipay)
        .pays(user_paying("10003"))
        .revokes((0..5000).map(|_| retry()));
    let t = till(&gw);
    let p = charged(&t, "A1", ALIPAY_CODE).await;
    assert_eq!(p.status, PaymentStatus::NeedsAttention);
    tokio::time::sleep(Duration::from_secs(25 * 3600)).await;
    let sent = gw.count(|s| *s == Sent::Revoke);
    // One a minute for a day, at most.
    assert!((1400..=1450).contains(&sent), "{sent} revokes");
    let listed = t.engine.journal().attention().expect("attention");
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].state.background_revoke, "stopped");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        gw.count(|s| *s == Sent::Revoke),
        sent,
        "nothing after the day"
    );
}

#[tokio::test(start_paused = true)]
async fn an_operator_verdict_stops_the_background_revokes() {
    let gw = Scripted::new(Provider::Wechat)
        .pays(user_paying("USERPAYING"))
        .revokes((0..100).map(|_| retry()));
    let t = till(&gw);
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::NeedsAttention);
    // Between two background revokes (the first waits 4 s).
    let p = t
        .engine
        .resolve(ResolveRequest {
            order_no: "A1".into(),
            as_paid: true,
            transaction_id: Some("4200000000777".into()),
            paid_at: Some("2026-11-20T09:30:00+08:00".into()),
            operator: "alice".into(),
            note: "portal shows paid; the customer left with the goods".into(),
        })
        .await
        .expect("resolved");
    assert_eq!(p.status, PaymentStatus::Paid);
    let before = gw.count(|s| *s == Sent::Revoke);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        gw.count(|s| *s == Sent::Revoke),
        before,
        "a payment the operator kept is never revoked"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_resumes_the_background_revokes() {
    let gw = Scripted::new(Provider::Alipay);
    let dir = crashed_journal(
        "needs_attention",
        Duration::from_secs(600),
        Provider::Alipay,
    );
    let conn = rusqlite::Connection::open(dir.path().join("journal.sqlite")).expect("open");
    conn.execute(
        "UPDATE attempts SET background_revoke = 1, revoke_tries = 9",
        [],
    )
    .expect("journaled");
    let t = till_with(vec![gw.clone()], dir);
    assert_eq!(t.engine.recover().await.expect("recover"), 1);
    let mut p = t.engine.payment("A1").await.expect("payment");
    for _ in 0..100 {
        if p.status != PaymentStatus::NeedsAttention {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        p = t.engine.payment("A1").await.expect("payment");
    }
    assert_eq!(p.status, PaymentStatus::Revoked, "{p:?}");
    assert_eq!(
        gw.sent().first().map(|(s, _)| s.clone()),
        Some(Sent::Revoke)
    );
}
