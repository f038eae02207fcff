//! HQ's own journal of relayed calls, written before each goes out, as
//! the till writes its own: `relay_orders` says which gateway an order
//! number went to (or that a revoke closed it before any pay went out),
//! `relay_calls` holds every call with its answer, or none if HQ died
//! waiting. A payment code is kept masked only.

use deadpool_postgres::Pool;
use serde_json::Value;

use crate::db::DbError;

/// What HQ knows of an order number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// Never seen.
    Unseen,
    /// Another till's: not this one's to touch.
    OtherTill,
    /// Revoked before any pay request went out: none ever will.
    Closed,
    /// Sent (or being sent) to `channel`; `age_ms` since the latest pay
    /// request under it could have reached the gateway (its answer, or
    /// its start and the gateway timeout when it has none).
    Sent { channel: String, age_ms: i64 },
}

/// An order's standing, as one till asks about it; `timeout_ms` is how
/// long HQ waits for a gateway.
pub async fn order(
    pool: &Pool,
    till: &str,
    out_trade_no: &str,
    timeout_ms: i64,
) -> Result<Order, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT o.till_id, o.closed, o.channel,
                    (extract(epoch FROM now() - COALESCE(
                        (SELECT max(COALESCE(c.answered_at, c.started_at + make_interval(secs => $2::float8 / 1000)))
                         FROM relay_calls c
                         WHERE c.till_id = o.till_id AND c.out_trade_no = o.out_trade_no AND c.op = 'pay'),
                        o.created_at)) * 1000)::bigint
             FROM relay_orders o WHERE o.out_trade_no = $1",
            &[&out_trade_no, &(timeout_ms as f64)],
        )
        .await?;
    Ok(match row {
        None => Order::Unseen,
        Some(r) if r.get::<_, String>(0) != till => Order::OtherTill,
        Some(r) if r.get::<_, bool>(1) => Order::Closed,
        Some(r) => Order::Sent {
            channel: r.get::<_, Option<String>>(2).unwrap_or_default(),
            age_ms: r.get(3),
        },
    })
}

/// Records a pay call before it goes out: the order number is claimed for
/// this till and `channel` (unless a revoke closed it or another till has
/// it, which is what comes back then) and the call is journaled, in one
/// transaction. The call's id, when it may go.
pub async fn begin_pay(
    pool: &Pool,
    till: &str,
    out_trade_no: &str,
    provider: &str,
    channel: &str,
    amount: i64,
    detail: &Value,
) -> Result<Result<i64, Order>, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO relay_orders (out_trade_no, till_id, provider, channel, amount, closed)
         VALUES ($1, $2, $3, $4, $5, false) ON CONFLICT (out_trade_no) DO NOTHING",
        &[&out_trade_no, &till, &provider, &channel, &amount],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT till_id, closed FROM relay_orders WHERE out_trade_no = $1 FOR UPDATE",
            &[&out_trade_no],
        )
        .await?;
    if row.get::<_, String>(0) != till {
        return Ok(Err(Order::OtherTill));
    }
    if row.get::<_, bool>(1) {
        return Ok(Err(Order::Closed));
    }
    let sent_before = tx
        .query_opt(
            "SELECT 1 FROM relay_calls WHERE till_id = $1 AND out_trade_no = $2 AND op = 'pay' LIMIT 1",
            &[&till, &out_trade_no],
        )
        .await?;
    if sent_before.is_some() {
        return Ok(Err(Order::Sent {
            channel: channel.to_string(),
            age_ms: 0,
        }));
    }
    let id = insert_call(&tx, till, Some(out_trade_no), "pay", Some(channel), detail).await?;
    tx.commit().await?;
    Ok(Ok(id))
}

/// A revoke of an order number HQ never sent anywhere: closes it for good
/// (a pay request for it arriving later is refused), unless a pay claimed
/// it first. What HQ knows of it afterwards.
pub async fn close_unseen(
    pool: &Pool,
    till: &str,
    out_trade_no: &str,
    timeout_ms: i64,
) -> Result<Order, DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO relay_orders (out_trade_no, till_id, closed) VALUES ($1, $2, true)
             ON CONFLICT (out_trade_no) DO NOTHING",
            &[&out_trade_no, &till],
        )
        .await?;
    drop(client);
    order(pool, till, out_trade_no, timeout_ms).await
}

async fn insert_call(
    client: &impl deadpool_postgres::GenericClient,
    till: &str,
    out_trade_no: Option<&str>,
    op: &str,
    channel: Option<&str>,
    detail: &Value,
) -> Result<i64, DbError> {
    Ok(client
        .query_one(
            "INSERT INTO relay_calls (till_id, out_trade_no, op, channel, detail)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&till, &out_trade_no, &op, &channel, detail],
        )
        .await?
        .get(0))
}

/// Records any other call before it goes out; its id.
pub async fn begin(
    pool: &Pool,
    till: &str,
    out_trade_no: Option<&str>,
    op: &str,
    channel: Option<&str>,
    detail: &Value,
) -> Result<i64, DbError> {
    let client = pool.get().await?;
    insert_call(&client, till, out_trade_no, op, channel, detail).await
}

/// A call's answer, as relayed to the till.
pub async fn answered(pool: &Pool, id: i64, answer: &Value) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE relay_calls SET answer = $2, answered_at = now() WHERE id = $1",
            &[&id, answer],
        )
        .await?;
    Ok(())
}

/// The relayed calls of an order number, oldest first, for the fleet API.
pub async fn calls(pool: &Pool, till: &str, out_trade_nos: &[String]) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, out_trade_no, op, channel, detail, started_at, answered_at, answer
             FROM relay_calls WHERE till_id = $1 AND out_trade_no = ANY($2) ORDER BY id",
            &[&till, &out_trade_nos],
        )
        .await?;
    let ms = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_millis());
    Ok(Value::Array(
        rows.iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.get::<_, i64>(0),
                    "out_trade_no": r.get::<_, Option<String>>(1),
                    "op": r.get::<_, String>(2),
                    "channel": r.get::<_, Option<String>>(3),
                    "detail": r.get::<_, Value>(4),
                    "started_at": ms(r.get(5)),
                    "answered_at": ms(r.get(6)),
                    "answer": r.get::<_, Option<Value>>(7),
                })
            })
            .collect(),
    ))
}
