//! Tills and their tokens. HQ keeps only a token's SHA-256: a copy of the
//! database lets no one sync as a till.

use deadpool_postgres::Pool;

use crate::db::DbError;

/// Who a sync request comes from, by its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Till {
    pub till_id: String,
    pub store_id: String,
}

pub fn token_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// A new random token: 32 bytes, URL-safe base64.
pub fn new_token() -> Result<String, DbError> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| DbError::Other("no randomness for a till token".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Ids of stores and tills: what a till's own config accepts as its id.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Registers `till_id` in `store_id` (the store is made if new) with a new
/// token, which is returned once. A till that exists gets a new token (the
/// old one stops working).
pub async fn add(pool: &Pool, store_id: &str, till_id: &str) -> Result<String, DbError> {
    let token = new_token()?;
    register(pool, store_id, till_id, &token).await?;
    Ok(token)
}

/// Registers `till_id` in `store_id` with `token` (see [`add`]).
pub async fn register(
    pool: &Pool,
    store_id: &str,
    till_id: &str,
    token: &str,
) -> Result<(), DbError> {
    for (what, id) in [("store", store_id), ("till", till_id)] {
        if !valid_id(id) {
            return Err(DbError::Other(format!(
                "{what} id {id:?}: 1-32 of A-Z a-z 0-9 - _"
            )));
        }
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO stores (store_id) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&store_id],
    )
    .await?;
    let moved = tx
        .query_opt(
            "SELECT store_id FROM tills WHERE till_id = $1 AND store_id <> $2",
            &[&till_id, &store_id],
        )
        .await?;
    if let Some(row) = moved {
        let other: String = row.get(0);
        return Err(DbError::Other(format!(
            "till {till_id} belongs to store {other}: a till's sales stay with their store"
        )));
    }
    tx.execute(
        "INSERT INTO tills (till_id, store_id, token_sha256) VALUES ($1, $2, $3)
         ON CONFLICT (till_id) DO UPDATE SET token_sha256 = EXCLUDED.token_sha256",
        &[&till_id, &store_id, &token_hash(token)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The till whose token this is.
pub async fn by_token(pool: &Pool, token: &str) -> Result<Option<Till>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT till_id, store_id FROM tills WHERE token_sha256 = $1",
            &[&token_hash(token)],
        )
        .await?;
    Ok(row.map(|r| Till {
        till_id: r.get(0),
        store_id: r.get(1),
    }))
}

/// How far `till_id` has synced.
pub async fn high_water(pool: &Pool, till_id: &str) -> Result<i64, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT high_water FROM tills WHERE till_id = $1",
            &[&till_id],
        )
        .await?;
    Ok(row.get(0))
}
