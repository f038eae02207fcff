//! HQ's one HTTP service: `POST /v1/sync` for tills (each with its own
//! token), the fleet API for operators (the API token), `GET /healthz`
//! for a load balancer. JSON in and out; errors are `{"error": "..."}`
//! with a status to branch on.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::Pool;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::commands::{self, CommandError};
use crate::fleet::{self, SalesFilter};
use crate::ingest::{self, IngestError};
use crate::tills;
use tillpay::gateway::hq::wire as relay_wire;

/// A batch of 500 events with their orders' rows is well under this.
const MAX_BODY: usize = 8 << 20;
/// Connections served at once per instance; more wait in the backlog.
const MAX_CONNECTIONS: usize = 1024;

type Answer = Response<Full<Bytes>>;

pub struct Hq {
    pub pool: Pool,
    pub api_token: String,
    /// The merchant's gateways, for tills in relay mode.
    pub relay: crate::relay::Relay,
    /// Whether a client's address is the last `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
    /// The console's own origin (`https://hq.example.com`), when set: a
    /// POST must come from it.
    pub console_origin: Option<String>,
}

pub async fn serve(listener: TcpListener, hq: Arc<Hq>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let hq = hq.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let hq = hq.clone();
                async move { Ok::<_, std::convert::Infallible>(route(req, &hq, peer).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

fn answer(status: u16, body: &Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: u16, message: impl std::fmt::Display) -> Answer {
    answer(status, &json!({"error": message.to_string()}))
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Constant-time, so the API token cannot be guessed byte by byte.
fn same(a: &str, b: &str) -> bool {
    tillpay::gateway::constant_time_eq(a.as_bytes(), b.as_bytes())
}

const NEEDS_TOKEN: &str = "the fleet API needs the API token (Authorization: Bearer …)";

async fn route(req: Request<Incoming>, hq: &Hq, peer: std::net::SocketAddr) -> Answer {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (_, p) if p == "/console" || p.starts_with("/console/") => {
            let forwarded = hq
                .trust_forwarded_for
                .then(|| req.headers().get("x-forwarded-for")?.to_str().ok())
                .flatten()
                .and_then(|v| v.rsplit(',').next())
                .map(|a| a.trim().chars().take(64).collect::<String>())
                .filter(|a| !a.is_empty());
            let address = forwarded.unwrap_or_else(|| peer.ip().to_string());
            crate::console::route(req, hq, address).await
        }
        (&Method::GET, "/healthz") => match hq.pool.get().await {
            Ok(c) => match c.query_one("SELECT 1", &[]).await {
                Ok(_) => answer(200, &json!({"ok": true})),
                Err(e) => error(503, format!("database: {e}")),
            },
            Err(e) => error(503, format!("database: {e}")),
        },
        (&Method::POST, tillpay::sync::wire::SYNC_PATH) => sync(req, hq).await,
        (&Method::POST, relay_wire::RELAY_PATH) => relay(req, hq).await,
        (&Method::GET, tillpay::sync::wire::SYNC_PATH) => whoami(&req, hq).await,
        (&Method::GET, p) if p.starts_with("/v1/") => {
            if !bearer(&req).is_some_and(|t| same(t, &hq.api_token)) {
                return error(401, NEEDS_TOKEN);
            }
            let query = req.uri().query().unwrap_or_default().to_string();
            fleet_get(hq, p, &query).await
        }
        (&Method::POST, p) if p.starts_with("/v1/sales/") => {
            if !bearer(&req).is_some_and(|t| same(t, &hq.api_token)) {
                return error(401, NEEDS_TOKEN);
            }
            let p = p.to_string();
            fleet_post(req, hq, &p, peer).await
        }
        _ => error(404, format!("no such endpoint: {} {path}", req.method())),
    }
}

/// `GET /v1/sync` with a till's token: which till HQ knows it as, and how
/// far it has synced (for `tillpay doctor`).
async fn whoami(req: &Request<Incoming>, hq: &Hq) -> Answer {
    let Some(token) = bearer(req) else {
        return error(401, "a till syncs with its token (Authorization: Bearer …)");
    };
    let till = match tills::by_token(&hq.pool, token).await {
        Ok(Some(t)) => t,
        Ok(None) => return error(401, "unknown till token"),
        Err(e) => return error(503, e),
    };
    match tills::high_water(&hq.pool, &till.till_id).await {
        Ok(hw) => answer(
            200,
            &json!({"till_id": till.till_id, "store_id": till.store_id, "high_water": hw}),
        ),
        Err(e) => error(503, e),
    }
}

async fn sync(req: Request<Incoming>, hq: &Hq) -> Answer {
    let Some(token) = bearer(&req).map(str::to_string) else {
        return error(401, "a till syncs with its token (Authorization: Bearer …)");
    };
    let till = match tills::by_token(&hq.pool, &token).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            tracing::warn!("sync refused: unknown till token");
            return error(401, "unknown till token");
        }
        Err(e) => return error(503, e),
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(413, format!("a batch is at most {MAX_BODY} bytes")),
    };
    let batch: tillpay::sync::wire::Batch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(400, format!("not a sync batch: {e}")),
    };
    match ingest::ingest(&hq.pool, &till, &batch).await {
        Ok(a) => answer(200, &serde_json::to_value(a).unwrap_or_default()),
        Err(e @ IngestError::NotYours { .. }) => {
            tracing::warn!(till = %till.till_id, batch_till = %batch.till_id, "sync refused: another till's rows");
            error(403, e)
        }
        Err(e @ IngestError::Bad(_)) => error(400, e),
        Err(e @ IngestError::Db(_)) => {
            tracing::warn!(till = %till.till_id, error = %e, "sync failed");
            error(503, e)
        }
    }
}

/// `POST /v1/relay`: one gateway call of a till in relay mode. Every
/// request from a known till gets a 200 with a signed, classified answer
/// (a call HQ could not journal is answered "not sent"); an unknown token
/// or a body that is not a call gets an unsigned error, which the till
/// treats as no answer.
async fn relay(req: Request<Incoming>, hq: &Hq) -> Answer {
    let Some(token) = bearer(&req).map(str::to_string) else {
        return error(
            401,
            "a till relays with its token (Authorization: Bearer …)",
        );
    };
    let till = match tills::by_token(&hq.pool, &token).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            tracing::warn!("relay refused: unknown till token");
            return error(401, "unknown till token");
        }
        Err(e) => return error(503, e),
    };
    let body = match Limited::new(req.into_body(), 64 << 10).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(413, "a relayed call is at most 64 KiB"),
    };
    let request: relay_wire::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(400, format!("not a relayed call: {e}")),
    };
    let op = request.call.op();
    tracing::info!(till = %till.till_id, op, "relayed call");
    let answer = hq.relay.answer(&hq.pool, &till.till_id, request.call).await;
    let reply = relay_wire::Reply {
        nonce: request.nonce,
        answer,
    };
    let bytes = match serde_json::to_vec(&reply) {
        Ok(b) => b,
        Err(e) => return error(500, e),
    };
    let signature = relay_wire::sign(&token, &bytes);
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&signature) {
        r.headers_mut().insert(relay_wire::SIGNATURE, v);
    }
    r
}

/// `key=value&…`, percent-decoded.
pub(crate) fn params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

pub(crate) fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn fleet_get(hq: &Hq, path: &str, query: &str) -> Answer {
    let params = params(query);
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let day = match param("day").map(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => return error(400, "day: a date such as 2026-12-01"),
    };
    let result = match path {
        "/v1/tills" => fleet::tills(&hq.pool).await,
        "/v1/commands" => {
            commands::list(
                &hq.pool,
                param("till").as_deref(),
                param("order").as_deref(),
            )
            .await
        }
        "/v1/attention" => fleet::attention(&hq.pool).await,
        "/v1/totals" => {
            let Some(day) = day else {
                return error(400, "day is required: /v1/totals?day=YYYY-MM-DD");
            };
            fleet::totals(&hq.pool, day).await
        }
        "/v1/sales" => {
            let limit = match param("limit").map(|l| l.parse::<i64>()) {
                None => 100,
                Some(Ok(l)) if (1..=10_000).contains(&l) => l,
                Some(_) => return error(400, "limit: 1-10000"),
            };
            let filter = SalesFilter {
                day,
                store: param("store"),
                till: param("till"),
                status: param("status"),
                limit,
            };
            fleet::sales(&hq.pool, &filter).await
        }
        p => match p.strip_prefix("/v1/sales/").and_then(|r| r.split_once('/')) {
            Some((till, order)) => {
                let order = decode(order);
                match fleet::sale(&hq.pool, till, &order).await {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => return error(404, format!("no order {order} of till {till}")),
                    Err(e) => Err(e),
                }
            }
            None => return error(404, format!("no such endpoint: GET {p}")),
        },
    };
    match result {
        Ok(v) => answer(200, &v),
        Err(e) => error(503, e),
    }
}

/// `POST /v1/sales/{till}/{order}/resolve` or `…/refund`: an operator's
/// request, queued for the till. The body names the operator.
async fn fleet_post(
    req: Request<Incoming>,
    hq: &Hq,
    path: &str,
    peer: std::net::SocketAddr,
) -> Answer {
    let Some((till, rest)) = path
        .strip_prefix("/v1/sales/")
        .and_then(|r| r.split_once('/'))
    else {
        return error(404, format!("no such endpoint: POST {path}"));
    };
    let Some((order, action)) = rest.rsplit_once('/') else {
        return error(404, format!("no such endpoint: POST {path}"));
    };
    let (till, order_no) = (till.to_string(), decode(order));
    let body = match Limited::new(req.into_body(), 64 << 10).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(413, "a request body is at most 64 KiB"),
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error(400, "the body must be one JSON object"),
    };
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let Some(operator) = text("operator") else {
        return error(400, "operator: who asks (required)");
    };
    let order = match action {
        "resolve" => {
            let as_paid = match text("as").as_deref() {
                Some("paid") => true,
                Some("unpaid") => false,
                _ => return error(400, "as: \"paid\" or \"unpaid\""),
            };
            tillpay::sync::wire::Order::Resolve {
                order_no,
                as_paid,
                transaction_id: text("transaction_id"),
                paid_at: text("paid_at"),
                note: text("note").unwrap_or_default(),
                operator: format!("hq:{operator}"),
            }
        }
        "refund" => {
            let Some(amount) = v.get("amount").and_then(Value::as_u64) else {
                return error(400, "amount: fen, a whole number (required)");
            };
            let Some(refund_no) = text("refund_no") else {
                return error(400, "refund_no: required");
            };
            tillpay::sync::wire::Order::Refund {
                order_no,
                refund_no,
                amount,
                reason: text("reason"),
                operator_id: text("operator_id"),
            }
        }
        _ => return error(404, format!("no such endpoint: POST {path}")),
    };
    // The fleet API's requests are in the console's audit log too.
    let asked = commands::Asked {
        username: format!("api:{}", operator.chars().take(64).collect::<String>()),
        address: peer.ip().to_string(),
        detail: v.clone(),
    };
    match commands::request(&hq.pool, &till, &operator, order.clone(), &asked).await {
        Ok(id) => {
            // Recorded for the till first; a sale paid through HQ is
            // refunded by HQ now, whether or not its till is online.
            let by_hq = match hq.relay.operator_refund(&hq.pool, &till, id, &order).await {
                Ok(a) => a.map(|a| serde_json::to_value(a).unwrap_or_default()),
                Err(e) => return error(503, format!("queued for the till as command {id}; {e}")),
            };
            answer(
                202,
                &json!({"command_id": id, "state": "queued", "refunded_by_hq": by_hq}),
            )
        }
        Err(e @ CommandError::NoSale { .. }) => error(404, e),
        Err(e @ CommandError::Conflict(_)) => error(409, e),
        Err(e @ CommandError::Invalid(_)) => error(400, e),
        Err(e @ CommandError::Db(_)) => error(503, e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_parameters_are_split_and_percent_decoded() {
        assert_eq!(
            super::params("day=2026-12-01&store=S%201&x"),
            vec![
                ("day".to_string(), "2026-12-01".to_string()),
                ("store".to_string(), "S 1".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
        assert_eq!(super::decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
