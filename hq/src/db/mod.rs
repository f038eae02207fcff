//! HQ's PostgreSQL: a pool of connections and the versioned schema. HQ
//! keeps no state of its own beside it, so several instances can serve
//! one database behind a load balancer.

mod migrations;

pub use migrations::VERSION;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Other(String),
}

/// A pool of `size` connections to `url`.
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    let pg: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| DbError::Other(e.to_string()))?;
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| DbError::Other(e.to_string()))
}

/// Brings the schema to the newest version; instances starting at once
/// take turns (an advisory lock), each migration in its own transaction.
pub async fn migrate(pool: &Pool) -> Result<usize, DbError> {
    let mut client = pool.get().await?;
    migrations::run(&mut client).await
}
