//! The order owner's promises: recovery that catches a collision, the 15 s
//! before a WeChat reverse, what the gateway said in the journal, fail-stop
//! on a failed task or a panicking owner, operator verdicts, and requests
//! racing on one order.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_restart_between_order_number_used_and_the_query_still_catches_a_collision() {
    let gw = Scripted::new(Provider::Wechat).queries([QueryAnswer::Paid(PaidInfo {
        paid_by: Default::default(),
        paid_at: Some("2025-01-02T10:00:00+08:00".into()),
        amount: Some(Fen(500)),
        ..paid_info()
    })]);
    let dir = crashed_journal("paying", Duration::from_secs(2), Provider::Wechat);
    let conn = rusqlite::Connection::open(dir.path().join("journal.sqlite")).expect("open");
    // The one pay request was answered ORDERPAID before the crash.
    conn.execute("UPDATE attempts SET used_number = 1", [])
        .expect("journaled answer");
    let t = till_with(vec![gw.clone()], dir);
    let p = recover_and_wait(&t).await;
    assert_eq!(p.status, PaymentStatus::NeedsAttention, "{p:?}");
    assert_eq!(
        p.error.map(|e| e.code).as_deref(),
        Some("OUT_TRADE_NO_COLLISION")
    );
    assert_eq!(
        gw.count(|s| *s == Sent::Revoke),
        0,
        "another sale's money is left alone"
    );
}

#[tokio::test(start_paused = true)]
async fn wechat_waits_15s_from_the_pay_answer_however_long_the_connect_took() {
    // Address lookup and connect took 6 s before the gateway answered
    // USERPAYING; the cashier cancels at 1 s. WeChat counts 15 s from the
    // request it got, so the reverse goes out no sooner than 21 s.
    let gw = Scripted::new(Provider::Wechat).pays(user_paying("USERPAYING"));
    *gw.pay_delay.lock().expect("lock") = Duration::from_secs(6);
    let t = till(&gw);
    let charge_task = spawn_charge(&t, "A1", Some(WECHAT_CODE));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(p.status, PaymentStatus::Revoked);
    let revoke_at = gw.first(&Sent::Revoke).expect("revoked");
    assert_eq!(revoke_at, Duration::from_secs(21));
    assert_eq!(
        charge_task.await.expect("join").expect("charge").status,
        PaymentStatus::Revoked
    );
}

#[tokio::test(start_paused = true)]
async fn what_the_gateway_said_while_polling_is_in_the_attempts_history() {
    let gw = Scripted::new(Provider::Wechat)
        .pays(PayAnswer::Unknown {
            note: note("SYSTEMERROR"),
            user_paying: false,
        })
        .queries([
            QueryAnswer::Pending {
                note: note("ORDERNOTEXIST"),
                user_paying: false,
            },
            QueryAnswer::Paid(paid_info()),
        ]);
    let t = till(&gw);
    let p = charged(&t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(p.error, None);
    let events = t.engine.journal().events("A1").expect("events");
    let polled = events
        .iter()
        .find(|e| e.kind == "query_pending")
        .expect("the query's answer is journaled");
    assert!(polled.detail.contains("ORDERNOTEXIST"), "{}", polled.detail);
}

#[tokio::test]
async fn a_failed_journal_task_is_a_journal_failure_not_a_conflict() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let r: Result<(), JournalError> = blocking(|| panic!("a bug under the journal")).await;
    let e = r.expect_err("the task failed");
    assert!(matches!(e, JournalError::Internal(_)), "{e:?}");
    let e = t.engine.journal_error(e);
    assert_eq!(code(&e), 1004, "{e}");
    assert!(!t.engine.journal_ok(), "fail-stop");
    let r = t.engine.charge(charge("A1", Some(WECHAT_CODE))).await;
    assert_eq!(r.map_err(|e| code(&e)), Err(1004));
    assert!(gw.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn status_says_when_the_journal_cannot_be_read() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    assert!(matches!(t.engine.counts().await.2, Ok(0)));
    let conn = rusqlite::Connection::open(&t.path).expect("open");
    conn.execute_batch("ALTER TABLE attempts RENAME TO attempts_gone")
        .expect("break the journal");
    let (_, _, attention) = t.engine.counts().await;
    let why = attention.expect_err("never 0 when the journal cannot say");
    assert!(why.to_string().contains("attempts"), "{why}");
}

/// An attempt of A1 (WeChat) that ended waiting for an operator.
async fn stuck(t: &Till) {
    let p = charged(t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::NeedsAttention, "{p:?}");
}

fn refusing_gateway() -> Arc<Scripted> {
    Scripted::new(Provider::Wechat)
        .pays(user_paying("USERPAYING"))
        .revokes([RevokeAnswer::Refused(note("REVERSE_EXPIRE"))])
}

#[tokio::test(start_paused = true)]
async fn a_sale_waiting_for_an_operator_is_not_charged_until_resolved() {
    let gw = refusing_gateway();
    let t = till(&gw);
    stuck(&t).await;
    let typed = t
        .engine
        .charge(charge("A1", Some("134567890123450001")))
        .await;
    assert_eq!(typed.map_err(|e| code(&e)), Err(1002));
    let waiting = t.engine.charge(charge("A1", None)).await;
    assert_eq!(waiting.map_err(|e| code(&e)), Err(1002));
    assert_eq!(
        gw.count(|s| matches!(s, Sent::Pay(_))),
        1,
        "nothing more sent"
    );
    // The operator checks the portal: not paid. The sale may be charged.
    let resolved = t
        .engine
        .resolve(ResolveRequest {
            order_no: "A1".into(),
            as_paid: false,
            transaction_id: None,
            paid_at: None,
            operator: "alice".into(),
            note: "portal shows closed".into(),
        })
        .await
        .expect("resolve");
    assert_eq!(resolved.status, PaymentStatus::Failed);
    let p = charged(&t, "A1", "134567890123450001").await;
    assert_eq!(p.status, PaymentStatus::Paid);
}

#[tokio::test(start_paused = true)]
async fn resolving_as_paid_through_the_daemon_keeps_the_payments_own_time() {
    let gw = refusing_gateway();
    let t = till(&gw);
    let mut events = t.engine.subscribe();
    stuck(&t).await;
    let req = |paid_at: Option<&str>| ResolveRequest {
        order_no: "A1".into(),
        as_paid: true,
        transaction_id: Some("4200000000999".into()),
        paid_at: paid_at.map(str::to_string),
        operator: "bob".into(),
        note: "portal shows paid".into(),
    };
    let e = t
        .engine
        .resolve(req(None))
        .await
        .expect_err("needs the time");
    assert!(e.to_string().contains("--paid-at"), "{e}");
    let p = t
        .engine
        .resolve(req(Some("2026-11-20T09:30:00+08:00")))
        .await
        .expect("resolve");
    assert_eq!(p.status, PaymentStatus::Paid);
    assert_eq!(p.transaction_id.as_deref(), Some("4200000000999"));
    assert_eq!(p.paid_at.as_deref(), Some("2026-11-20T09:30:00+08:00"));
    let mut told_paid = false;
    while let Ok(n) = events.try_recv() {
        told_paid |= n.params()["event"] == "paid";
    }
    assert!(told_paid, "the POS is told");
}

#[tokio::test(start_paused = true)]
async fn three_clients_racing_on_one_order_get_answers_that_hold() {
    // One charge waiting for the scanner, one with a typed code, one
    // cancel, within a few scheduler turns of each other: the typed charge
    // is refused (the order is taken), the cancel and the waiting charge
    // both answer cancelled, and nothing was charged.
    for turns in 0..6 {
        let gw = Scripted::new(Provider::Alipay);
        let t = till(&gw);
        let waiting = spawn_charge(&t, "A1", None);
        for _ in 0..turns {
            tokio::task::yield_now().await;
        }
        let typed = spawn_charge(&t, "A1", Some(ALIPAY_CODE));
        let cancel = {
            let engine = t.engine.clone();
            tokio::spawn(async move { engine.cancel("A1").await })
        };
        let (w, ty, c) = (
            waiting.await.expect("join"),
            typed.await.expect("join"),
            cancel.await.expect("join"),
        );
        let c = c.expect("cancel answers");
        assert!(c.status.is_final(), "{turns}: cancel said {:?}", c.status);
        let kept =
            gw.count(|s| matches!(s, Sent::Pay(_))) == 1 && gw.count(|s| *s == Sent::Revoke) == 0;
        let end = t.engine.payment("A1").await.expect("p");
        for answer in [&w, &ty].into_iter().flatten() {
            assert!(answer.status.is_final(), "{turns}: {answer:?}");
        }
        if end.status == PaymentStatus::Paid {
            // The typed charge came first and was paid: the cancel found
            // a paid sale and said so.
            assert!(kept, "{turns}");
            assert_eq!(c.status, PaymentStatus::Paid, "{turns}");
        } else {
            assert!(!kept, "{turns}: {end:?} but money kept");
            assert_ne!(c.status, PaymentStatus::Paid, "{turns}");
        }
    }
}

/// A gateway whose pay call panics: a bug in reading an answer.
struct Panicking;

#[async_trait]
impl Gateway for Panicking {
    fn channel(&self) -> &'static str {
        (Provider::Alipay).as_str()
    }

    fn carries(&self) -> &'static [Provider] {
        (Provider::Alipay).alone()
    }
    async fn pay(&self, _: &PayRequest) -> PayAnswer {
        panic!("a bug while reading the answer")
    }
    async fn query(&self, _: &str) -> QueryAnswer {
        pending()
    }
    async fn revoke(&self, _: &str) -> RevokeAnswer {
        RevokeAnswer::Retry(note("x"))
    }
    async fn refund(&self, _: &RefundRequest) -> RefundAnswer {
        RefundAnswer::Unknown(note("x"))
    }
    async fn refund_query(&self, _: &str, _: &str) -> RefundAnswer {
        RefundAnswer::Unknown(note("x"))
    }
    async fn bill(&self, _: &str) -> BillAnswer {
        BillAnswer::NoBill(note("none"))
    }
}

#[tokio::test(start_paused = true)]
async fn an_owner_that_panics_fail_stops_the_till_and_lets_go_of_the_scanner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Arc::new(Journal::open(&dir.path().join("journal.sqlite"), "T1").expect("j"));
    let engine = Engine::new(journal, vec![Arc::new(Panicking)], PaymentConfig::default());
    let e = engine
        .charge(charge("A1", Some(ALIPAY_CODE)))
        .await
        .expect_err("no answer from a dead owner");
    assert_eq!(code(&e), 1007, "the code may have left: {e}");
    assert!(!engine.journal_ok(), "fail-stop until restarted");
    let (waiting, in_flight, _) = engine.counts().await;
    assert_eq!(
        (waiting, in_flight),
        (None, 0),
        "nothing held by a dead owner"
    );
    // The journal keeps the attempt in flight for recovery.
    let (_, attempts) = engine.journal().sale("A1").expect("read").expect("sale");
    assert!(!attempts[0].state.phase.is_final());
    let again = engine.charge(charge("B1", None)).await;
    assert_eq!(again.map_err(|e| code(&e)), Err(1004), "refused, not busy");
}

#[tokio::test(start_paused = true)]
async fn a_second_charge_of_a_waiting_sale_does_not_free_the_scanner() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till(&gw);
    let waiting = spawn_charge(&t, "A1", None);
    wait_armed(&t).await;
    let dup = t.engine.charge(charge("A1", None)).await;
    assert_eq!(dup.map_err(|e| code(&e)), Err(1002));
    // Another sale still finds the scanner taken by A1.
    let other = t.engine.charge(charge("B1", None)).await;
    assert_eq!(other.map_err(|e| code(&e)), Err(1001));
    assert_eq!(t.engine.counts().await.0.as_deref(), Some("A1"));
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
    assert_eq!(
        waiting.await.expect("join").expect("charge").status,
        PaymentStatus::Paid
    );
}
