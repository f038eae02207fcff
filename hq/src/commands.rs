//! Operators' requests of a till, made at HQ: recorded with who asked and
//! when, handed to the till in its next sync answer, carried out there as
//! its own POS would ask it, and marked done with what they came to.

use deadpool_postgres::Pool;
use serde_json::{json, Value};
use tillpay::sync::wire::Order;

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no order {order} of till {till} at HQ")]
    NoSale { till: String, order: String },
    /// The request does not fit the sale as HQ last saw it.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for CommandError {
    fn from(e: tokio_postgres::Error) -> Self {
        CommandError::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for CommandError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        CommandError::Db(DbError::Pool(e))
    }
}

fn valid_id(s: &str) -> bool {
    crate::tills::valid_id(s)
}

/// Who asked, for the audit log: the console's account (or the fleet
/// API's `api:<operator>`), from where, and what else to keep.
#[derive(Debug, Clone)]
pub struct Asked {
    pub username: String,
    pub address: String,
    pub detail: Value,
}

/// Queues `order` for `till`, asked by `by`; its command id. Checked
/// against HQ's copy of the sale (the till checks again against its own).
/// The audit log's entry goes in the same transaction: no request without
/// its entry.
pub async fn request(
    pool: &Pool,
    till: &str,
    by: &str,
    order: Order,
    asked: &Asked,
) -> Result<i64, CommandError> {
    if by.trim().is_empty() || by.chars().count() > 64 {
        return Err(CommandError::Invalid("operator: 1-64 characters".into()));
    }
    let (order_no, kind) = match &order {
        Order::Resolve { order_no, note, .. } => {
            if note.trim().is_empty() {
                return Err(CommandError::Invalid(
                    "note: say what the merchant portal showed".into(),
                ));
            }
            (order_no.clone(), "resolve")
        }
        Order::Refund {
            order_no,
            refund_no,
            amount,
            ..
        } => {
            if !valid_id(refund_no) {
                return Err(CommandError::Invalid(
                    "refund_no: 1-32 of A-Z a-z 0-9 - _".into(),
                ));
            }
            if *amount == 0 {
                return Err(CommandError::Invalid("amount: at least 1 fen".into()));
            }
            (order_no.clone(), "refund")
        }
        Order::Unknown => return Err(CommandError::Invalid("not a command HQ knows".into())),
    };
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Some(sale) = tx
        .query_opt(
            "SELECT status, paid_amount, refunded_amount FROM sales
             WHERE till_id = $1 AND order_no = $2 FOR UPDATE",
            &[&till, &order_no],
        )
        .await?
    else {
        return Err(CommandError::NoSale {
            till: till.to_string(),
            order: order_no,
        });
    };
    let status: String = sale.get(0);
    match &order {
        Order::Resolve { .. } if status != "needs_attention" => {
            return Err(CommandError::Conflict(format!(
                "order {order_no} is {status}: only a sale that needs attention is resolved"
            )));
        }
        Order::Resolve { .. } => {
            // Two operators' verdicts on one sale: the first stands until
            // the till has carried it out.
            let pending = tx
                .query_opt(
                    "SELECT requested_by FROM commands WHERE till_id = $1 AND order_no = $2
                       AND kind = 'resolve' AND done_at IS NULL LIMIT 1",
                    &[&till, &order_no],
                )
                .await?;
            if let Some(row) = pending {
                return Err(CommandError::Conflict(format!(
                    "order {order_no}: {} has already asked to resolve it; wait for the till",
                    row.get::<_, String>(0)
                )));
            }
        }
        Order::Refund {
            amount, refund_no, ..
        } => {
            // A refund number names one refund of the till's, whoever
            // asked for it: a POS's own or an operator's.
            let used = tx
                .query_opt(
                    "SELECT 1 FROM refunds WHERE till_id = $1 AND refund_no = $2
                     UNION ALL
                     SELECT 1 FROM commands WHERE till_id = $1 AND kind = 'refund'
                       AND command->>'refund_no' = $2
                     LIMIT 1",
                    &[&till, refund_no],
                )
                .await?;
            if used.is_some() {
                return Err(CommandError::Conflict(format!(
                    "refund number {refund_no} is already used at till {till}"
                )));
            }
            // What is left: paid, less the till's refunds that have not
            // failed (confirmed or still on their way), the requests asked
            // at HQ that the till has not recorded yet, and the refunds
            // HQ made itself that the till has not recorded (it may have
            // refused the command).
            let taken = tx
                .query_one(
                    "SELECT
                       (SELECT COALESCE(sum(amount), 0) FROM refunds
                        WHERE till_id = $1 AND order_no = $2 AND status <> 'failed')::bigint,
                       (SELECT COALESCE(sum((c.command->>'amount')::bigint), 0) FROM commands c
                        WHERE c.till_id = $1 AND c.order_no = $2 AND c.kind = 'refund'
                          AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.till_id = c.till_id
                                            AND r.refund_no = c.command->>'refund_no')
                          AND (c.done_at IS NULL
                               OR (c.refunded_by_hq IS NOT NULL
                                   AND c.refunded_by_hq->>'kind' NOT IN ('failed', 'not_found'))))::bigint",
                    &[&till, &order_no],
                )
                .await?;
            let left = sale.get::<_, i64>(1) - taken.get::<_, i64>(0) - taken.get::<_, i64>(1);
            if i64::try_from(*amount).map_or(true, |a| a > left) {
                return Err(CommandError::Conflict(format!(
                    "order {order_no}: {amount} fen is more than the {} fen left to refund",
                    left.max(0)
                )));
            }
        }
        _ => {}
    }
    let body = serde_json::to_value(&order).map_err(|e| CommandError::Invalid(e.to_string()))?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO commands (till_id, order_no, kind, command, requested_by)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&till, &order_no, &kind, &body, &by],
        )
        .await?
        .get(0);
    let mut detail = asked.detail.clone();
    if let Value::Object(m) = &mut detail {
        m.insert("command".into(), json!(id));
    }
    tx.execute(
        "INSERT INTO audit (username, address, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
        &[
            &asked.username,
            &asked.address,
            &kind,
            &format!("{till}/{order_no}"),
            &detail,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Commands, newest first, of a till (and an order), or all.
pub async fn list(pool: &Pool, till: Option<&str>, order: Option<&str>) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, till_id, order_no, kind, command, requested_by, requested_at,
                    delivered_at, done_at, ok, result
             FROM commands
             WHERE ($1::text IS NULL OR till_id = $1) AND ($2::text IS NULL OR order_no = $2)
             ORDER BY id DESC LIMIT 1000",
            &[&till, &order],
        )
        .await?;
    let ms = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_millis());
    Ok(Value::Array(
        rows.iter()
            .map(|r| {
                let done: Option<chrono::DateTime<chrono::Utc>> = r.get(8);
                let state = match (
                    r.get::<_, Option<bool>>(9),
                    r.get::<_, Option<chrono::DateTime<chrono::Utc>>>(7),
                ) {
                    (Some(true), _) => "done",
                    (Some(false), _) => "refused",
                    (None, Some(_)) => "delivered",
                    (None, None) => "queued",
                };
                json!({
                    "id": r.get::<_, i64>(0),
                    "till_id": r.get::<_, String>(1),
                    "order_no": r.get::<_, String>(2),
                    "kind": r.get::<_, String>(3),
                    "command": r.get::<_, Value>(4),
                    "requested_by": r.get::<_, String>(5),
                    "requested_at": r.get::<_, chrono::DateTime<chrono::Utc>>(6).timestamp_millis(),
                    "delivered_at": ms(r.get(7)),
                    "done_at": ms(done),
                    "state": state,
                    "result": r.get::<_, Option<String>>(10),
                })
            })
            .collect(),
    ))
}
