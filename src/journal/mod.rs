//! The journal: a SQLite file (WAL, `synchronous=FULL`) that holds every
//! sale, attempt, refund and operator resolution, plus an append-only
//! history of every transition. Each change is one short `BEGIN IMMEDIATE`
//! transaction (payment-rules.md §14). A full auth code is never stored: only its
//! masked form and a keyed hash (the key lives in the journal itself, so a
//! hash is useless outside this till).

mod archive;
mod outbox;
mod reads;
mod refunds;
mod resolutions;
mod rows;
mod schema;
mod shifts;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::domain::{out_trade_no, AuthCode, Fen};
use crate::machine::sale::{Unscanned, DAEMON_RESTARTED};
use crate::machine::{Attempt, Phase, Record};

pub use crate::machine::refund::RefundStatus;
pub use archive::{dir_of as archive_dir, file_of as archive_file, open as open_archive, Archived};
pub use rows::{AttemptRow, EventRow, RefundRow, SaleRow};
pub use shifts::{Carried, ShiftRow, ShiftRows};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("journal: cannot create {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    /// A payment rule refused the change (payment-rules.md §2, §17): the
    /// caller's request, not the journal, is at fault; the till runs on.
    #[error("{0}")]
    Refused(String),
    /// The file holds something this tillpay cannot read (an unknown
    /// provider, a schema from a newer tillpay): fail-stop.
    #[error("journal: {0}")]
    Corrupt(String),
    #[error("unknown order {0}")]
    UnknownOrder(String),
    /// An earlier attempt (of this order, given here) sent the payment code.
    #[error("this payment code was already used (order {0}); ask the customer to refresh it")]
    CodeUsed(String),
    /// The journal's worker thread failed (a panic): as bad as an I/O
    /// error, the till stops taking charges.
    #[error("journal: internal failure: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, JournalError>;

pub struct Journal {
    path: std::path::PathBuf,
    conn: Mutex<Connection>,
    code_key: ring::hmac::Key,
    till_id: String,
}

/// A constraint the request broke (a duplicate refund number, say) is the
/// caller's refusal, not a journal failure: it must not stop the till.
fn conflict(e: rusqlite::Error) -> JournalError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            JournalError::Refused(format!("refused by the journal: {e}"))
        }
        _ => JournalError::Sqlite(e),
    }
}

/// The sales a restart cancels: rounds whose code was never sent.
const ORPHANS: &str = "SELECT order_no FROM sales WHERE waiting = 1 AND cancelled = 0";

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn local_date() -> String {
    chrono::Local::now().format("%Y-%m-%d").to_string()
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`, with the
    /// durability settings of payment-rules.md §14, and migrates its schema.
    pub fn open(path: &Path, till_id: &str) -> Result<Journal> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > schema::VERSION {
            return Err(JournalError::Corrupt(format!(
                "{} was written by a newer tillpay (schema {version}, this one knows {}): upgrade tillpay",
                path.display(),
                schema::VERSION
            )));
        }
        schema::migrate(&mut conn)?;
        let key = Self::code_key(&mut conn)?;
        Ok(Journal {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            code_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
            till_id: till_id.to_string(),
        })
    }

    fn code_key(conn: &mut Connection) -> Result<Vec<u8>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<Vec<u8>> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'code_hash_key'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let key = match existing {
            Some(k) => k,
            None => {
                let mut k = vec![0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k).map_err(
                    |_| JournalError::Internal("no randomness for the code hash key".into()),
                )?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('code_hash_key', ?1)",
                    [&k],
                )?;
                k
            }
        };
        tx.commit()?;
        Ok(key)
    }

    /// The file it lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The till this journal belongs to.
    pub fn till_id(&self) -> &str {
        &self.till_id
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic in another thread mid-transaction rolled that transaction
        // back; the connection itself is still sound.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keyed hash that recognises a rescan of the same code: its first
    /// 128 bits.
    pub fn code_hash(&self, code: &AuthCode) -> Vec<u8> {
        let tag = ring::hmac::sign(&self.code_key, code.expose().as_bytes());
        tag.as_ref()[..16].to_vec()
    }

    /// The order of an earlier attempt that sent this same code, if any.
    pub fn code_used(&self, code: &AuthCode) -> Result<Option<String>> {
        let hash = self.code_hash(code);
        let conn = self.lock();
        Ok(rows::order_that_sent(&conn, &hash)?)
    }

    /// Reads one PRAGMA's value as text (for tests and `doctor`).
    pub fn pragma(&self, name: &str) -> Result<String> {
        let conn = self.lock();
        let v: rusqlite::types::Value =
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?;
        Ok(match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
    }

    pub fn sale(&self, order_no: &str) -> Result<Option<(SaleRow, Vec<AttemptRow>)>> {
        let conn = self.lock();
        let Some(sale) = rows::sale(&conn, order_no)? else {
            return Ok(None);
        };
        let attempts = rows::attempts_where(&conn, "order_no = ?1 ORDER BY seq", [order_no])?;
        Ok(Some((sale, attempts)))
    }

    /// Creates the sale if it is new, or opens a new round of it: open
    /// (`waiting`) until its code is sent or the round is cancelled. An
    /// existing sale with another amount is a conflict
    /// (docs/pos-protocol.md `order_conflict`).
    /// `operator_id` is the cashier of this charge: the sale's from now on.
    pub fn ensure_sale(
        &self,
        order_no: &str,
        amount: Fen,
        subject: &str,
        operator_id: Option<&str>,
    ) -> Result<SaleRow> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(existing) = rows::sale(&tx, order_no)? {
            if existing.amount != amount {
                return Err(JournalError::Refused(format!(
                    "order {order_no} exists with amount {} fen",
                    existing.amount.0
                )));
            }
            // A new round: open until its code is sent.
            tx.execute(
                "UPDATE sales SET cancelled = 0, cancel_reason = NULL, waiting = 1 WHERE order_no = ?1",
                [order_no],
            )?;
            if operator_id.is_some() && operator_id != existing.operator_id.as_deref() {
                tx.execute(
                    "UPDATE sales SET operator_id = ?2 WHERE order_no = ?1",
                    params![order_no, operator_id],
                )?;
                // Another cashier charges it again: the row keeps the
                // latest, the history who came before.
                rows::event(
                    &tx,
                    order_no,
                    None,
                    "cashier",
                    &serde_json::json!({"operator_id": operator_id, "was": existing.operator_id}),
                )?;
            }
            tx.commit()?;
            return Ok(SaleRow {
                cancelled: false,
                cancel_reason: None,
                operator_id: operator_id
                    .map(str::to_string)
                    .or(existing.operator_id.clone()),
                ..existing
            });
        }
        let now = now_ms();
        tx.execute(
            "INSERT INTO sales (order_no, amount, subject, local_date, created_at, operator_id, waiting) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
            params![order_no, amount.0 as i64, subject, local_date(), now, operator_id],
        )?;
        // The sale's creation is its row (created_at, the cashier): the
        // history holds what changes after it.
        tx.commit()?;
        Ok(SaleRow {
            order_no: order_no.to_string(),
            amount,
            subject: subject.to_string(),
            local_date: local_date(),
            created_at: now,
            cancelled: false,
            cancel_reason: None,
            operator_id: operator_id.map(str::to_string),
        })
    }

    /// A charge of the sale waits for a scan: if the daemon stops before
    /// one comes, the next start cancels that round.
    pub fn arm(&self, order_no: &str) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE sales SET waiting = 1, cancelled = 0, cancel_reason = NULL WHERE order_no = ?1",
            [order_no],
        )?;
        rows::event(&tx, order_no, None, "waiting_scan", &serde_json::json!({}))?;
        tx.commit()?;
        Ok(())
    }

    /// Ends a round of the sale before any code was submitted: cancelled.
    pub fn cancel_sale(&self, order_no: &str, why: Unscanned) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE sales SET cancelled = 1, waiting = 0, cancel_reason = ?2 WHERE order_no = ?1",
            [order_no, why.code],
        )?;
        rows::event(
            &tx,
            order_no,
            None,
            "cancelled",
            &serde_json::json!({"why": why.message, "code": why.code}),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Commits a new attempt in `submitting` before any byte of its pay
    /// request is sent (payment-rules.md §3). Refused while another attempt of the
    /// sale is in flight or paid (payment-rules.md §2).
    /// Through the provider's own channel (the channel of the same name).
    pub fn begin_attempt(&self, order_no: &str, code: &AuthCode) -> Result<AttemptRow> {
        self.begin_attempt_on(order_no, code, code.provider().as_str())
    }

    /// As [`Journal::begin_attempt`], through the channel named `channel`.
    pub fn begin_attempt_on(
        &self,
        order_no: &str,
        code: &AuthCode,
        channel: &str,
    ) -> Result<AttemptRow> {
        let hash = self.code_hash(code);
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sale = rows::sale(&tx, order_no)?
            .ok_or_else(|| JournalError::UnknownOrder(order_no.to_string()))?;
        let earlier = rows::attempts_where(&tx, "order_no = ?1 ORDER BY seq", [order_no])?;
        if let Some(live) = earlier.iter().find(|a| !a.state.phase.is_final()) {
            return Err(JournalError::Refused(format!(
                "order {order_no} is still in flight ({})",
                live.out_trade_no
            )));
        }
        if earlier.iter().any(|a| a.state.phase == Phase::Paid) {
            return Err(JournalError::Refused(format!(
                "order {order_no} is already paid"
            )));
        }
        if earlier
            .iter()
            .any(|a| a.state.phase == Phase::NeedsAttention)
        {
            return Err(JournalError::Refused(format!(
                "order {order_no} has an attempt that needs an operator"
            )));
        }
        // Both gateways take a payment code once; sending it again could only
        // fail, or worse muddle a second order with the first one's trade.
        if let Some(first) = rows::order_that_sent(&tx, &hash)? {
            return Err(JournalError::CodeUsed(first));
        }
        let seq = earlier.iter().map(|a| a.seq).max().unwrap_or(0) + 1;
        let row = AttemptRow {
            out_trade_no: out_trade_no(&self.till_id, order_no, seq),
            order_no: order_no.to_string(),
            seq,
            provider: code.provider(),
            channel: channel.to_string(),
            amount: sale.amount,
            code_masked: code.masked(),
            code_hash: hash,
            state: Attempt::submitting(),
            submitted_at: now_ms(),
            revoke_effect: None,
            transaction_id: None,
            paid_at: None,
            error: None,
            updated_at: now_ms(),
            booked: None,
            paid_by: Default::default(),
        };
        rows::insert_attempt(&tx, &row).map_err(conflict)?;
        tx.execute(
            "UPDATE sales SET waiting = 0 WHERE order_no = ?1",
            [order_no],
        )?;
        // The attempt row is the record of its submission (submitted_at,
        // provider, channel, masked code, amount): no event repeats it.
        tx.commit()?;
        Ok(row)
    }

    /// Commits one transition of the state machine.
    pub fn record(&self, out_trade_no: &str, a: &Attempt, rec: &Record) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let order_no: String = tx.query_row(
            "SELECT order_no FROM attempts WHERE out_trade_no = ?1",
            [out_trade_no],
            |r| r.get(0),
        )?;
        rows::update_attempt(&tx, out_trade_no, a, rec)?;
        if rec.kind == "pay_not_sent" {
            tx.execute(
                "UPDATE attempts SET not_sent = 1 WHERE out_trade_no = ?1",
                [out_trade_no],
            )?;
        }
        rows::event(
            &tx,
            &order_no,
            Some(out_trade_no),
            rec.kind,
            &rows::record_detail(a, rec),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Sales left waiting for a scan when the daemon stopped (or rung up
    /// and never sent): that round is cancelled.
    pub fn cancel_orphan_sales(&self) -> Result<usize> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let orphans: Vec<String> = {
            let mut stmt = tx.prepare(ORPHANS)?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for o in &orphans {
            tx.execute(
                "UPDATE sales SET cancelled = 1, waiting = 0, cancel_reason = ?2 WHERE order_no = ?1",
                [o.as_str(), DAEMON_RESTARTED.code],
            )?;
            rows::event(
                &tx,
                o,
                None,
                "cancelled",
                &serde_json::json!({"why": DAEMON_RESTARTED.message, "code": DAEMON_RESTARTED.code}),
            )?;
        }
        tx.commit()?;
        Ok(orphans.len())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_support;
