//! [`RelayGateway`]: each gateway call posted to HQ as one JSON request
//! with the till's token; HQ's answer believed only when its signature and
//! nonce hold. Anything else — no answer, an HTTP error, a bad signature —
//! is an unknown answer, except a connection that never opened: then HQ
//! never had the request, so no gateway did either.

use std::time::Duration;

use async_trait::async_trait;

use super::channel::{to_lines, RelayConfig, CARRIES};
use super::wire::{self, Answer, BillReply, Call, Code, Reply, Request};
use crate::domain::Provider;
use crate::gateway::text::{cut, error_chain};
use crate::gateway::{
    BillAnswer, Gateway, GatewayNote, PayAnswer, PayRequest, QueryAnswer, ReadError, RefundAnswer,
    RefundRequest, RevokeAnswer, SetupError,
};

/// An answer is a few hundred bytes; a bill a till's day of rows.
const MAX_ANSWER_BYTES: usize = 64 << 20;
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RelayGateway {
    url: String,
    token: String,
    min_revoke_delay: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for RelayGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayGateway")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Why a call has no answer to believe.
enum Failure {
    /// HQ never had the request.
    NotSent(GatewayNote),
    /// HQ may have had it, and may have sent it on.
    Lost(GatewayNote),
}

impl RelayGateway {
    pub fn new(cfg: &RelayConfig, _till_id: &str, http_timeout: Duration) -> Result<Self, SetupError> {
        let http = crate::gateway::http_client(&[], http_timeout.min(MAX_CONNECT_TIMEOUT), http_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("hq.url: the HTTP client cannot be built: {e}"))?;
        Ok(RelayGateway {
            url: format!("{}{}", cfg.url, wire::RELAY_PATH),
            token: cfg.token.clone(),
            min_revoke_delay: cfg.min_revoke_delay,
            http,
        })
    }

    async fn call(&self, call: Call) -> Result<Answer, Failure> {
        let op = call.op();
        let nonce = crate::gateway::nonce();
        let request = Request {
            nonce: nonce.clone(),
            call,
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| Failure::NotSent(GatewayNote::new("NOT_SENT", e.to_string())))?;
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let text = error_chain(&e);
                if e.is_connect() {
                    tracing::warn!(op, error = %text, "could not reach HQ; nothing was sent");
                    Failure::NotSent(GatewayNote::new("NOT_SENT", text))
                } else {
                    tracing::warn!(op, error = %text, "no answer from HQ after the request left");
                    let code = if e.is_timeout() { "TIMEOUT" } else { "NO_ANSWER" };
                    Failure::Lost(GatewayNote::new(code, text))
                }
            })?;
        let status = resp.status();
        let signature = resp
            .headers()
            .get(wire::SIGNATURE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = crate::gateway::read_capped(resp, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| {
                let text = match e {
                    ReadError::TooLarge(cap) => format!("HQ's answer is larger than {cap} bytes"),
                    ReadError::Transport(e) => error_chain(&e),
                };
                tracing::warn!(op, error = %text, "HQ's answer was cut off");
                Failure::Lost(GatewayNote::new("NO_ANSWER", text))
            })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            tracing::warn!(op, %status, answer = %cut(&text, 200), "HQ refused the request");
            return Err(Failure::Lost(GatewayNote::new(
                format!("HQ_{}", status.as_u16()),
                cut(&text, 200).to_string(),
            )));
        }
        if !signature.is_some_and(|s| wire::verify(&self.token, &bytes, &s)) {
            tracing::error!(op, "HQ's answer does not carry a valid signature: treated as no answer");
            return Err(Failure::Lost(GatewayNote::new(
                "BAD_SIGNATURE",
                "HQ's answer is not signed for this till's token",
            )));
        }
        let reply: Reply = serde_json::from_slice(&bytes).map_err(|e| {
            tracing::error!(op, error = %e, "HQ's signed answer does not parse");
            Failure::Lost(GatewayNote::new("BAD_ANSWER", e.to_string()))
        })?;
        if reply.nonce != nonce {
            tracing::error!(op, "HQ's answer is to another request: treated as no answer");
            return Err(Failure::Lost(GatewayNote::new(
                "WRONG_ANSWER",
                "HQ's answer is to another request",
            )));
        }
        Ok(reply.answer)
    }
}

fn wrong(op: &str, answer: &Answer) -> GatewayNote {
    tracing::error!(op, ?answer, "HQ answered another call: treated as no answer");
    GatewayNote::new("WRONG_ANSWER", format!("HQ answered a {op} call with another call's answer"))
}

#[async_trait]
impl Gateway for RelayGateway {
    fn channel(&self) -> &'static str {
        "hq"
    }

    fn carries(&self) -> &'static [Provider] {
        CARRIES
    }

    fn min_revoke_delay(&self) -> Duration {
        self.min_revoke_delay
    }

    async fn pay(&self, req: &PayRequest) -> PayAnswer {
        let call = Call::Pay {
            out_trade_no: req.out_trade_no.clone(),
            order_no: req.order_no.clone(),
            seq: req.seq,
            amount: req.amount,
            auth_code: Code(req.auth_code.expose().to_string()),
            subject: req.subject.clone(),
            operator_id: req.operator_id.clone(),
        };
        match self.call(call).await {
            Ok(Answer::Pay(a)) => a,
            Ok(other) => PayAnswer::Unknown {
                note: wrong("pay", &other),
                user_paying: false,
            },
            Err(Failure::NotSent(note)) => PayAnswer::NotSent(note),
            Err(Failure::Lost(note)) => PayAnswer::Unknown {
                note,
                user_paying: false,
            },
        }
    }

    async fn query(&self, out_trade_no: &str) -> QueryAnswer {
        let call = Call::Query {
            out_trade_no: out_trade_no.to_string(),
        };
        match self.call(call).await {
            Ok(Answer::Query(a)) => a,
            Ok(other) => QueryAnswer::Pending {
                note: wrong("query", &other),
                user_paying: false,
            },
            Err(Failure::NotSent(note) | Failure::Lost(note)) => QueryAnswer::Pending {
                note,
                user_paying: false,
            },
        }
    }

    async fn revoke(&self, out_trade_no: &str) -> RevokeAnswer {
        let call = Call::Revoke {
            out_trade_no: out_trade_no.to_string(),
        };
        match self.call(call).await {
            Ok(Answer::Revoke(a)) => a,
            Ok(other) => RevokeAnswer::Retry(wrong("revoke", &other)),
            Err(Failure::NotSent(note) | Failure::Lost(note)) => RevokeAnswer::Retry(note),
        }
    }

    async fn refund(&self, req: &RefundRequest) -> RefundAnswer {
        let call = Call::Refund(req.clone());
        match self.call(call).await {
            Ok(Answer::Refund(a)) => a,
            Ok(other) => RefundAnswer::Unknown(wrong("refund", &other)),
            // Never reached HQ: the same refund goes again later.
            Err(Failure::NotSent(note)) => RefundAnswer::Later(note),
            Err(Failure::Lost(note)) => RefundAnswer::Unknown(note),
        }
    }

    async fn refund_query(&self, out_trade_no: &str, refund_no: &str) -> RefundAnswer {
        let call = Call::RefundQuery {
            out_trade_no: out_trade_no.to_string(),
            refund_no: refund_no.to_string(),
        };
        match self.call(call).await {
            Ok(Answer::RefundQuery(a)) => a,
            Ok(other) => RefundAnswer::Unknown(wrong("refund_query", &other)),
            Err(Failure::NotSent(note) | Failure::Lost(note)) => RefundAnswer::Unknown(note),
        }
    }

    async fn bill(&self, date: &str) -> BillAnswer {
        let call = Call::Bill {
            date: date.to_string(),
        };
        match self.call(call).await {
            Ok(Answer::Bill(BillReply::Rows(rows))) => BillAnswer::File(to_lines(&rows)),
            Ok(Answer::Bill(BillReply::NotYet(n))) => BillAnswer::NotYet(n),
            Ok(Answer::Bill(BillReply::NoBill(n))) => BillAnswer::NoBill(n),
            Ok(Answer::Bill(BillReply::Failed(n))) => BillAnswer::Failed(n),
            Ok(other) => BillAnswer::Failed(wrong("bill", &other)),
            Err(Failure::NotSent(n) | Failure::Lost(n)) => BillAnswer::Failed(n),
        }
    }
}
