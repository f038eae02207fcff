//! A journal that cannot be written, or fails mid-payment, and what the
//! journal never holds.

use super::*;

#[tokio::test]
async fn the_journal_never_holds_a_full_auth_code() {
    let gw = Scripted::new(Provider::Wechat);
    let alipay = Scripted::new(Provider::Alipay).pays(PayAnswer::Failed {
        note: note("ACQ.PAYMENT_AUTH_CODE_INVALID"),
        config_error: false,
    });
    let t = till_with(vec![gw, alipay], tempfile::tempdir().expect("tempdir"));
    let codes = [
        "134567890123456789",
        "284567890123456789",
        "104567890123450000",
    ];
    for (i, code) in codes.iter().enumerate() {
        t.engine
            .charge(charge(&format!("S{i}"), Some(code)))
            .await
            .expect("charge");
    }
    let mut bytes = std::fs::read(&t.path).expect("db");
    if let Ok(wal) = std::fs::read(t.path.with_extension("sqlite-wal")) {
        bytes.extend(wal);
    }
    assert!(bytes.len() > 4096);
    for code in codes {
        let needle = code.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "full code found in the journal"
        );
        let masked = crate::gateway::recognise(code).expect("code").masked();
        assert!(
            bytes.windows(masked.len()).any(|w| w == masked.as_bytes()),
            "masked code kept"
        );
    }
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_refuses_the_charge_and_sends_nothing() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    // Another process holds the write lock past the busy timeout.
    let other = rusqlite::Connection::open(&t.path).expect("open");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let r = t.engine.charge(charge("A1", Some(WECHAT_CODE))).await;
    assert_eq!(r.map_err(|e| code(&e)), Err(1004));
    assert!(gw.sent().is_empty(), "nothing reached the gateway");
    other.execute_batch("ROLLBACK").expect("unlock");
    // Fail-stop: even with the lock gone, no new charges until restart.
    let r = t.engine.charge(charge("A2", Some(WECHAT_CODE))).await;
    assert_eq!(r.map_err(|e| code(&e)), Err(1004));
    assert!(gw.sent().is_empty());
}

#[tokio::test]
async fn a_journal_failing_mid_payment_says_unresolved_never_nothing_sent() {
    // The code has left when the journal stops taking writes: the POS must
    // not hear 1004 ("nothing was sent") and take another payment.
    let gw = Scripted::new(Provider::Wechat);
    *gw.pay_delay.lock().expect("lock") = Duration::from_millis(300);
    let t = till(&gw);
    let charge = spawn_charge(&t, "A1", Some(WECHAT_CODE));
    while gw.sent().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let other = rusqlite::Connection::open(&t.path).expect("open");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let r = charge.await.expect("join");
    other.execute_batch("ROLLBACK").expect("unlock");
    let e = r.expect_err("not settled");
    assert_eq!(code(&e), 1007, "{e}");
    assert!(e.to_string().contains("NOT settled"), "{e}");
    // The journal still has it in flight, for recovery on restart.
    let (_, attempts) = t.engine.journal().sale("A1").expect("read").expect("sale");
    assert_eq!(attempts[0].state.phase, machine::Phase::Submitting);
}
