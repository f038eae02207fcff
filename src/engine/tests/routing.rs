//! Routing: each provider's codes go by the channel the config names (an
//! acquirer may carry several providers); an attempt, its revoke and its
//! refunds stay with the channel its pay request went through.

use super::*;

const UNIONPAY_CODE: &str = "6212345678901234567";

#[tokio::test(start_paused = true)]
async fn a_provider_routed_to_an_acquirer_is_charged_there_and_the_payment_says_so() {
    let own = Scripted::new(Provider::Wechat);
    let acquirer = Scripted::channel_named("acquirer", &[Provider::Wechat, Provider::Unionpay]);
    let t = till_routed(
        vec![own.clone(), acquirer.clone()],
        &[(Provider::Wechat, "acquirer")],
        tempfile::tempdir().expect("tempdir"),
    );
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(
        (p.provider, p.channel.as_deref()),
        (Some(Provider::Wechat), Some("acquirer"))
    );
    assert_eq!(own.sent().len(), 0, "the wallet's own gateway saw nothing");
    let u = charged(&t, "A2", UNIONPAY_CODE).await;
    assert_eq!(
        (u.provider, u.channel.as_deref()),
        (Some(Provider::Unionpay), Some("acquirer"))
    );
    assert_eq!(acquirer.count(|s| matches!(s, Sent::Pay(_))), 2);
    // No channel carries Alipay here: refused before anything is sent.
    let e = t
        .engine
        .charge(charge("A3", Some(ALIPAY_CODE)))
        .await
        .expect_err("no alipay channel");
    assert_eq!(code(&e), 1003);
    assert_eq!(t.engine.routing().get(&Provider::Wechat), Some(&"acquirer"));
}

#[tokio::test(start_paused = true)]
async fn without_routes_each_provider_goes_by_its_own_channel_first() {
    let own = Scripted::new(Provider::Wechat);
    let acquirer = Scripted::channel_named("acquirer", &[Provider::Wechat, Provider::Unionpay]);
    let t = till_routed(
        vec![own.clone(), acquirer.clone()],
        &[],
        tempfile::tempdir().expect("tempdir"),
    );
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.channel.as_deref(), Some("wechat"));
    let u = charged(&t, "A2", UNIONPAY_CODE).await;
    assert_eq!(u.channel.as_deref(), Some("acquirer"));
    assert_eq!(own.count(|s| matches!(s, Sent::Pay(_))), 1);
    assert_eq!(acquirer.count(|s| matches!(s, Sent::Pay(_))), 1);
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_an_attempt_goes_on_with_the_channel_it_was_sent_through() {
    // Sent through the acquirer; the config now routes WeChat directly.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite");
    {
        let j = Journal::open(&path, "T1").expect("journal");
        j.ensure_sale("A1", Fen(500), "x", None).expect("sale");
        let code = crate::gateway::recognise(WECHAT_CODE).expect("code");
        j.begin_attempt_on("A1", &code, "acquirer")
            .expect("attempt");
    }
    let own = Scripted::new(Provider::Wechat);
    let acquirer = Scripted::channel_named("acquirer", &[Provider::Wechat])
        .queries([QueryAnswer::Paid(paid_info())]);
    let t = till_routed(
        vec![own.clone(), acquirer.clone()],
        &[(Provider::Wechat, "wechat")],
        dir,
    );
    let p = recover_and_wait(&t).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(p.channel.as_deref(), Some("acquirer"));
    assert_eq!(
        acquirer.sent().first().map(|s| s.0.clone()),
        Some(Sent::Query)
    );
    assert!(
        own.sent().is_empty(),
        "never asked the wrong gateway about it"
    );
    // Its refund goes there too.
    let r = t.engine.refund("A1", "R1", 100, None, None).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(acquirer.count(|s| matches!(s, Sent::Refund(_))), 1);
    assert!(own.sent().is_empty());
}
