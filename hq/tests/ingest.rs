//! Ingest against a real PostgreSQL: batches kept once, in any order and
//! any number of times; a snapshot older than the one kept changes
//! nothing; a till cannot write another till's rows; several instances
//! migrate one database at once.

mod common;

use serde_json::json;
use tillpay::sync::wire::{Attempt, Batch, Event, OrderSnapshot, Sale};
use tillpay_hq::ingest::{ingest, IngestError};
use tillpay_hq::{db, tills};

fn event(id: i64, order: &str, kind: &str) -> Event {
    Event {
        id,
        at: 1_796_000_000_000 + id * 1000,
        order_no: order.into(),
        out_trade_no: Some(format!("T1_{order}_1")),
        kind: kind.into(),
        detail: json!({}),
    }
}

fn snapshot(order: &str, version: i64, phase: &str) -> OrderSnapshot {
    OrderSnapshot {
        order_no: order.into(),
        version,
        sale: Sale {
            amount: 1200,
            subject: "tea".into(),
            local_date: "2026-12-01".into(),
            created_at: 1_796_000_000_000,
            cancelled: false,
            cancel_reason: None,
            operator_id: Some("alice".into()),
        },
        attempts: vec![Attempt {
            out_trade_no: format!("T1_{order}_1"),
            seq: 1,
            provider: "wechat".into(),
            channel: "wechat".into(),
            amount: 1200,
            code_masked: "1345**********6789".into(),
            phase: phase.into(),
            submitted_at: 1_796_000_000_000,
            updated_at: 1_796_000_000_000 + version,
            transaction_id: (phase == "paid").then(|| "4200000001".to_string()),
            paid_at: None,
            booked_amount: None,
            customer_paid: None,
            discount: None,
            payer: None,
            error_code: None,
            error_message: None,
            revoke_tries: 0,
            revoke_effect: None,
        }],
        refunds: vec![],
    }
}

fn batch(till: &str, after: i64, events: Vec<Event>, orders: Vec<OrderSnapshot>) -> Batch {
    Batch {
        till_id: till.into(),
        after,
        events,
        orders,
        done: vec![],
        shifts: vec![],
    }
}

async fn count(pool: &deadpool_postgres::Pool, sql: &str) -> i64 {
    pool.get()
        .await
        .expect("client")
        .query_one(sql, &[])
        .await
        .expect("query")
        .get(0)
}

#[tokio::test]
async fn batches_in_any_order_any_number_of_times_end_the_same() {
    let Some(base) = common::pg_base() else {
        return;
    };
    let pool = db::pool(&common::fresh_db(&base).await, 4).expect("pool");
    assert!(db::migrate(&pool).await.expect("migrate") > 0);
    tills::add(&pool, "S1", "T1").await.expect("till");
    let t1 = tills::Till {
        till_id: "T1".into(),
        store_id: "S1".into(),
    };
    // Order A is paying (events 1-2), then paid (3); B is paid (4-5).
    let b1 = batch(
        "T1",
        0,
        vec![event(1, "A", "poll_unknown"), event(2, "A", "poll_unknown")],
        vec![snapshot("A", 2, "paying")],
    );
    let b2 = batch(
        "T1",
        2,
        vec![
            event(3, "A", "paid"),
            event(4, "B", "poll_unknown"),
            event(5, "B", "paid"),
        ],
        vec![snapshot("A", 3, "paid"), snapshot("B", 5, "paid")],
    );
    // The later batch first: kept, but the mark waits for the gap.
    assert_eq!(ingest(&pool, &t1, &b2).await.expect("b2").high_water, 0);
    // The earlier one, late: its older snapshot of A changes nothing.
    assert_eq!(ingest(&pool, &t1, &b1).await.expect("b1").high_water, 2);
    let status = |pool: deadpool_postgres::Pool| async move {
        pool.get()
            .await
            .expect("client")
            .query_one("SELECT status FROM sales WHERE order_no = 'A'", &[])
            .await
            .expect("sale A")
            .get::<_, String>(0)
    };
    assert_eq!(
        status(pool.clone()).await,
        "paid",
        "the newer snapshot stays"
    );
    // Both again, in order: duplicates, and the mark reaches the end.
    assert_eq!(
        ingest(&pool, &t1, &b1).await.expect("b1 again").high_water,
        2
    );
    assert_eq!(
        ingest(&pool, &t1, &b2).await.expect("b2 again").high_water,
        5
    );
    assert_eq!(
        ingest(&pool, &t1, &b2).await.expect("b2 thrice").high_water,
        5
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM events").await,
        5,
        "each event once"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM sales").await, 2);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM attempts WHERE phase = 'paid'").await,
        2
    );
    assert_eq!(
        count(&pool, "SELECT sum(paid_amount)::bigint FROM sales").await,
        2400
    );
    // A batch naming one order twice is refused whole.
    let twice = batch(
        "T1",
        5,
        vec![event(6, "C", "paid")],
        vec![snapshot("C", 6, "paid"), snapshot("C", 6, "paid")],
    );
    assert!(matches!(
        ingest(&pool, &t1, &twice).await,
        Err(IngestError::Bad(_))
    ));
    // An empty batch answers the mark and changes nothing.
    assert_eq!(
        ingest(&pool, &t1, &batch("T1", 5, vec![], vec![]))
            .await
            .expect("empty")
            .high_water,
        5
    );
    // The events went to their day's partition.
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_till_cannot_write_another_tills_rows() {
    let Some(base) = common::pg_base() else {
        return;
    };
    let pool = db::pool(&common::fresh_db(&base).await, 4).expect("pool");
    db::migrate(&pool).await.expect("migrate");
    tills::add(&pool, "S1", "T1").await.expect("T1");
    tills::add(&pool, "S2", "T2").await.expect("T2");
    let t1 = tills::Till {
        till_id: "T1".into(),
        store_id: "S1".into(),
    };
    let forged = batch(
        "T2",
        0,
        vec![event(1, "X", "paid")],
        vec![snapshot("X", 1, "paid")],
    );
    match ingest(&pool, &t1, &forged).await {
        Err(IngestError::NotYours {
            token_till,
            batch_till,
        }) => {
            assert_eq!((token_till.as_str(), batch_till.as_str()), ("T1", "T2"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM events").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM sales").await, 0);
    assert_eq!(count(&pool, "SELECT max(high_water) FROM tills").await, 0);
    // A till moved to another store is refused, not silently re-homed.
    assert!(tills::add(&pool, "S2", "T1").await.is_err());
}

#[tokio::test]
async fn instances_starting_at_once_migrate_the_database_once() {
    let Some(base) = common::pg_base() else {
        return;
    };
    let url = common::fresh_db(&base).await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        runs.push(tokio::spawn(async move {
            let pool = db::pool(&url, 2).expect("pool");
            db::migrate(&pool).await.expect("migrate")
        }));
    }
    let mut applied = 0;
    for r in runs {
        applied += r.await.expect("join");
    }
    assert_eq!(
        applied,
        tillpay_hq::db::VERSION,
        "each migration applied once, by one of them"
    );
}

/// A till offline since yesterday morning comes back: its backlog of two
/// days arrives in batches, each event lands in its own day's partition,
/// and each day's totals count that day's sales.
#[tokio::test]
async fn a_till_back_after_a_day_offline_lands_each_day_in_its_own_day() {
    let Some(base) = common::pg_base() else {
        return;
    };
    let pool = db::pool(&common::fresh_db(&base).await, 4).expect("pool");
    db::migrate(&pool).await.expect("migrate");
    tills::add(&pool, "S1", "T1").await.expect("T1");
    let t1 = tills::Till {
        till_id: "T1".into(),
        store_id: "S1".into(),
    };
    const DAY_MS: i64 = 86_400_000;
    let days = ["2026-11-30", "2026-12-01"];
    // 40 sales a day, each a paid event and its snapshot.
    let mut backlog = Vec::new();
    for (d, day) in days.iter().enumerate() {
        for i in 0..40 {
            let id = (d * 40 + i + 1) as i64;
            let order = format!("D{d}S{i}");
            let mut e = event(id, &order, "paid");
            e.at = 1_796_000_000_000 + d as i64 * DAY_MS + i as i64 * 1000;
            let mut s = snapshot(&order, id, "paid");
            s.sale.local_date = (*day).into();
            backlog.push((e, s));
        }
    }
    let mut mark = 0;
    for chunk in backlog.chunks(25) {
        let (events, orders): (Vec<_>, Vec<_>) = chunk.iter().cloned().unzip();
        let answer = ingest(&pool, &t1, &batch("T1", mark, events, orders))
            .await
            .expect("caught up");
        assert_eq!(answer.high_water, chunk.last().map_or(0, |(e, _)| e.id));
        mark = answer.high_water;
    }
    assert_eq!(mark, 80);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"
        )
        .await,
        2,
        "one partition per day"
    );
    for day in days {
        let totals = tillpay_hq::fleet::totals(
            &pool,
            chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").expect("date"),
        )
        .await
        .expect("totals");
        assert_eq!(totals["stores"][0]["paid_count"], 40, "{day}: {totals}");
        assert_eq!(totals["stores"][0]["paid_amount"], 40 * 1200, "{day}");
    }
    // The older day's events are archived away (its partition detached
    // and dropped); one more event of that day still finds a home.
    pool.get()
        .await
        .expect("client")
        .batch_execute(
            "ALTER TABLE events DETACH PARTITION events_20261130; DROP TABLE events_20261130",
        )
        .await
        .expect("detach");
    let mut late = event(81, "D0S0", "refund_requested");
    late.at = 1_796_000_000_000 + 50_000;
    let answer = ingest(&pool, &t1, &batch("T1", 80, vec![late], vec![]))
        .await
        .expect("a late event of an archived day");
    assert_eq!(answer.high_water, 81);
}
