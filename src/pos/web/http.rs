//! `POST /v1/<method>`: the params as the JSON body, the result (200) or
//! the JSON-RPC error object (4xx/5xx) as the answer.

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::Request;
use serde_json::{json, Map, Value};

use super::{json_answer, Answer};
use crate::pos::rpc::{self, Context};
use crate::pos::server::MAX_LINE;

/// The HTTP status of a JSON-RPC error code, so a POS can branch on it
/// without reading the body.
fn status_of(code: i64) -> u16 {
    match code {
        rpc::METHOD_NOT_FOUND | 1005 => 404,
        1001 | 1002 => 409,
        1003 | 1006 => 422,
        1004 | 1007 => 503,
        _ => 400,
    }
}

pub(super) async fn call(req: Request<Incoming>, ctx: &Arc<Context>) -> Answer {
    let method = req.uri().path().trim_start_matches("/v1/").to_string();
    let body = match Limited::new(req.into_body(), MAX_LINE).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return json_answer(
                413,
                &json!({"code": rpc::INVALID_REQUEST, "message": format!("body longer than {MAX_LINE} bytes")}),
            )
        }
    };
    let params = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return json_answer(
                    400,
                    &json!({"code": rpc::INVALID_PARAMS, "message": "the body must be one JSON object of params"}),
                )
            }
            Err(e) => {
                return json_answer(
                    400,
                    &json!({"code": rpc::PARSE_ERROR, "message": format!("parse error: {e}")}),
                )
            }
        }
    };
    match rpc::call(ctx, &method, &params).await {
        Ok(v) => json_answer(200, &v),
        Err((code, message)) => {
            json_answer(status_of(code), &json!({"code": code, "message": message}))
        }
    }
}

/// The answer to a browser's preflight from an allowed origin (the guard
/// refused the others): it may POST JSON with the token.
pub(super) fn preflight() -> Answer {
    let mut r = json_answer(204, &Value::Null);
    *r.body_mut() = Default::default();
    let h = r.headers_mut();
    h.insert(
        hyper::header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    h.insert(
        hyper::header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        hyper::header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    r
}
