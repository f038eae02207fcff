//! The order owner's newer promises: refunds confirmed and resumed by the
//! daemon itself, recovery that asks first, the journal's view of what the
//! gateway said, and requests racing on one order.

use super::*;

fn sent_refunds(gw: &Scripted) -> Vec<(Sent, Duration)> {
    gw.sent()
        .into_iter()
        .filter(|(s, _)| matches!(s, Sent::Refund(_) | Sent::RefundQuery(_)))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_accepted_refund_is_confirmed_in_the_background_without_a_resend() {
    let gw = Scripted::new(Provider::Wechat);
    gw.refund
        .lock()
        .expect("lock")
        .push_back(RefundAnswer::Processing(note("SUCCESS")));
    gw.refund_query.lock().expect("lock").extend([
        RefundAnswer::Processing(note("PROCESSING")),
        RefundAnswer::Processing(note("PROCESSING")),
        RefundAnswer::Refunded {
            refund_id: Some("5030".into()),
        },
    ]);
    let t = till(&gw);
    assert_eq!(
        charged(&t, "A1", WECHAT_CODE).await.status,
        PaymentStatus::Paid
    );
    let mut events = t.engine.subscribe();
    let r = t
        .engine
        .refund("A1", "R1", 300, None)
        .await
        .expect("refund");
    assert_eq!(r.status, "processing", "WeChat only accepted it");
    assert_eq!(r.error, None, "an acceptance is not an error");
    assert_eq!(t.engine.payment("A1").await.expect("p").refunded_amount, 0);
    let ended = refund_event(&mut events).await;
    assert_eq!(ended["status"], "refunded");
    assert_eq!(ended["amount"], 300);
    assert_eq!(ended["order_no"], "A1");
    let p = t.engine.payment("A1").await.expect("p");
    assert_eq!(p.refunded_amount, 300, "counted once confirmed");
    let calls = sent_refunds(&gw);
    assert_eq!(
        calls
            .iter()
            .filter(|(s, _)| matches!(s, Sent::Refund(_)))
            .count(),
        1,
        "never sent twice: {calls:?}"
    );
    // Asked at growing intervals: 5 s, then 10 s, then 20 s.
    let at: Vec<Duration> = calls.iter().map(|(_, at)| *at).collect();
    let gaps: Vec<u64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(gaps, [5, 10, 20], "{calls:?}");
    // A resend by the POS answers from the journal and sends nothing.
    let again = t.engine.refund("A1", "R1", 300, None).await.expect("again");
    assert_eq!(again.status, "refunded");
    assert_eq!(sent_refunds(&gw).len(), calls.len());
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_refund_is_sent_again_a_minute_later_under_the_same_number() {
    let gw = Scripted::new(Provider::Wechat);
    gw.refund
        .lock()
        .expect("lock")
        .push_back(RefundAnswer::Later(note("FREQUENCY_LIMITED")));
    let t = till(&gw);
    charged(&t, "A1", WECHAT_CODE).await;
    let mut events = t.engine.subscribe();
    let r = t
        .engine
        .refund("A1", "R1", 100, None)
        .await
        .expect("refund");
    assert_eq!(r.status, "processing", "not failed for good: {r:?}");
    assert_eq!(refund_event(&mut events).await["status"], "refunded");
    let sends: Vec<(Sent, Duration)> = sent_refunds(&gw)
        .into_iter()
        .filter(|(s, _)| matches!(s, Sent::Refund(_)))
        .collect();
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert_eq!(sends[0].0, sends[1].0, "the same refund number");
    assert!(
        sends[1].1 - sends[0].1 >= Duration::from_secs(60),
        "{sends:?}"
    );
}

/// A journal with paid sale A1 (WeChat) and two refunds left unsettled by
/// a crash: R1 journaled but never answered, R2 accepted.
fn crashed_with_refunds() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(&dir.path().join("journal.sqlite"), "T1").expect("journal");
    j.ensure_sale("A1", Fen(1234), "x").expect("sale");
    let row = j
        .begin_attempt("A1", &AuthCode::parse(WECHAT_CODE).expect("code"))
        .expect("attempt");
    let paid = machine::Attempt {
        phase: machine::Phase::Paid,
        ..row.state
    };
    let rec = machine::Record {
        paid: Some(paid_info()),
        ..machine::Record::new("paid")
    };
    j.record(&row.out_trade_no, &paid, &rec).expect("paid");
    for (no, amount) in [("R1", 100), ("R2", 200)] {
        let r = crate::journal::RefundRow {
            refund_no: no.into(),
            out_refund_no: crate::domain::out_refund_no("T1", no),
            order_no: "A1".into(),
            out_trade_no: row.out_trade_no.clone(),
            amount: Fen(amount),
            reason: None,
            status: crate::journal::RefundStatus::Pending,
            accepted: false,
            refund_id: None,
            error: None,
            created_at: crate::journal::now_ms(),
        };
        j.begin_refund(&r, Fen(1234)).expect("refund");
    }
    let accepted = machine::refund::Refund {
        status: crate::journal::RefundStatus::Processing,
        accepted: true,
        tries: 1,
    };
    j.record_refund("R2", &accepted, "refund_accepted", None, None)
        .expect("accepted");
    dir
}

#[tokio::test(start_paused = true)]
async fn refunds_in_flight_at_a_crash_are_resumed_at_start_up() {
    let gw = Scripted::new(Provider::Wechat);
    let t = till_with(vec![gw.clone()], crashed_with_refunds());
    let mut events = t.engine.subscribe();
    assert_eq!(t.engine.recover().await.expect("recover"), 2);
    let mut ended = [
        refund_event(&mut events).await,
        refund_event(&mut events).await,
    ];
    ended.sort_by_key(|e| e["refund_no"].as_str().unwrap_or("").to_string());
    assert_eq!(ended[0]["refund_no"], "R1");
    assert_eq!(ended[0]["status"], "refunded");
    assert_eq!(ended[1]["refund_no"], "R2");
    assert_eq!(ended[1]["status"], "refunded");
    let calls = sent_refunds(&gw);
    // The unanswered one is sent again (same number); the accepted one is
    // only asked about.
    assert!(
        calls.contains(&(Sent::Refund("T1_RR1".into()), Duration::ZERO)),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|(s, _)| *s == Sent::Refund("T1_RR2".into())),
        "{calls:?}"
    );
    assert!(calls
        .iter()
        .any(|(s, _)| *s == Sent::RefundQuery("T1_RR2".into())));
    assert_eq!(
        t.engine.payment("A1").await.expect("p").refunded_amount,
        300
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_between_order_number_used_and_the_query_still_catches_a_collision() {
    let gw = Scripted::new(Provider::Wechat).queries([QueryAnswer::Paid(PaidInfo {
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
    let gw = Scripted::new(Provider::Wechat).pays(PayAnswer::Unknown {
        note: note("USERPAYING"),
        user_paying: true,
    });
    *gw.pay_delay.lock().expect("lock") = Duration::from_secs(6);
    let t = till(&gw);
    let charge_task = spawn_charge(&t, "A1", Some(WECHAT_CODE));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let p = t.engine.cancel("A1").await.expect("cancel");
    assert_eq!(p.status, PaymentStatus::Revoked);
    let revoke_at = gw
        .sent()
        .iter()
        .find(|(s, _)| *s == Sent::Revoke)
        .map(|(_, at)| *at)
        .expect("revoked");
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
    assert_eq!(t.engine.counts().await.2, Ok(0));
    let conn = rusqlite::Connection::open(&t.path).expect("open");
    conn.execute_batch("ALTER TABLE attempts RENAME TO attempts_gone")
        .expect("break the journal");
    let (_, _, attention) = t.engine.counts().await;
    let why = attention.expect_err("never 0 when the journal cannot say");
    assert!(why.contains("attempts"), "{why}");
}

/// An attempt of A1 (WeChat) that ended waiting for an operator.
async fn stuck(t: &Till) {
    let p = charged(t, "A1", WECHAT_CODE).await;
    assert_eq!(p.status, PaymentStatus::NeedsAttention, "{p:?}");
}

fn refusing_gateway() -> Arc<Scripted> {
    Scripted::new(Provider::Wechat)
        .pays(PayAnswer::Unknown {
            note: note("USERPAYING"),
            user_paying: true,
        })
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
    fn provider(&self) -> Provider {
        Provider::Alipay
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
        .scan(AuthCode::parse(WECHAT_CODE).expect("code"))
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
