use super::*;

fn code(b: Behaviour, serial: u64) -> String {
    b.code(Provider::Wechat, serial)
}

#[test]
fn a_code_is_single_use_and_a_retry_sees_the_same_order() {
    let l = Ledger::new(Duration::from_millis(1));
    let c = code(Behaviour::PaysAtOnce, 1);
    assert!(matches!(
        l.pay(Provider::Wechat, "o1", Fen(100), &c, "T1", "x"),
        PayOutcome::Paid(_)
    ));
    assert!(matches!(
        l.pay(Provider::Wechat, "o1", Fen(100), &c, "T1", "x"),
        PayOutcome::Existing {
            mismatch: false,
            ..
        }
    ));
    assert_eq!(
        l.pay(Provider::Wechat, "o2", Fen(100), &c, "T1", "x"),
        PayOutcome::CodeUsed
    );
    assert_eq!(l.money_kept("o1"), 100);
}

#[test]
fn revoke_refunds_a_paid_order_and_closes_an_open_one() {
    let l = Ledger::new(Duration::from_millis(1));
    l.pay(
        Provider::Alipay,
        "p",
        Fen(100),
        &code(Behaviour::PaysAtOnce, 2),
        "T1",
        "x",
    );
    l.pay(
        Provider::Alipay,
        "u",
        Fen(100),
        &code(Behaviour::NeverConfirms, 3),
        "T1",
        "x",
    );
    assert_eq!(
        l.revoke(Provider::Alipay, "p", None),
        RevokeOutcome::Done(RevokeEffect::Refunded)
    );
    assert_eq!(
        l.revoke(Provider::Alipay, "u", None),
        RevokeOutcome::Done(RevokeEffect::Closed)
    );
    assert_eq!(l.money_kept("p"), 0);
    assert_eq!(l.order("p").map(|o| o.charges), Some(1));
    assert_eq!(
        l.revoke(Provider::Alipay, "ghost", None),
        RevokeOutcome::Done(RevokeEffect::Closed)
    );
}

#[test]
fn revoke_retries_as_the_behaviour_asks() {
    let l = Ledger::new(Duration::from_millis(1));
    l.pay(
        Provider::Wechat,
        "r",
        Fen(5),
        &code(Behaviour::RevokeRetries(2), 4),
        "T1",
        "x",
    );
    assert_eq!(l.revoke(Provider::Wechat, "r", None), RevokeOutcome::Retry);
    assert_eq!(l.revoke(Provider::Wechat, "r", None), RevokeOutcome::Retry);
    assert_eq!(
        l.revoke(Provider::Wechat, "r", None),
        RevokeOutcome::Done(RevokeEffect::Closed)
    );
}

#[test]
fn a_customer_confirms_after_the_time_given() {
    let l = Ledger::new(Duration::from_millis(20));
    l.pay(
        Provider::Wechat,
        "c",
        Fen(5),
        &code(Behaviour::ConfirmsAfter(1), 5),
        "T1",
        "x",
    );
    assert_eq!(l.order("c").map(|o| o.state), Some(OrderState::Open));
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(l.order("c").map(|o| o.state), Some(OrderState::Paid));
}

#[test]
fn refunds_are_idempotent_and_bounded() {
    let l = Ledger::new(Duration::from_millis(1));
    l.pay(
        Provider::Wechat,
        "f",
        Fen(100),
        &code(Behaviour::PaysAtOnce, 6),
        "T1",
        "x",
    );
    assert!(matches!(
        l.refund("f", "r1", Fen(60)),
        RefundOutcome::Refunded(_)
    ));
    assert!(matches!(
        l.refund("f", "r1", Fen(60)),
        RefundOutcome::Refunded(_)
    ));
    assert!(matches!(
        l.refund("f", "r2", Fen(50)),
        RefundOutcome::Rejected(_)
    ));
    assert_eq!(l.money_kept("f"), 40);
}

#[test]
fn an_issued_code_expires_a_minute_after_it_was_shown() {
    let l = Ledger::new(Duration::from_millis(1));
    let fresh = l.issue_code(Provider::Alipay, Behaviour::PaysAtOnce);
    assert!(matches!(
        l.pay(Provider::Alipay, "f", Fen(100), &fresh, "T1", "x"),
        PayOutcome::Paid(_)
    ));
    let stale = l.issue_code(Provider::Alipay, Behaviour::PaysAtOnce);
    std::thread::sleep(Duration::from_millis(1) * (CODE_LIFETIME_UNITS + 5));
    assert_eq!(
        l.pay(Provider::Alipay, "s", Fen(100), &stale, "T1", "x"),
        PayOutcome::CodeExpired
    );
    assert!(l.order("s").is_none(), "nothing was created");
}

#[test]
fn wechat_closes_an_unpaid_order_by_itself_and_a_customer_can_give_up() {
    let l = Ledger::new(Duration::from_millis(1));
    let open = code(Behaviour::NeverConfirms, 50);
    l.pay(Provider::Wechat, "w", Fen(100), &open, "T1", "x");
    let gives_up = code(Behaviour::GivesUp(2), 51);
    l.pay(Provider::Wechat, "g", Fen(100), &gives_up, "T1", "x");
    let alipay = Behaviour::NeverConfirms.code(Provider::Alipay, 52);
    l.pay(Provider::Alipay, "a", Fen(100), &alipay, "T1", "x");
    std::thread::sleep(Duration::from_millis(1) * (WECHAT_AUTO_CLOSE_UNITS + 5));
    let state = |o: &str| l.order(o).map(|o| o.state);
    assert_eq!(state("w"), Some(OrderState::Revoked(RevokeEffect::Closed)));
    assert_eq!(
        state("g"),
        Some(OrderState::Failed),
        "gave up before the close"
    );
    assert_eq!(
        state("a"),
        Some(OrderState::Open),
        "Alipay waits for the cancel"
    );
    assert_eq!(
        l.order("w").map(|o| o.revoke_calls),
        Some(0),
        "nobody revoked it"
    );
}
