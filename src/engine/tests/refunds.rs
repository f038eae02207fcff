//! Refunds the daemon confirms itself: accepted, rate limited, resumed
//! after a crash (payment-rules.md §17).

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
        .refund("A1", "R1", 300, None, None)
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
    let again = t
        .engine
        .refund("A1", "R1", 300, None, None)
        .await
        .expect("again");
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
        .refund("A1", "R1", 100, None, None)
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
    j.ensure_sale("A1", Fen(1234), "x", None).expect("sale");
    let row = j
        .begin_attempt("A1", &crate::gateway::recognise(WECHAT_CODE).expect("code"))
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
            operator_id: None,
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
