//! The audit log: every login, logout and action in the console, who did
//! it, from where and when. Written in the same request as the action;
//! read by admins.

use deadpool_postgres::Pool;
use serde_json::Value;

use crate::db::DbError;

pub async fn record(
    pool: &Pool,
    username: Option<&str>,
    address: &str,
    action: &str,
    target: Option<&str>,
    detail: Value,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO audit (username, address, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
            &[&username, &address, &action, &target, &detail],
        )
        .await?;
    Ok(())
}

/// One line of the log.
pub struct Entry {
    pub at_ms: i64,
    pub username: Option<String>,
    pub address: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Value,
    pub id: i64,
}

/// The newest `limit` entries before id `before` (all, when `None`), of
/// `user` only when given.
pub async fn recent(
    pool: &Pool,
    limit: i64,
    before: Option<i64>,
    user: Option<&str>,
) -> Result<Vec<Entry>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query(
            "SELECT at, username, address, action, target, detail, id FROM audit
             WHERE ($2::bigint IS NULL OR id < $2) AND ($3::text IS NULL OR username = $3)
             ORDER BY id DESC LIMIT $1",
            &[&limit, &before, &user],
        )
        .await?
        .iter()
        .map(|r| Entry {
            at_ms: r
                .get::<_, chrono::DateTime<chrono::Utc>>(0)
                .timestamp_millis(),
            username: r.get(1),
            address: r.get(2),
            action: r.get(3),
            target: r.get(4),
            detail: r.get(5),
            id: r.get(6),
        })
        .collect())
}
