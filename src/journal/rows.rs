//! Row types of the journal and the SQL that reads and writes them.

use rusqlite::{params, Connection, OptionalExtension, Params, Row};

use crate::domain::{Fen, Provider};
use crate::gateway::{GatewayNote, PaidBy, RevokeEffect};
use crate::machine::refund::{Refund, RefundStatus};
use crate::machine::{Attempt, Phase, Record};

use super::now_ms;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleRow {
    pub order_no: String,
    pub amount: Fen,
    pub subject: String,
    pub local_date: String,
    pub created_at: i64,
    pub cancelled: bool,
    /// Why it was cancelled before a code was scanned
    /// (`machine::sale::Unscanned` codes).
    pub cancel_reason: Option<String>,
    /// The cashier of the latest charge.
    pub operator_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub out_trade_no: String,
    pub order_no: String,
    pub seq: u32,
    pub provider: Provider,
    /// The channel it went through (`Channel::name`).
    pub channel: String,
    pub amount: Fen,
    pub code_masked: String,
    pub code_hash: Vec<u8>,
    pub state: Attempt,
    /// Wall-clock ms of the pay request, for recovery after a restart.
    pub submitted_at: i64,
    pub revoke_effect: Option<RevokeEffect>,
    pub transaction_id: Option<String>,
    pub paid_at: Option<String>,
    pub error: Option<GatewayNote>,
    pub updated_at: i64,
    /// The amount the gateway said it booked, when it said.
    pub booked: Option<Fen>,
    /// What the receipt shows of how the customer paid.
    pub paid_by: PaidBy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    /// The POS's refund number.
    pub refund_no: String,
    /// The number the gateway sees (see `domain::out_refund_no`).
    pub out_refund_no: String,
    pub order_no: String,
    pub out_trade_no: String,
    pub amount: Fen,
    pub reason: Option<String>,
    pub status: RefundStatus,
    /// The gateway accepted it: see [`Refund::accepted`].
    pub accepted: bool,
    pub refund_id: Option<String>,
    pub error: Option<GatewayNote>,
    pub created_at: i64,
    /// The cashier who asked for it.
    pub operator_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub at: i64,
    pub out_trade_no: Option<String>,
    pub kind: String,
    pub detail: String,
}

fn conv_err(col: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("unexpected {what} in the journal").into(),
    )
}

fn note(code: Option<String>, message: Option<String>) -> Option<GatewayNote> {
    code.map(|c| GatewayNote::new(c, message.unwrap_or_default()))
}

pub(super) fn sale(conn: &Connection, order_no: &str) -> rusqlite::Result<Option<SaleRow>> {
    conn.query_row(
        "SELECT order_no, amount, subject, local_date, created_at, cancelled, cancel_reason, operator_id FROM sales WHERE order_no = ?1",
        [order_no],
        sale_row,
    )
    .optional()
}

pub(super) fn sales_on(conn: &Connection, date: &str) -> rusqlite::Result<Vec<SaleRow>> {
    let mut stmt = conn.prepare(
        "SELECT order_no, amount, subject, local_date, created_at, cancelled, cancel_reason, operator_id FROM sales
         WHERE local_date = ?1 ORDER BY created_at",
    )?;
    let rows = stmt.query_map([date], sale_row)?;
    rows.collect()
}

pub(super) fn sale_row(r: &Row<'_>) -> rusqlite::Result<SaleRow> {
    Ok(SaleRow {
        order_no: r.get(0)?,
        amount: Fen(r.get::<_, i64>(1)? as u64),
        subject: r.get(2)?,
        local_date: r.get(3)?,
        created_at: r.get(4)?,
        cancelled: r.get::<_, i64>(5)? != 0,
        cancel_reason: r.get(6)?,
        operator_id: r.get(7)?,
    })
}

const ATTEMPT_COLS: &str =
    "out_trade_no, order_no, seq, provider, amount, code_masked, code_hash, phase,
    submitted_at, cancel_requested, seen_paid, revoke_tries, revoke_effect, transaction_id, paid_at,
    error_code, error_message, updated_at, booked_amount, used_number, background_revoke, channel,
    customer_paid, discount, payer";

pub(super) fn attempts_where<P: Params>(
    conn: &Connection,
    clause: &str,
    p: P,
) -> rusqlite::Result<Vec<AttemptRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ATTEMPT_COLS} FROM attempts WHERE {clause}"
    ))?;
    let rows = stmt.query_map(p, attempt_row)?;
    rows.collect()
}

fn attempt_row(r: &Row<'_>) -> rusqlite::Result<AttemptRow> {
    let provider: String = r.get(3)?;
    let phase: String = r.get(7)?;
    let effect: Option<String> = r.get(12)?;
    Ok(AttemptRow {
        out_trade_no: r.get(0)?,
        order_no: r.get(1)?,
        seq: r.get(2)?,
        provider: Provider::parse(&provider).ok_or_else(|| conv_err(3, "provider"))?,
        channel: r
            .get::<_, Option<String>>(21)?
            .unwrap_or_else(|| provider.clone()),
        amount: Fen(r.get::<_, i64>(4)? as u64),
        code_masked: r.get(5)?,
        code_hash: r.get(6)?,
        state: Attempt {
            phase: Phase::parse(&phase).ok_or_else(|| conv_err(7, "phase"))?,
            cancel_requested: r.get::<_, i64>(9)? != 0,
            seen_paid: r.get::<_, i64>(10)? != 0,
            revoke_tries: r.get(11)?,
            used_number: r.get::<_, i64>(19)? != 0,
            background_revoke: r.get::<_, i64>(20)? != 0,
        },
        submitted_at: r.get(8)?,
        revoke_effect: match effect.as_deref() {
            None => None,
            Some("closed") => Some(RevokeEffect::Closed),
            Some("refunded") => Some(RevokeEffect::Refunded),
            Some("unstated") => Some(RevokeEffect::Unstated),
            Some(_) => return Err(conv_err(12, "revoke effect")),
        },
        transaction_id: r.get(13)?,
        paid_at: r.get(14)?,
        error: note(r.get(15)?, r.get(16)?),
        updated_at: r.get(17)?,
        booked: r.get::<_, Option<i64>>(18)?.map(|f| Fen(f as u64)),
        paid_by: PaidBy {
            customer_paid: r.get::<_, Option<i64>>(22)?.map(|f| Fen(f as u64)),
            discount: r.get::<_, Option<i64>>(23)?.map(|f| Fen(f as u64)),
            payer: r.get(24)?,
        },
    })
}

pub(super) fn effect_str(e: RevokeEffect) -> &'static str {
    match e {
        RevokeEffect::Closed => "closed",
        RevokeEffect::Refunded => "refunded",
        RevokeEffect::Unstated => "unstated",
    }
}

pub(super) fn insert_attempt(conn: &Connection, a: &AttemptRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO attempts (out_trade_no, order_no, seq, provider, amount, code_masked, code_hash,
         phase, submitted_at, updated_at, channel) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            a.out_trade_no,
            a.order_no,
            a.seq,
            a.provider.as_str(),
            a.amount.0 as i64,
            a.code_masked,
            a.code_hash,
            a.state.phase.as_str(),
            a.submitted_at,
            a.updated_at,
            // Null for the provider's own channel (read back as the provider).
            (a.channel != a.provider.as_str()).then_some(&a.channel)
        ],
    )?;
    Ok(())
}

pub(super) fn update_attempt(
    conn: &Connection,
    out_trade_no: &str,
    a: &Attempt,
    rec: &Record,
) -> rusqlite::Result<()> {
    let paid = rec.paid.as_ref();
    // What a query said while polling is history, not the attempt's error.
    let error = rec.note.as_ref().filter(|_| !rec.history_only);
    let changed = conn.execute(
        "UPDATE attempts SET phase = ?2, cancel_requested = ?3, seen_paid = ?4, revoke_tries = ?5,
         used_number = ?13, background_revoke = ?14, revoke_effect = COALESCE(?6, revoke_effect),
         transaction_id = COALESCE(?7, transaction_id), paid_at = COALESCE(?8, paid_at),
         error_code = CASE WHEN error_code = 'AMOUNT_MISMATCH' THEN error_code
                           ELSE COALESCE(?9, error_code) END,
         error_message = CASE WHEN error_code = 'AMOUNT_MISMATCH' THEN error_message
                              ELSE COALESCE(?10, error_message) END,
         updated_at = ?11, booked_amount = COALESCE(?12, booked_amount),
         customer_paid = COALESCE(?15, customer_paid), discount = COALESCE(?16, discount),
         payer = COALESCE(?17, payer)
         WHERE out_trade_no = ?1",
        params![
            out_trade_no,
            a.phase.as_str(),
            a.cancel_requested as i64,
            a.seen_paid as i64,
            a.revoke_tries,
            rec.revoke_effect.map(effect_str),
            paid.map(|p| p.transaction_id.as_str()),
            paid.map(|p| p
                .paid_at
                .clone()
                .unwrap_or_else(|| chrono::Local::now().to_rfc3339())),
            error.map(|n| n.code.as_str()),
            error.map(|n| n.message.as_str()),
            now_ms(),
            paid.and_then(|p| p.amount).map(|f| f.0 as i64),
            a.used_number as i64,
            a.background_revoke as i64,
            paid.and_then(|p| p.paid_by.customer_paid)
                .map(|f| f.0 as i64),
            paid.and_then(|p| p.paid_by.discount).map(|f| f.0 as i64),
            paid.and_then(|p| p.paid_by.payer.as_deref())
        ],
    )?;
    if changed != 1 {
        return Err(rusqlite::Error::QueryReturnedNoRows);
    }
    Ok(())
}

/// What one transition adds to the history beyond its kind: the phase it
/// reached when that is not the kind's own name (a `paid` event reached
/// `paid`), and only what is not at its default (the attempt row holds the
/// rest, the transaction id among it).
pub(super) fn record_detail(a: &Attempt, rec: &Record) -> serde_json::Value {
    let mut d = serde_json::Map::new();
    if a.phase.as_str() != rec.kind {
        d.insert("phase".into(), a.phase.as_str().into());
    }
    if let Some(n) = &rec.note {
        d.insert("note".into(), serde_json::json!(n));
    }
    if let Some(e) = rec.revoke_effect {
        d.insert("revoke_effect".into(), effect_str(e).into());
    }
    if a.revoke_tries > 0 {
        d.insert("revoke_tries".into(), a.revoke_tries.into());
    }
    if a.used_number {
        d.insert("used_number".into(), true.into());
    }
    if a.background_revoke {
        d.insert("background_revoke".into(), true.into());
    }
    serde_json::Value::Object(d)
}

pub(super) fn event(
    conn: &Connection,
    order_no: &str,
    out_trade_no: Option<&str>,
    kind: &str,
    detail: &serde_json::Value,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO events (at, order_no, out_trade_no, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now_ms(), order_no, out_trade_no, kind, detail.to_string()],
    )?;
    Ok(())
}

pub(super) fn events_of(conn: &Connection, order_no: &str) -> rusqlite::Result<Vec<EventRow>> {
    let mut stmt = conn.prepare(
        "SELECT at, out_trade_no, kind, detail FROM events WHERE order_no = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([order_no], |r| {
        Ok(EventRow {
            at: r.get(0)?,
            out_trade_no: r.get(1)?,
            kind: r.get(2)?,
            detail: r.get(3)?,
        })
    })?;
    rows.collect()
}

pub(super) fn insert_refund(conn: &Connection, r: &RefundRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO refunds (refund_no, order_no, out_trade_no, amount, reason, status, created_at, updated_at,
         out_refund_no, accepted, operator_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)",
        params![
            r.refund_no,
            r.order_no,
            r.out_trade_no,
            r.amount.0 as i64,
            r.reason,
            r.status.as_str(),
            r.created_at,
            r.out_refund_no,
            r.accepted as i64,
            r.operator_id
        ],
    )?;
    Ok(())
}

pub(super) fn refunds_where<P: Params>(
    conn: &Connection,
    clause: &str,
    p: P,
) -> rusqlite::Result<Vec<RefundRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT refund_no, order_no, out_trade_no, amount, reason, status, refund_id, error_code,
         error_message, created_at, COALESCE(out_refund_no, refund_no), accepted, operator_id
         FROM refunds WHERE {clause}"
    ))?;
    let rows = stmt.query_map(p, |r| {
        let status: String = r.get(5)?;
        Ok(RefundRow {
            refund_no: r.get(0)?,
            out_refund_no: r.get(10)?,
            accepted: r.get::<_, i64>(11)? != 0,
            order_no: r.get(1)?,
            out_trade_no: r.get(2)?,
            amount: Fen(r.get::<_, i64>(3)? as u64),
            reason: r.get(4)?,
            status: RefundStatus::parse(&status).ok_or_else(|| conv_err(5, "refund status"))?,
            refund_id: r.get(6)?,
            error: note(r.get(7)?, r.get(8)?),
            created_at: r.get(9)?,
            operator_id: r.get(12)?,
        })
    })?;
    rows.collect()
}

/// The order of an attempt that sent the code with this keyed hash. An
/// attempt whose pay request never left (`pay_not_sent`: no connection,
/// TLS refused, signing failed) does not count: the code is still good.
impl RefundRow {
    /// The refund machine's state of this row.
    pub fn state(&self) -> Refund {
        Refund {
            status: self.status,
            accepted: self.accepted,
            tries: 0,
        }
    }
}

pub(super) fn order_that_sent(
    conn: &Connection,
    code_hash: &[u8],
) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT order_no FROM attempts WHERE code_hash = ?1 AND not_sent = 0 LIMIT 1",
        [code_hash],
        |r| r.get(0),
    )
    .optional()
}
