//! The relay's wire, shared with `tillpay-hq`: what a till asks HQ to do at
//! a gateway, and HQ's answer, already classified as the till's own
//! channels classify theirs. HQ signs each answer with an HMAC-SHA256 keyed
//! by the till's token, so the till believes only answers from the HQ that
//! holds its token, to the request it sent.

use std::fmt;

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::domain::{mask_code, Fen};
use crate::gateway::bill::BillRow;
use crate::gateway::{
    GatewayNote, PayAnswer, QueryAnswer, RefundAnswer, RefundRequest, RevokeAnswer,
};

/// Where a till posts its calls on HQ.
pub const RELAY_PATH: &str = "/v1/relay";
/// The answer's signature header: hex HMAC-SHA256 of the body.
pub const SIGNATURE: &str = "tillpay-signature";

/// One call, as the till sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Fresh for every request and echoed in the signed answer: an answer
    /// to another request (an old one replayed) is not this one's.
    pub nonce: String,
    pub call: Call,
}

/// A payment code on its way to HQ, which needs it whole for the pay
/// call. Shown masked everywhere else.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Code(pub String);

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({})", mask_code(&self.0))
    }
}

/// The gateway calls of the channel trait, one each.
#[derive(Debug, Clone, Serialize, Deserialize)]
// Unknown fields are ignored, so a till upgraded before its HQ still
// gets answers.
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    Pay {
        out_trade_no: String,
        /// What `out_trade_no` is made of: HQ makes it again from the
        /// till's id and refuses a number that is not the till's own.
        order_no: String,
        seq: u32,
        amount: Fen,
        auth_code: Code,
        subject: String,
        operator_id: Option<String>,
    },
    Query {
        out_trade_no: String,
    },
    Revoke {
        out_trade_no: String,
    },
    Refund(RefundRequest),
    RefundQuery {
        out_trade_no: String,
        refund_no: String,
    },
    Bill {
        date: String,
    },
}

impl Call {
    /// The call's name, for logs and HQ's journal.
    pub fn op(&self) -> &'static str {
        match self {
            Call::Pay { .. } => "pay",
            Call::Query { .. } => "query",
            Call::Revoke { .. } => "revoke",
            Call::Refund { .. } => "refund",
            Call::RefundQuery { .. } => "refund_query",
            Call::Bill { .. } => "bill",
        }
    }
}

/// HQ's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's nonce.
    pub nonce: String,
    pub answer: Answer,
}

/// The classified answer, per call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "answer", rename_all = "snake_case")]
pub enum Answer {
    Pay(PayAnswer),
    Query(QueryAnswer),
    Revoke(RevokeAnswer),
    Refund(RefundAnswer),
    RefundQuery(RefundAnswer),
    Bill(BillReply),
}

/// A day's bill as HQ relays it: this till's rows of every gateway HQ
/// holds keys for, already parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum BillReply {
    Rows(Vec<BillRow>),
    NotYet(GatewayNote),
    NoBill(GatewayNote),
    Failed(GatewayNote),
}

fn key(token: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes())
}

/// The signature HQ puts on `body` for the till holding `token`.
pub fn sign(token: &str, body: &[u8]) -> String {
    hmac::sign(&key(token), body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `signature` (hex) is HQ's on `body` for `token`; compared in
/// constant time.
pub fn verify(token: &str, body: &[u8], signature: &str) -> bool {
    let bytes: Option<Vec<u8>> = (0..signature.len())
        .step_by(2)
        .map(|i| {
            signature
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    bytes.is_some_and(|b| hmac::verify(&key(token), body, &b).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::PaidInfo;

    const TOKEN: &str = "till-token-0123456789abcdef";

    #[test]
    fn a_signature_holds_for_its_body_and_token_only() {
        let body = br#"{"nonce":"n1","answer":{"op":"query"}}"#;
        let sig = sign(TOKEN, body);
        assert!(verify(TOKEN, body, &sig));
        assert!(!verify("another-till-token-0123456789", body, &sig));
        assert!(!verify(TOKEN, br#"{"nonce":"n2","answer":{"op":"query"}}"#, &sig));
        assert!(!verify(TOKEN, body, &sig[..62]));
        assert!(!verify(TOKEN, body, "zz"));
        assert!(!verify(TOKEN, body, ""));
    }

    #[test]
    fn calls_and_answers_round_trip_and_a_code_debugs_masked() {
        let call = Call::Pay {
            out_trade_no: "T1_A_1".into(),
            order_no: "A".into(),
            seq: 1,
            amount: Fen(1234),
            auth_code: Code("134567890123456789".into()),
            subject: "Shop".into(),
            operator_id: None,
        };
        assert!(!format!("{call:?}").contains("134567890123456789"));
        let text = serde_json::to_string(&Request {
            nonce: "n".into(),
            call,
        })
        .expect("json");
        let back: Request = serde_json::from_str(&text).expect("parses");
        assert!(matches!(back.call, Call::Pay { auth_code: Code(c), .. } if c == "134567890123456789"));
        let answers = [
            Answer::Pay(PayAnswer::Paid(PaidInfo {
                transaction_id: "42".into(),
                paid_at: None,
                amount: Some(Fen(1234)),
                paid_by: Default::default(),
            })),
            Answer::Pay(PayAnswer::NotSent(GatewayNote::new("NOT_SENT", "x"))),
            Answer::Revoke(RevokeAnswer::Revoked(crate::gateway::RevokeEffect::Closed)),
            Answer::Query(QueryAnswer::Pending {
                note: GatewayNote::new("USERPAYING", "y"),
                user_paying: true,
            }),
            Answer::Bill(BillReply::Rows(Vec::new())),
        ];
        for a in answers {
            let r = Reply {
                nonce: "n".into(),
                answer: a,
            };
            let text = serde_json::to_string(&r).expect("json");
            assert_eq!(serde_json::from_str::<Reply>(&text).expect("parses"), r, "{text}");
        }
        assert!(serde_json::from_str::<Request>(r#"{"nonce":"n","call":{"op":"pay_twice"}}"#).is_err());
    }
}
