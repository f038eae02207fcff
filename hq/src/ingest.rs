//! A till's batch into PostgreSQL, in one transaction: its events kept
//! once each (`(till, event id)`), each order's snapshot applied only when
//! newer than the one kept, and the till's high-water mark moved on only
//! over a batch that starts at or below it. Duplicate, late and
//! out-of-order batches change nothing they should not.

use std::collections::BTreeSet;
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;
use tillpay::sync::wire;

use crate::db::DbError;
use crate::status::standing;
use crate::tills::Till;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The batch names another till than the token's.
    #[error("till {token_till} may write only its own rows, not till {batch_till}'s")]
    NotYours {
        token_till: String,
        batch_till: String,
    },
    #[error("bad batch: {0}")]
    Bad(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for IngestError {
    fn from(e: tokio_postgres::Error) -> Self {
        IngestError::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for IngestError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        IngestError::Db(DbError::Pool(e))
    }
}

fn time_of(ms: i64) -> Result<DateTime<Utc>, IngestError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| IngestError::Bad(format!("time {ms} ms")))
}

/// The days whose event partitions this process has made sure of.
static PARTITIONS: Mutex<BTreeSet<NaiveDate>> = Mutex::new(BTreeSet::new());

/// Makes the events partition of `day` (UTC) if it is missing. Instances
/// take turns per day (an advisory lock), so two never race to create it.
async fn ensure_partition(pool: &Pool, day: NaiveDate) -> Result<(), IngestError> {
    if PARTITIONS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&day)
    {
        return Ok(());
    }
    let next = day
        .succ_opt()
        .ok_or_else(|| IngestError::Bad(format!("day {day}")))?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('tillpay-hq events ' || $1::text))",
        &[&day.to_string()],
    )
    .await?;
    // Names and bounds are dates this code formats, not input text.
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS events_{} PARTITION OF events FOR VALUES FROM ('{day}') TO ('{next}')",
        day.format("%Y%m%d")
    ))
    .await?;
    tx.commit().await?;
    PARTITIONS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(day);
    Ok(())
}

/// Commands handed to a till per answer, at most.
const COMMANDS_PER_ANSWER: i64 = 20;

/// Applies `batch` from `till`; answers the high-water mark after it and
/// the till's commands not yet done.
pub async fn ingest(
    pool: &Pool,
    till: &Till,
    batch: &wire::Batch,
) -> Result<wire::Answer, IngestError> {
    match apply(pool, till, batch).await {
        // A day this process made sure of has no partition any more (it
        // was detached for retention, or the database is another one):
        // forget what it knew and make sure again, once.
        Err(IngestError::Db(DbError::Postgres(e)))
            if e.code() == Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION) =>
        {
            tracing::warn!(error = %e, "an events partition went missing: making it again");
            PARTITIONS.lock().unwrap_or_else(|p| p.into_inner()).clear();
            apply(pool, till, batch).await
        }
        other => other,
    }
}

async fn apply(pool: &Pool, till: &Till, batch: &wire::Batch) -> Result<wire::Answer, IngestError> {
    if batch.till_id != till.till_id {
        return Err(IngestError::NotYours {
            token_till: till.till_id.clone(),
            batch_till: batch.till_id.clone(),
        });
    }
    if batch.events.windows(2).any(|w| w[0].id >= w[1].id)
        || batch.events.first().is_some_and(|e| e.id <= batch.after)
    {
        return Err(IngestError::Bad(
            "events must come in rising id order, after `after`".into(),
        ));
    }
    // Each row once per batch (one statement writes each table).
    let mut seen = BTreeSet::new();
    for o in &batch.orders {
        let rows = std::iter::once(("order", o.order_no.as_str()))
            .chain(
                o.attempts
                    .iter()
                    .map(|a| ("attempt", a.out_trade_no.as_str())),
            )
            .chain(o.refunds.iter().map(|r| ("refund", r.refund_no.as_str())));
        for (what, key) in rows {
            if !seen.insert((what, key)) {
                return Err(IngestError::Bad(format!("{what} {key} twice in one batch")));
            }
        }
    }
    let mut days = BTreeSet::new();
    let mut ats = Vec::with_capacity(batch.events.len());
    for e in &batch.events {
        let at = time_of(e.at)?;
        days.insert(at.date_naive());
        ats.push(at);
    }
    for day in &days {
        ensure_partition(pool, *day).await?;
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // One batch of a till at a time, across every HQ instance.
    let hw: i64 = tx
        .query_one(
            "SELECT high_water FROM tills WHERE till_id = $1 FOR UPDATE",
            &[&till.till_id],
        )
        .await?
        .get(0);
    if !batch.events.is_empty() {
        let ids: Vec<i64> = batch.events.iter().map(|e| e.id).collect();
        let day: Vec<NaiveDate> = ats.iter().map(|a| a.date_naive()).collect();
        let order: Vec<&str> = batch.events.iter().map(|e| e.order_no.as_str()).collect();
        let trade: Vec<Option<&str>> = batch
            .events
            .iter()
            .map(|e| e.out_trade_no.as_deref())
            .collect();
        let kind: Vec<&str> = batch.events.iter().map(|e| e.kind.as_str()).collect();
        let detail: Vec<&serde_json::Value> = batch.events.iter().map(|e| &e.detail).collect();
        tx.execute(
            "INSERT INTO events (till_id, event_id, day, at, order_no, out_trade_no, kind, detail)
             SELECT $1, * FROM unnest($2::bigint[], $3::date[], $4::timestamptz[], $5::text[],
                                      $6::text[], $7::text[], $8::jsonb[])
             ON CONFLICT DO NOTHING",
            &[
                &till.till_id,
                &ids,
                &day,
                &ats,
                &order,
                &trade,
                &kind,
                &detail,
            ],
        )
        .await?;
    }
    apply_snapshots(&tx, till, &batch.orders).await?;
    // The batch covers (after, last]: it moves the mark only if it starts
    // at or below it (a batch from beyond a gap waits for the gap).
    let last = batch.events.last().map_or(batch.after, |e| e.id);
    let new_hw = if batch.after <= hw { hw.max(last) } else { hw };
    // An idle till polls every few seconds: its row is written only when
    // the mark moves, or once a minute to say it is alive.
    tx.execute(
        "UPDATE tills SET high_water = $2, last_sync_at = now()
         WHERE till_id = $1 AND (high_water <> $2 OR last_sync_at IS NULL
                                 OR last_sync_at < now() - interval '1 minute')",
        &[&till.till_id, &new_hw],
    )
    .await?;
    // Its closed shifts' reports, each kept as first sent.
    for sh in &batch.shifts {
        tx.execute(
            "INSERT INTO shifts (till_id, shift_no, opened_at, closed_at, report)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &till.till_id,
                &sh.shift_no,
                &time_of(sh.opened_at)?,
                &time_of(sh.closed_at)?,
                &sh.report,
            ],
        )
        .await?;
    }
    // What the till did with earlier commands: only its own, once.
    for d in &batch.done {
        tx.execute(
            "UPDATE commands SET done_at = now(), ok = $3, result = $4
             WHERE id = $1 AND till_id = $2 AND done_at IS NULL",
            &[&d.id, &till.till_id, &d.ok, &d.message],
        )
        .await?;
    }
    let mut commands = Vec::new();
    for row in tx
        .query(
            "UPDATE commands SET delivered_at = COALESCE(delivered_at, now())
             WHERE id IN (SELECT id FROM commands WHERE till_id = $1 AND done_at IS NULL
                          ORDER BY id LIMIT $2)
             RETURNING id, command",
            &[&till.till_id, &COMMANDS_PER_ANSWER],
        )
        .await?
    {
        let id: i64 = row.get(0);
        // A row this HQ cannot read goes to the till as a command it
        // refuses, rather than stopping every sync of the till.
        let what = serde_json::from_value(row.get(1)).unwrap_or(wire::Order::Unknown);
        commands.push(wire::Command { id, what });
    }
    commands.sort_by_key(|c| c.id);
    tx.commit().await?;
    Ok(wire::Answer {
        high_water: new_hw,
        commands,
    })
}

/// Every order's snapshot, as one statement per table: the sales newer
/// than HQ's copy are written, and only their attempts and refunds.
async fn apply_snapshots(
    tx: &deadpool_postgres::Transaction<'_>,
    till: &Till,
    orders: &[wire::OrderSnapshot],
) -> Result<(), IngestError> {
    if orders.is_empty() {
        return Ok(());
    }
    let mut s = SaleColumns::default();
    for o in orders {
        let date = NaiveDate::parse_from_str(&o.sale.local_date, "%Y-%m-%d").map_err(|_| {
            IngestError::Bad(format!(
                "order {}: local_date {:?}",
                o.order_no, o.sale.local_date
            ))
        })?;
        let st = standing(o.sale.cancelled, &o.attempts, &o.refunds);
        s.order.push(o.order_no.as_str());
        s.date.push(date);
        s.amount.push(fen(o.sale.amount)?);
        s.subject.push(o.sale.subject.as_str());
        s.operator.push(o.sale.operator_id.as_deref());
        s.created.push(time_of(o.sale.created_at)?);
        s.cancelled.push(o.sale.cancelled);
        s.reason.push(o.sale.cancel_reason.as_deref());
        s.status.push(st.status);
        s.paid.push(fen(st.paid)?);
        s.refunded.push(fen(st.refunded)?);
        s.version.push(o.version);
    }
    let applied: std::collections::HashSet<String> = tx
        .query(
            "INSERT INTO sales (till_id, store_id, order_no, local_date, amount, subject, operator_id,
                                created_at, cancelled, cancel_reason, status, paid_amount,
                                refunded_amount, version)
             SELECT $1, $2, * FROM unnest($3::text[], $4::date[], $5::bigint[], $6::text[],
                                          $7::text[], $8::timestamptz[], $9::bool[], $10::text[],
                                          $11::text[], $12::bigint[], $13::bigint[], $14::bigint[])
             ON CONFLICT (till_id, order_no) DO UPDATE SET
                 amount = EXCLUDED.amount, subject = EXCLUDED.subject,
                 operator_id = EXCLUDED.operator_id, cancelled = EXCLUDED.cancelled,
                 cancel_reason = EXCLUDED.cancel_reason, status = EXCLUDED.status,
                 paid_amount = EXCLUDED.paid_amount, refunded_amount = EXCLUDED.refunded_amount,
                 version = EXCLUDED.version, synced_at = now()
             WHERE sales.version < EXCLUDED.version
             RETURNING order_no",
            &[
                &till.till_id,
                &till.store_id,
                &s.order,
                &s.date,
                &s.amount,
                &s.subject,
                &s.operator,
                &s.created,
                &s.cancelled,
                &s.reason,
                &s.status,
                &s.paid,
                &s.refunded,
                &s.version,
            ],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Orders HQ already holds as of a later (or the same) event are left.
    let fresh: Vec<&wire::OrderSnapshot> = orders
        .iter()
        .filter(|o| applied.contains(&o.order_no))
        .collect();
    let mut a = AttemptColumns::default();
    for o in &fresh {
        for at in &o.attempts {
            a.trade.push(at.out_trade_no.as_str());
            a.order.push(o.order_no.as_str());
            a.seq.push(at.seq as i32);
            a.provider.push(at.provider.as_str());
            a.channel.push(at.channel.as_str());
            a.amount.push(fen(at.amount)?);
            a.masked.push(at.code_masked.as_str());
            a.phase.push(at.phase.as_str());
            a.submitted.push(time_of(at.submitted_at)?);
            a.updated.push(time_of(at.updated_at)?);
            a.transaction.push(at.transaction_id.as_deref());
            a.paid_at.push(at.paid_at.as_deref());
            a.booked.push(at.booked_amount.map(fen).transpose()?);
            a.customer_paid.push(at.customer_paid.map(fen).transpose()?);
            a.discount.push(at.discount.map(fen).transpose()?);
            a.payer.push(at.payer.as_deref());
            a.error_code.push(at.error_code.as_deref());
            a.error_message.push(at.error_message.as_deref());
            a.revoke_tries.push(at.revoke_tries as i32);
            a.revoke_effect.push(at.revoke_effect.as_deref());
        }
    }
    if !a.trade.is_empty() {
        tx.execute(
            "INSERT INTO attempts (till_id, out_trade_no, order_no, seq, provider, channel, amount,
                                   code_masked, phase, submitted_at, updated_at, transaction_id,
                                   paid_at, booked_amount, customer_paid, discount, payer,
                                   error_code, error_message, revoke_tries, revoke_effect)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
                                      $7::bigint[], $8::text[], $9::text[], $10::timestamptz[],
                                      $11::timestamptz[], $12::text[], $13::text[], $14::bigint[],
                                      $15::bigint[], $16::bigint[], $17::text[], $18::text[],
                                      $19::text[], $20::int[], $21::text[])
             ON CONFLICT (till_id, out_trade_no) DO UPDATE SET
                 phase = EXCLUDED.phase, updated_at = EXCLUDED.updated_at,
                 transaction_id = EXCLUDED.transaction_id, paid_at = EXCLUDED.paid_at,
                 booked_amount = EXCLUDED.booked_amount, customer_paid = EXCLUDED.customer_paid,
                 discount = EXCLUDED.discount, payer = EXCLUDED.payer,
                 error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message,
                 revoke_tries = EXCLUDED.revoke_tries, revoke_effect = EXCLUDED.revoke_effect",
            &[
                &till.till_id,
                &a.trade,
                &a.order,
                &a.seq,
                &a.provider,
                &a.channel,
                &a.amount,
                &a.masked,
                &a.phase,
                &a.submitted,
                &a.updated,
                &a.transaction,
                &a.paid_at,
                &a.booked,
                &a.customer_paid,
                &a.discount,
                &a.payer,
                &a.error_code,
                &a.error_message,
                &a.revoke_tries,
                &a.revoke_effect,
            ],
        )
        .await?;
    }
    let mut r = RefundColumns::default();
    for o in &fresh {
        for rf in &o.refunds {
            r.refund.push(rf.refund_no.as_str());
            r.order.push(o.order_no.as_str());
            r.trade.push(rf.out_trade_no.as_str());
            r.out_refund.push(rf.out_refund_no.as_str());
            r.amount.push(fen(rf.amount)?);
            r.status.push(rf.status.as_str());
            r.refund_id.push(rf.refund_id.as_deref());
            r.reason.push(rf.reason.as_deref());
            r.operator.push(rf.operator_id.as_deref());
            r.error_code.push(rf.error_code.as_deref());
            r.error_message.push(rf.error_message.as_deref());
            r.created.push(time_of(rf.created_at)?);
        }
    }
    if !r.refund.is_empty() {
        tx.execute(
            "INSERT INTO refunds (till_id, refund_no, order_no, out_trade_no, out_refund_no, amount,
                                  status, refund_id, reason, operator_id, error_code, error_message,
                                  created_at)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                                      $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                                      $12::text[], $13::timestamptz[])
             ON CONFLICT (till_id, refund_no) DO UPDATE SET
                 status = EXCLUDED.status, refund_id = EXCLUDED.refund_id,
                 error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message",
            &[
                &till.till_id,
                &r.refund,
                &r.order,
                &r.trade,
                &r.out_refund,
                &r.amount,
                &r.status,
                &r.refund_id,
                &r.reason,
                &r.operator,
                &r.error_code,
                &r.error_message,
                &r.created,
            ],
        )
        .await?;
    }
    Ok(())
}

/// A batch's sales, column by column, for `unnest`.
#[derive(Default)]
struct SaleColumns<'a> {
    order: Vec<&'a str>,
    date: Vec<NaiveDate>,
    amount: Vec<i64>,
    subject: Vec<&'a str>,
    operator: Vec<Option<&'a str>>,
    created: Vec<DateTime<Utc>>,
    cancelled: Vec<bool>,
    reason: Vec<Option<&'a str>>,
    status: Vec<&'static str>,
    paid: Vec<i64>,
    refunded: Vec<i64>,
    version: Vec<i64>,
}

#[derive(Default)]
struct AttemptColumns<'a> {
    trade: Vec<&'a str>,
    order: Vec<&'a str>,
    seq: Vec<i32>,
    provider: Vec<&'a str>,
    channel: Vec<&'a str>,
    amount: Vec<i64>,
    masked: Vec<&'a str>,
    phase: Vec<&'a str>,
    submitted: Vec<DateTime<Utc>>,
    updated: Vec<DateTime<Utc>>,
    transaction: Vec<Option<&'a str>>,
    paid_at: Vec<Option<&'a str>>,
    booked: Vec<Option<i64>>,
    customer_paid: Vec<Option<i64>>,
    discount: Vec<Option<i64>>,
    payer: Vec<Option<&'a str>>,
    error_code: Vec<Option<&'a str>>,
    error_message: Vec<Option<&'a str>>,
    revoke_tries: Vec<i32>,
    revoke_effect: Vec<Option<&'a str>>,
}

#[derive(Default)]
struct RefundColumns<'a> {
    refund: Vec<&'a str>,
    order: Vec<&'a str>,
    trade: Vec<&'a str>,
    out_refund: Vec<&'a str>,
    amount: Vec<i64>,
    status: Vec<&'a str>,
    refund_id: Vec<Option<&'a str>>,
    reason: Vec<Option<&'a str>>,
    operator: Vec<Option<&'a str>>,
    error_code: Vec<Option<&'a str>>,
    error_message: Vec<Option<&'a str>>,
    created: Vec<DateTime<Utc>>,
}

/// Fen as PostgreSQL's bigint.
fn fen(v: u64) -> Result<i64, IngestError> {
    i64::try_from(v).map_err(|_| IngestError::Bad(format!("amount {v} fen")))
}
