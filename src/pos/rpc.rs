//! JSON-RPC 2.0 for the POS (docs/pos-protocol.md): parsing a line into a request,
//! checking params, calling the engine, and shaping answers.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::engine::{ChargeRequest, Engine, EngineError, PaymentStatus, ResolveRequest};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;

/// What the daemon knows beyond the engine, for `status`.
pub struct Context {
    pub engine: Arc<Engine>,
    pub till_id: String,
    /// The scanner's device, whether it is connected, and why it cannot be
    /// used if it cannot, when one is configured.
    pub scanner: Option<crate::scanner_link::ScannerStatus>,
    /// The journal's sync to HQ, when `[hq]` is configured.
    pub hq: Option<Arc<std::sync::Mutex<crate::sync::SyncStatus>>>,
}

/// A request that parsed; `id` is `None` for a notification.
pub struct Request {
    pub id: Option<Value>,
    pub method: String,
    pub params: Map<String, Value>,
}

pub fn error(id: Option<&Value>, code: i64, message: impl Into<String>) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": {"code": code, "message": message.into()},
    })
}

pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// Parses one line. `Err` carries the error response to send back.
pub fn parse(line: &[u8]) -> Result<Request, Value> {
    let v: Value = serde_json::from_slice(line)
        .map_err(|e| error(None, PARSE_ERROR, format!("parse error: {e}")))?;
    let Value::Object(mut obj) = v else {
        return Err(error(
            None,
            INVALID_REQUEST,
            "a request must be one JSON object (batches are not supported)",
        ));
    };
    let id = obj.remove("id");
    if let Some(id) = &id {
        if !(id.is_string() || id.is_number() || id.is_null()) {
            return Err(error(
                None,
                INVALID_REQUEST,
                "id must be a string, a number or null",
            ));
        }
    }
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(error(
            id.as_ref(),
            INVALID_REQUEST,
            "jsonrpc must be \"2.0\"",
        ));
    }
    let Some(Value::String(method)) = obj.remove("method") else {
        return Err(error(
            id.as_ref(),
            INVALID_REQUEST,
            "method must be a string",
        ));
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(error(
                id.as_ref(),
                INVALID_PARAMS,
                "params must be an object",
            ))
        }
    };
    Ok(Request { id, method, params })
}

fn bad(param: &str, what: &str) -> EngineError {
    EngineError::InvalidParams(format!("{param}: {what}"))
}

fn string(p: &Map<String, Value>, key: &str) -> Result<Option<String>, EngineError> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(key, "must be a string")),
    }
}

fn required_string(p: &Map<String, Value>, key: &str) -> Result<String, EngineError> {
    string(p, key)?.ok_or_else(|| bad(key, "is required"))
}

/// An amount in fen: a JSON integer, never a float or a string.
fn amount(p: &Map<String, Value>) -> Result<u64, EngineError> {
    match p.get("amount") {
        None => Err(bad("amount", "is required (integer fen)")),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|v| *v > 0)
            .ok_or_else(|| bad("amount", "must be a positive integer number of fen")),
        Some(_) => Err(bad("amount", "must be an integer number of fen")),
    }
}

fn check_known(p: &Map<String, Value>, known: &[&str]) -> Result<(), EngineError> {
    match p.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(bad(
            k,
            &format!(
                "is not a param of this method (expected {})",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, EngineError> {
    serde_json::to_value(v).map_err(|e| EngineError::InvalidParams(e.to_string()))
}

/// Runs one request against the engine.
pub async fn call(
    ctx: &Context,
    method: &str,
    p: &Map<String, Value>,
) -> Result<Value, (i64, String)> {
    let r = match method {
        "charge" => charge(ctx, p).await,
        "cancel" => {
            match check_known(p, &["order_no"]).and_then(|()| required_string(p, "order_no")) {
                Ok(o) => ctx.engine.cancel(&o).await.and_then(to_value),
                Err(e) => Err(e),
            }
        }
        "query" => {
            match check_known(p, &["order_no"]).and_then(|()| required_string(p, "order_no")) {
                Ok(o) => ctx.engine.payment(&o).await.and_then(to_value),
                Err(e) => Err(e),
            }
        }
        "watch" => watch(ctx, p).await,
        "refund" => refund(ctx, p).await,
        "resolve" => resolve(ctx, p).await,
        "status" => status(ctx).await,
        "list" => list(ctx, p).await,
        "shift.report" => shift_report(ctx, p).await,
        "shift.close" => shift_close(ctx, p).await,
        other => return Err((METHOD_NOT_FOUND, format!("method not found: {other}"))),
    };
    r.map_err(|e| (error_code(&e), e.to_string()))
}

async fn charge(ctx: &Context, p: &Map<String, Value>) -> Result<Value, EngineError> {
    check_known(
        p,
        &["order_no", "amount", "subject", "auth_code", "operator_id"],
    )?;
    let req = ChargeRequest {
        order_no: required_string(p, "order_no")?,
        amount: amount(p)?,
        subject: string(p, "subject")?,
        auth_code: string(p, "auth_code")?,
        operator_id: string(p, "operator_id")?,
    };
    to_value(ctx.engine.charge(req).await?)
}

/// The Payment now, with `seq`: the number of the last notification it
/// reflects. A client following the order applies the order's later
/// notifications (a higher `seq`) to it, and ignores the others.
async fn watch(ctx: &Context, p: &Map<String, Value>) -> Result<Value, EngineError> {
    check_known(p, &["order_no"])?;
    let order_no = required_string(p, "order_no")?;
    let (payment, seq) = ctx.engine.watch(&order_no).await?;
    let mut v = to_value(payment)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("seq".into(), json!(seq));
    }
    Ok(v)
}

async fn refund(ctx: &Context, p: &Map<String, Value>) -> Result<Value, EngineError> {
    check_known(
        p,
        &["order_no", "refund_no", "amount", "reason", "operator_id"],
    )?;
    let order_no = required_string(p, "order_no")?;
    let refund_no = required_string(p, "refund_no")?;
    let amount = amount(p)?;
    let reason = string(p, "reason")?;
    let operator_id = string(p, "operator_id")?;
    to_value(
        ctx.engine
            .refund(&order_no, &refund_no, amount, reason, operator_id)
            .await?,
    )
}

/// An operator's verdict on an attempt that needs attention (what
/// `tillpay journal resolve` sends while the daemon runs).
async fn resolve(ctx: &Context, p: &Map<String, Value>) -> Result<Value, EngineError> {
    check_known(
        p,
        &[
            "order_no",
            "as",
            "note",
            "operator",
            "transaction_id",
            "paid_at",
        ],
    )?;
    let verdict = required_string(p, "as")?;
    let as_paid = match verdict.as_str() {
        "paid" => true,
        "unpaid" => false,
        _ => return Err(bad("as", "must be \"paid\" or \"unpaid\"")),
    };
    let req = ResolveRequest {
        order_no: required_string(p, "order_no")?,
        as_paid,
        transaction_id: string(p, "transaction_id")?,
        paid_at: string(p, "paid_at")?,
        operator: required_string(p, "operator")?,
        note: required_string(p, "note")?,
    };
    to_value(ctx.engine.resolve(req).await?)
}

async fn status(ctx: &Context) -> Result<Value, EngineError> {
    let (waiting, in_flight, attention) = ctx.engine.counts().await;
    // Never "0 need attention" when the journal could not be read.
    let (attention, read_error) = match attention {
        Ok(n) => (json!(n), None),
        Err(e) => (Value::Null, Some(e.to_string())),
    };
    // The write that stopped the till, or else why it cannot be read now.
    let journal_error = ctx.engine.journal_failure().or(read_error);
    let scanner = match &ctx.scanner {
        Some(f) => {
            let (device, connected, problem) = f();
            json!({"device": device, "connected": connected, "problem": problem})
        }
        None => json!({"device": null, "connected": false, "problem": null}),
    };
    Ok(json!({
        "till_id": ctx.till_id,
        "version": env!("CARGO_PKG_VERSION"),
        "scanner": scanner,
        "waiting_order": waiting,
        "in_flight": in_flight,
        "in_flight_orders": ctx.engine.in_flight_orders(),
        "gateways": ctx.engine.routes(),
        "routing": ctx.engine.routing(),
        "needs_attention": attention,
        "journal_ok": ctx.engine.journal_ok() && journal_error.is_none(),
        "journal_error": journal_error,
        "hq": ctx.hq.as_ref().map(|h| {
            let s = h.lock().unwrap_or_else(|p| p.into_inner()).clone();
            json!({"high_water": s.high_water, "last_ok_at": s.last_ok_at, "failing": s.failing})
        }),
    }))
}

async fn list(ctx: &Context, p: &Map<String, Value>) -> Result<Value, EngineError> {
    check_known(p, &["date", "status"])?;
    let status = match string(p, "status")? {
        Some(s) => Some(
            serde_json::from_value::<PaymentStatus>(Value::String(s.clone())).map_err(|_| {
                bad(
                    "status",
                    "must be one of waiting_scan, paying, paid, failed, cancelled, revoked, \
                     needs_attention",
                )
            })?,
        ),
        None => None,
    };
    let date = match string(p, "date")? {
        Some(d) => {
            chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map_err(|_| bad("date", "must be YYYY-MM-DD"))?;
            d
        }
        None => chrono::Local::now().format("%Y-%m-%d").to_string(),
    };
    let mut payments = ctx.engine.list(&date).await?;
    payments.retain(|p| status.is_none_or(|s| p.status == s));
    to_value(payments)
}

/// The running shift's report, or a closed one's (`shift_no`) as kept.
async fn shift_report(ctx: &Context, p: &Map<String, Value>) -> Result<Value, EngineError> {
    check_known(p, &["shift_no"])?;
    let shift_no = match p.get("shift_no") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("shift_no", "must be a positive integer"))?,
        ),
    };
    let j = ctx.engine.journal().clone();
    let report = on_journal(move || match shift_no {
        None => crate::shift::running(&j).map(Some),
        Some(n) => crate::shift::of(&j, n),
    })
    .await?;
    match report {
        Some(r) => to_value(r),
        None => Err(bad("shift_no", "no such shift in the journal")),
    }
}

/// Closes the running shift: its report (kept in the journal), with the
/// number of the shift that opened as `next_shift_no`.
async fn shift_close(ctx: &Context, p: &Map<String, Value>) -> Result<Value, EngineError> {
    check_known(p, &[])?;
    let j = ctx.engine.journal().clone();
    let (report, next) = on_journal(move || crate::shift::close(&j)).await?;
    let mut v = to_value(report)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("next_shift_no".into(), json!(next.shift_no));
    }
    tracing::info!(shift = %v["shift_no"], "shift closed");
    Ok(v)
}

/// Runs a journal read or write off the async threads. A refusal (the
/// shift was closed meanwhile) is the caller's conflict; any other failure
/// means the journal cannot answer now.
async fn on_journal<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::journal::JournalError> + Send + 'static,
) -> Result<T, EngineError> {
    use crate::journal::JournalError;
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(JournalError::Refused(m))) => Err(EngineError::OrderConflict(m)),
        Ok(Err(e)) => Err(EngineError::JournalUnavailable(e.to_string())),
        Err(e) => Err(EngineError::JournalUnavailable(e.to_string())),
    }
}

/// The JSON-RPC error code of an engine error (docs/pos-protocol.md,
/// "Errors"): the numbers are the POS protocol's, not the engine's.
pub fn error_code(e: &EngineError) -> i64 {
    match e {
        EngineError::Busy => 1001,
        EngineError::OrderConflict(_) => 1002,
        EngineError::ProviderUnavailable(_) => 1003,
        EngineError::JournalUnavailable(_) => 1004,
        EngineError::UnknownOrder(_) => 1005,
        EngineError::RefundRejected(_) => 1006,
        EngineError::PaymentUnresolved(_) => 1007,
        EngineError::InvalidParams(_) => -32602,
    }
}
