//! What operators read across the fleet: sales by store, till, day and
//! status; one sale's whole history; the attention queue; a day's totals
//! per store; the tills and how far each has synced.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::db::DbError;

/// Which sales to list; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalesFilter {
    pub day: Option<NaiveDate>,
    pub store: Option<String>,
    pub till: Option<String>,
    pub status: Option<String>,
    pub limit: i64,
}

/// A search for sales (the console's): a number (order no, out_trade_no
/// or transaction id), a masked code's first and last four digits, an
/// amount, and the list's filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub number: Option<String>,
    pub code: Option<(String, String)>,
    pub amount: Option<i64>,
    pub filter: SalesFilter,
}

/// Sales matching `s`, newest first.
pub async fn search(pool: &Pool, s: &Search) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let code = s.code.as_ref().map(|(head, tail)| format!("{head}%{tail}"));
    let f = &s.filter;
    let rows = client
        .query(
            &format!(
                "SELECT {SALE_COLS} FROM sales s
                 WHERE ($1::text IS NULL OR s.order_no = $1 OR EXISTS (
                          SELECT 1 FROM attempts a WHERE a.till_id = s.till_id AND a.order_no = s.order_no
                            AND (a.out_trade_no = $1 OR a.transaction_id = $1)))
                   AND ($2::text IS NULL OR EXISTS (
                          SELECT 1 FROM attempts a WHERE a.till_id = s.till_id AND a.order_no = s.order_no
                            AND a.code_masked LIKE $2))
                   AND ($3::bigint IS NULL OR s.amount = $3)
                   AND ($4::date IS NULL OR s.local_date = $4)
                   AND ($5::text IS NULL OR s.store_id = $5)
                   AND ($6::text IS NULL OR s.till_id = $6)
                   AND ($7::text IS NULL OR s.status = $7)
                 ORDER BY s.created_at DESC LIMIT $8"
            ),
            &[&s.number, &code, &s.amount, &f.day, &f.store, &f.till, &f.status, &f.limit],
        )
        .await?;
    Ok(Value::Array(rows.iter().map(sale_json).collect()))
}

/// A day's paid sales and refunds per store, provider and cashier, and
/// per till and cashier (a till's shifts, as HQ sees them).
pub async fn breakdown(pool: &Pool, day: NaiveDate) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let group = |cols: &str| {
        format!(
            "SELECT {cols}, COALESCE(s.operator_id, ''), count(*)::bigint,
                    COALESCE(sum(s.paid_amount), 0)::bigint, COALESCE(sum(s.refunded_amount), 0)::bigint
             FROM sales s CROSS JOIN LATERAL (
                 -- One provider a sale: its latest paid attempt's.
                 SELECT provider FROM attempts x
                 WHERE x.till_id = s.till_id AND x.order_no = s.order_no AND x.phase = 'paid'
                 ORDER BY x.seq DESC LIMIT 1) a
             WHERE s.local_date = $1
             GROUP BY {cols}, s.operator_id ORDER BY {cols}, s.operator_id"
        )
    };
    let rows = |rows: Vec<Row>| -> Vec<Value> {
        rows.iter()
            .map(|r| {
                json!({
                    "key": r.get::<_, String>(0),
                    "key2": r.get::<_, String>(1),
                    "cashier": r.get::<_, String>(2),
                    "paid_count": r.get::<_, i64>(3),
                    "paid_amount": r.get::<_, i64>(4),
                    "refunded_amount": r.get::<_, i64>(5),
                })
            })
            .collect()
    };
    let by_provider = client
        .query(&group("s.store_id, a.provider"), &[&day])
        .await?;
    let by_till = client
        .query(&group("s.store_id, s.till_id"), &[&day])
        .await?;
    Ok(json!({
        "day": day.to_string(),
        "store_provider_cashier": rows(by_provider),
        "till_cashier": rows(by_till),
    }))
}

/// Refunds asked on `day` (HQ's local day), newest first, on every
/// till.
pub async fn refunds(pool: &Pool, day: NaiveDate) -> Result<Value, DbError> {
    let (start, end) = local_day(day)?;
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {REFUND_COLS} FROM refunds
                 WHERE created_at >= $1 AND created_at < $2
                 ORDER BY created_at DESC LIMIT 1000"
            ),
            &[&start, &end],
        )
        .await?;
    Ok(Value::Array(rows.iter().map(refund_json).collect()))
}

const REFUND_COLS: &str = "till_id, order_no, refund_no, out_trade_no, amount, status, refund_id, \
                           operator_id, created_at, error_code, error_message";

fn refund_json(r: &Row) -> Value {
    json!({
        "till_id": r.get::<_, String>("till_id"),
        "order_no": r.get::<_, String>("order_no"),
        "refund_no": r.get::<_, String>("refund_no"),
        "out_trade_no": r.get::<_, String>("out_trade_no"),
        "amount": r.get::<_, i64>("amount"),
        "status": r.get::<_, String>("status"),
        "refund_id": r.get::<_, Option<String>>("refund_id"),
        "operator_id": r.get::<_, Option<String>>("operator_id"),
        "created_at": ms(r.get("created_at")),
        "error": r.get::<_, Option<String>>("error_code").map(|c| json!({
            "code": c, "message": r.get::<_, Option<String>>("error_message")})),
    })
}

/// The tills' shifts closed on `day` (HQ's local day), with their
/// reports, by store and till.
pub async fn shifts(pool: &Pool, day: NaiveDate) -> Result<Value, DbError> {
    let (start, end) = local_day(day)?;
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT t.store_id, s.till_id, s.shift_no, s.opened_at, s.closed_at, s.report
             FROM shifts s JOIN tills t USING (till_id)
             WHERE s.closed_at >= $1 AND s.closed_at < $2
             ORDER BY t.store_id, s.till_id, s.shift_no",
            &[&start, &end],
        )
        .await?;
    Ok(Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "store_id": r.get::<_, String>(0),
                    "till_id": r.get::<_, String>(1),
                    "shift_no": r.get::<_, i64>(2),
                    "opened_at": ms(r.get(3)),
                    "closed_at": ms(r.get(4)),
                    "report": r.get::<_, Value>(5),
                })
            })
            .collect(),
    ))
}

/// Where HQ's local `day` begins and ends, as instants (as fleet
/// reconciliation counts a day).
fn local_day(day: NaiveDate) -> Result<(DateTime<Utc>, DateTime<Utc>), DbError> {
    use chrono::TimeZone;
    let at = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|t| chrono::Local.from_local_datetime(&t).earliest())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| DbError::Other(format!("day {d}")))
    };
    let next = day
        .succ_opt()
        .ok_or_else(|| DbError::Other(format!("day {day}")))?;
    Ok((at(day)?, at(next)?))
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn sale_json(r: &Row) -> Value {
    json!({
        "till_id": r.get::<_, String>("till_id"),
        "order_no": r.get::<_, String>("order_no"),
        "store_id": r.get::<_, String>("store_id"),
        "local_date": r.get::<_, NaiveDate>("local_date").to_string(),
        "amount": r.get::<_, i64>("amount"),
        "subject": r.get::<_, String>("subject"),
        "operator_id": r.get::<_, Option<String>>("operator_id"),
        "created_at": ms(r.get("created_at")),
        "status": r.get::<_, String>("status"),
        "paid_amount": r.get::<_, i64>("paid_amount"),
        "refunded_amount": r.get::<_, i64>("refunded_amount"),
        "synced_at": ms(r.get("synced_at")),
    })
}

const SALE_COLS: &str = "till_id, order_no, store_id, local_date, amount, subject, operator_id, \
                         created_at, status, paid_amount, refunded_amount, synced_at";

pub async fn sales(pool: &Pool, f: &SalesFilter) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {SALE_COLS} FROM sales
                 WHERE ($1::date IS NULL OR local_date = $1)
                   AND ($2::text IS NULL OR store_id = $2)
                   AND ($3::text IS NULL OR till_id = $3)
                   AND ($4::text IS NULL OR status = $4)
                 ORDER BY created_at DESC, till_id, order_no LIMIT $5"
            ),
            &[&f.day, &f.store, &f.till, &f.status, &f.limit],
        )
        .await?;
    Ok(Value::Array(rows.iter().map(sale_json).collect()))
}

/// One sale with its attempts, refunds and every event, or `None`.
pub async fn sale(pool: &Pool, till: &str, order: &str) -> Result<Option<Value>, DbError> {
    let client = pool.get().await?;
    let key: [&(dyn ToSql + Sync); 2] = [&till, &order];
    let Some(row) = client
        .query_opt(
            &format!("SELECT {SALE_COLS} FROM sales WHERE till_id = $1 AND order_no = $2"),
            &key,
        )
        .await?
    else {
        return Ok(None);
    };
    let mut sale = sale_json(&row);
    let attempts = client
        .query(
            "SELECT out_trade_no, seq, provider, channel, amount, code_masked, phase, submitted_at,
                    transaction_id, paid_at, error_code, error_message, revoke_tries
             FROM attempts WHERE till_id = $1 AND order_no = $2 ORDER BY seq",
            &key,
        )
        .await?;
    sale["attempts"] = attempts
        .iter()
        .map(|a| {
            json!({
                "out_trade_no": a.get::<_, String>(0),
                "seq": a.get::<_, i32>(1),
                "provider": a.get::<_, String>(2),
                "channel": a.get::<_, String>(3),
                "amount": a.get::<_, i64>(4),
                "code_masked": a.get::<_, String>(5),
                "phase": a.get::<_, String>(6),
                "submitted_at": ms(a.get(7)),
                "transaction_id": a.get::<_, Option<String>>(8),
                "paid_at": a.get::<_, Option<String>>(9),
                "error": a.get::<_, Option<String>>(10).map(|code| json!({
                    "code": code, "message": a.get::<_, Option<String>>(11)})),
                "revoke_tries": a.get::<_, i32>(12),
            })
        })
        .collect();
    let refunds = client
        .query(
            &format!(
                "SELECT {REFUND_COLS} FROM refunds WHERE till_id = $1 AND order_no = $2 ORDER BY created_at"
            ),
            &key,
        )
        .await?;
    sale["refunds"] = refunds.iter().map(refund_json).collect();
    let events = client
        .query(
            "SELECT event_id, at, out_trade_no, kind, detail FROM events
             WHERE till_id = $1 AND order_no = $2 ORDER BY event_id",
            &key,
        )
        .await?;
    sale["history"] = events
        .iter()
        .map(|e| {
            json!({
                "event_id": e.get::<_, i64>(0),
                "at": ms(e.get(1)),
                "out_trade_no": e.get::<_, Option<String>>(2),
                "kind": e.get::<_, String>(3),
                "detail": e.get::<_, Value>(4),
            })
        })
        .collect();
    drop(client);
    // In relay mode: each call HQ made for the sale, with its answer.
    let numbers: Vec<String> = sale["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["out_trade_no"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    sale["relayed"] = crate::relay::journal::calls(pool, till, &numbers).await?;
    Ok(Some(sale))
}

/// Every sale, on any till, with an attempt waiting on an operator, with
/// what the gateway last said.
pub async fn attention(pool: &Pool) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT s.till_id, s.order_no, s.store_id, s.amount, s.created_at,
                    a.out_trade_no, a.provider, a.channel, a.revoke_tries, a.error_code,
                    a.error_message
             FROM sales s JOIN attempts a USING (till_id, order_no)
             WHERE s.status = 'needs_attention' AND a.phase = 'needs_attention'
             ORDER BY s.created_at",
            &[],
        )
        .await?;
    Ok(Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "till_id": r.get::<_, String>(0),
                    "order_no": r.get::<_, String>(1),
                    "store_id": r.get::<_, String>(2),
                    "amount": r.get::<_, i64>(3),
                    "created_at": ms(r.get(4)),
                    "out_trade_no": r.get::<_, String>(5),
                    "provider": r.get::<_, String>(6),
                    "channel": r.get::<_, String>(7),
                    "revoke_tries": r.get::<_, i32>(8),
                    "last_error": r.get::<_, Option<String>>(9).map(|code| json!({
                        "code": code, "message": r.get::<_, Option<String>>(10)})),
                })
            })
            .collect(),
    ))
}

/// A day's totals per store (fen): paid sales and their sum, refunds
/// confirmed, and what is not settled.
pub async fn totals(pool: &Pool, day: NaiveDate) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT store_id,
                    count(*) FILTER (WHERE paid_amount > 0),
                    COALESCE(sum(paid_amount), 0)::bigint,
                    COALESCE(sum(refunded_amount), 0)::bigint,
                    count(*) FILTER (WHERE status = 'needs_attention'),
                    count(*) FILTER (WHERE status = 'in_flight'),
                    count(DISTINCT till_id)
             FROM sales WHERE local_date = $1 GROUP BY store_id ORDER BY store_id",
            &[&day],
        )
        .await?;
    Ok(json!({
        "day": day.to_string(),
        "stores": rows.iter().map(|r| json!({
            "store_id": r.get::<_, String>(0),
            "paid_count": r.get::<_, i64>(1),
            "paid_amount": r.get::<_, i64>(2),
            "refunded_amount": r.get::<_, i64>(3),
            "net_amount": r.get::<_, i64>(2) - r.get::<_, i64>(3),
            "needs_attention": r.get::<_, i64>(4),
            "in_flight": r.get::<_, i64>(5),
            "tills": r.get::<_, i64>(6),
        })).collect::<Vec<_>>(),
    }))
}

/// The tills, each with how far it has synced.
pub async fn tills(pool: &Pool) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT till_id, store_id, high_water, last_sync_at FROM tills ORDER BY store_id, till_id",
            &[],
        )
        .await?;
    Ok(Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "till_id": r.get::<_, String>(0),
                    "store_id": r.get::<_, String>(1),
                    "high_water": r.get::<_, i64>(2),
                    "last_sync_at": r.get::<_, Option<DateTime<Utc>>>(3).map(ms),
                })
            })
            .collect(),
    ))
}
