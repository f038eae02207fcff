//! The console's people: accounts with a role, passwords hashed with
//! argon2id, sessions behind a random cookie (HQ keeps its SHA-256 only),
//! each with its own CSRF token, and logins limited per account and per
//! address. All of it in PostgreSQL, so any HQ instance serves any
//! session.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use deadpool_postgres::Pool;

use crate::db::DbError;

/// What an account may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads everything but the audit log and the accounts.
    Viewer,
    /// And resolves and refunds.
    Operator,
    /// And manages accounts and reads the audit log.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A session's holder.
#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub role: Role,
    /// Every form of this session carries it; a POST without it is refused.
    pub csrf: String,
}

/// How long a session lasts from its login.
pub const SESSION_HOURS: i64 = 8;
/// Failed logins in [`WINDOW_MIN`] after which an account, or an address,
/// must wait.
pub const MAX_FAILURES_ACCOUNT: i64 = 5;
pub const MAX_FAILURES_ADDRESS: i64 = 20;
pub const WINDOW_MIN: i64 = 15;

pub fn valid_username(u: &str) -> bool {
    (1..=32).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub fn check_password(p: &str) -> Result<(), String> {
    if p.chars().count() < 12 {
        return Err("a password has at least 12 characters".into());
    }
    if p.len() > 256 {
        return Err("a password has at most 256 bytes".into());
    }
    Ok(())
}

/// An argon2id hash of `password` (a PHC string with its salt). Slow on
/// purpose: call it off the async threads.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` is the one `phc` was made from.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches, verified against when the account does not
/// exist, so that a wrong name takes as long as a wrong password.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("no account has this password, ever").unwrap_or_default())
}

/// Adds an account, or gives an existing one a new password and role
/// (and enables it).
pub async fn set_account(
    pool: &Pool,
    username: &str,
    role: Role,
    password: &str,
) -> Result<(), DbError> {
    if !valid_username(username) {
        return Err(DbError::Other("username: 1-32 of A-Z a-z 0-9 - _ .".into()));
    }
    check_password(password).map_err(DbError::Other)?;
    let password = password.to_string();
    let phc = tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| DbError::Other(e.to_string()))?
        .map_err(DbError::Other)?;
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO accounts (username, password_hash, role) VALUES ($1, $2, $3)
             ON CONFLICT (username) DO UPDATE
             SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role, disabled = false",
            &[&username, &phc, &role.as_str()],
        )
        .await?;
    // A new password ends the account's sessions and lifts its lock.
    client
        .execute("DELETE FROM sessions WHERE username = $1", &[&username])
        .await?;
    client
        .execute(
            "DELETE FROM login_failures WHERE username = $1",
            &[&username],
        )
        .await?;
    Ok(())
}

/// Disables an account and ends its sessions.
pub async fn disable(pool: &Pool, username: &str) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "UPDATE accounts SET disabled = true WHERE username = $1",
            &[&username],
        )
        .await?;
    client
        .execute("DELETE FROM sessions WHERE username = $1", &[&username])
        .await?;
    Ok(n == 1)
}

/// The accounts: name, role, disabled, created (ms).
pub async fn accounts(pool: &Pool) -> Result<Vec<(String, String, bool, i64)>, DbError> {
    let client = pool.get().await?;
    Ok(client
        .query(
            "SELECT username, role, disabled, created_at FROM accounts ORDER BY username",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get::<_, chrono::DateTime<chrono::Utc>>(3)
                    .timestamp_millis(),
            )
        })
        .collect())
}

/// How a login went.
pub enum Login {
    /// The new session's cookie value, and the session.
    Ok(String, Session),
    Wrong,
    /// Too many failures lately, for this account or from this address:
    /// refused without looking at the password.
    Locked,
}

fn random_token() -> Result<String, DbError> {
    crate::tills::new_token()
}

fn sha(token: &str) -> Vec<u8> {
    crate::tills::token_hash(token)
}

pub async fn login(
    pool: &Pool,
    username: &str,
    password: &str,
    address: &str,
) -> Result<Login, DbError> {
    let mut client = pool.get().await?;
    // Counted and recorded before the password is looked at, one login of
    // an account at a time (a lock per name, across instances): logins
    // sent at once cannot all slip under the limit. The attempt counts as
    // a failure until it succeeds. The account's limit is per address, so
    // a stranger guessing cannot lock its owner out from elsewhere.
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('tillpay-hq login ' || $1))",
        &[&username],
    )
    .await?;
    let failures = tx
        .query_one(
            "SELECT count(*) FILTER (WHERE username = $1 AND address = $2),
                    count(*) FILTER (WHERE address = $2)
             FROM login_failures WHERE at > now() - make_interval(mins => $3::int)",
            &[&username, &address, &(WINDOW_MIN as i32)],
        )
        .await?;
    if failures.get::<_, i64>(0) >= MAX_FAILURES_ACCOUNT
        || failures.get::<_, i64>(1) >= MAX_FAILURES_ADDRESS
    {
        return Ok(Login::Locked);
    }
    tx.execute(
        "INSERT INTO login_failures (username, address) VALUES ($1, $2)",
        &[&username, &address],
    )
    .await?;
    tx.commit().await?;
    let row = client
        .query_opt(
            "SELECT password_hash, role FROM accounts WHERE username = $1 AND NOT disabled",
            &[&username],
        )
        .await?;
    let (phc, role) = match &row {
        Some(r) => (r.get::<_, String>(0), Role::parse(&r.get::<_, String>(1))),
        None => (decoy().to_string(), None),
    };
    // Argon2 takes about 19 MiB a check: a few at a time, whatever comes.
    static VERIFYING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let Ok(_permit) = VERIFYING.acquire().await else {
        return Ok(Login::Wrong);
    };
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .unwrap_or(false);
    let Some(role) = role.filter(|_| ok) else {
        return Ok(Login::Wrong);
    };
    let token = random_token()?;
    let csrf = random_token()?;
    client
        .execute(
            "INSERT INTO sessions (token_sha256, username, csrf, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(hours => $4::int))",
            &[&sha(&token), &username, &csrf, &(SESSION_HOURS as i32)],
        )
        .await?;
    // A success forgives the account's failures from this address (this
    // attempt among them).
    client
        .execute(
            "DELETE FROM login_failures WHERE username = $1 AND address = $2",
            &[&username, &address],
        )
        .await?;
    Ok(Login::Ok(
        token,
        Session {
            username: username.to_string(),
            role,
            csrf,
        },
    ))
}

/// The live session of a cookie value.
pub async fn session(pool: &Pool, token: &str) -> Result<Option<Session>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT s.username, a.role, s.csrf FROM sessions s JOIN accounts a USING (username)
             WHERE s.token_sha256 = $1 AND s.expires_at > now() AND NOT a.disabled",
            &[&sha(token)],
        )
        .await?;
    Ok(row.and_then(|r| {
        Some(Session {
            username: r.get(0),
            role: Role::parse(&r.get::<_, String>(1))?,
            csrf: r.get(2),
        })
    }))
}

pub async fn logout(pool: &Pool, token: &str) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "DELETE FROM sessions WHERE token_sha256 = $1 OR expires_at < now()",
            &[&sha(token)],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let h = hash("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("correct horse battery", "not a hash"));
        assert!(!verify("anything at all here", decoy()));
        assert_ne!(h, hash("correct horse battery").expect("hash"), "salted");
    }

    #[test]
    fn roles_are_ordered_and_names_checked() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!(Role::parse("operator"), Some(Role::Operator));
        assert_eq!(Role::parse("root"), None);
        assert!(valid_username("li.na_2"));
        assert!(!valid_username("li na") && !valid_username(""));
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars").is_ok());
    }
}
