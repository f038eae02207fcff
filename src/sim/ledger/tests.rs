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
