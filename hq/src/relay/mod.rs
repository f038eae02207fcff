//! Relay mode: tills whose channel is `hq` send their gateway calls here.
//! HQ holds the merchant's keys (its `[wechat]`, `[alipay]`, `[acquirer]`
//! tables), journals each call in PostgreSQL before it goes out, makes it
//! with the same gateway clients a till uses — so every answer is verified
//! and classified as on a till — and relays the classified answer, signed
//! for the asking till. The till's engine stays the owner of each sale:
//! HQ decides nothing, except what only it can know (a number it never
//! sent anywhere).

pub mod journal;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::{json, Value};
use tillpay::domain::{mask_code, recognise, Fen};
use tillpay::gateway::channel::ChannelConfig;
use tillpay::gateway::hq::wire::{Answer, BillReply, Call};
use tillpay::gateway::{
    BillAnswer, Gateway, GatewayNote, PayAnswer, PayRequest, QueryAnswer, RefundAnswer,
    RefundRequest, RevokeAnswer,
};

use journal::Order;

/// Gateway clients by till and channel.
type Clients = HashMap<(String, &'static str), Arc<dyn Gateway>>;

/// The merchant's gateways, as HQ calls them for its tills.
pub struct Relay {
    channels: Vec<Arc<dyn ChannelConfig>>,
    timeout: Duration,
    /// One client per till and channel: a gateway client carries its
    /// till's device id (WeChat `device_info`, Alipay `terminal_id`), so
    /// the merchant's bills still say which till sold.
    clients: Mutex<Clients>,
}

fn note(code: &str, message: impl Into<String>) -> GatewayNote {
    GatewayNote::new(code, message)
}

const NO_DB: &str = "HQ_DATABASE";

impl Relay {
    pub fn new(channels: Vec<Arc<dyn ChannelConfig>>, timeout: Duration) -> Relay {
        Relay {
            channels,
            timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The merchant's gateway accounts HQ holds.
    pub fn channels(&self) -> &[Arc<dyn ChannelConfig>] {
        &self.channels
    }

    fn timeout_ms(&self) -> i64 {
        i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX)
    }

    /// The channel HQ sends `provider`'s codes through: the first
    /// configured one that carries them.
    fn channel_for(&self, provider: tillpay::domain::Provider) -> Option<&'static str> {
        self.channels
            .iter()
            .filter_map(|c| tillpay::gateway::channel(c.name()))
            .find(|ch| ch.carries().contains(&provider))
            .map(|ch| ch.name())
    }

    fn gateway(&self, till: &str, channel: &str) -> Result<Arc<dyn Gateway>, GatewayNote> {
        let cfg = self
            .channels
            .iter()
            .find(|c| c.name() == channel)
            .ok_or_else(|| {
                note(
                    "NO_CHANNEL",
                    format!("HQ has no [{channel}] table any more"),
                )
            })?;
        let key = (till.to_string(), cfg.name());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = clients.get(&key) {
            return Ok(g.clone());
        }
        let g = cfg
            .gateway(till, self.timeout)
            .map_err(|e| note("HQ_SETUP", e.to_string()))?;
        clients.insert(key, g.clone());
        Ok(g)
    }

    /// Carries out one till's call; the answer to relay.
    pub async fn answer(&self, pool: &Pool, till: &str, call: Call) -> Answer {
        match call {
            Call::Pay {
                out_trade_no,
                order_no,
                seq,
                ..
            } if tillpay::domain::out_trade_no(till, &order_no, seq) != out_trade_no => {
                // Made again from the asking till's id: another till's
                // number (or one made up) is refused before it can be
                // claimed, queried, revoked or refunded.
                tracing::warn!(
                    till,
                    "relay refused: an order number not made from this till's id"
                );
                Answer::Pay(PayAnswer::Failed {
                    note: note("OTHER_TILL", "the order number is not this till's"),
                    config_error: true,
                })
            }
            Call::Pay {
                out_trade_no,
                amount,
                auth_code,
                subject,
                operator_id,
                ..
            } => Answer::Pay(
                self.pay(
                    pool,
                    till,
                    out_trade_no,
                    amount,
                    &auth_code.0,
                    subject,
                    operator_id,
                )
                .await,
            ),
            Call::Query { out_trade_no } => {
                Answer::Query(self.query(pool, till, &out_trade_no).await)
            }
            Call::Revoke { out_trade_no } => {
                Answer::Revoke(self.revoke(pool, till, &out_trade_no).await)
            }
            Call::Refund(req) => Answer::Refund(self.refund(pool, till, &req).await),
            Call::RefundQuery {
                out_trade_no,
                refund_no,
            } => Answer::RefundQuery(
                self.refund_query(pool, till, &out_trade_no, &refund_no)
                    .await,
            ),
            Call::Bill { date } => Answer::Bill(self.bill(pool, till, &date).await),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn pay(
        &self,
        pool: &Pool,
        till: &str,
        out_trade_no: String,
        amount: Fen,
        digits: &str,
        subject: String,
        operator_id: Option<String>,
    ) -> PayAnswer {
        let failed = |n: GatewayNote, config_error: bool| PayAnswer::Failed {
            note: n,
            config_error,
        };
        let Some(code) = recognise(digits) else {
            return failed(note("INVALID_CODE", "not a payment code HQ knows"), false);
        };
        let provider = code.provider();
        let Some(channel) = self.channel_for(provider) else {
            return failed(
                note(
                    "NO_CHANNEL",
                    format!("HQ has no channel for {provider} codes"),
                ),
                true,
            );
        };
        let gateway = match self.gateway(till, channel) {
            Ok(g) => g,
            Err(n) => return failed(n, true),
        };
        let Ok(amount_i) = i64::try_from(amount.0) else {
            return failed(note("INVALID_AMOUNT", "amount out of range"), false);
        };
        let detail =
            json!({"amount": amount.0, "code": mask_code(digits), "provider": provider.as_str()});
        let id = match journal::begin_pay(
            pool,
            till,
            &out_trade_no,
            provider.as_str(),
            channel,
            amount_i,
            &detail,
        )
        .await
        {
            Ok(Ok(id)) => id,
            Ok(Err(Order::Closed)) => {
                return failed(
                    note(
                        "ORDER_CLOSED",
                        "revoked before it reached a gateway: it never will",
                    ),
                    false,
                )
            }
            // Sent once already: sending it again would break "one number,
            // one pay request"; the till learns how it ended by a query.
            Ok(Err(Order::Sent { .. })) => {
                return PayAnswer::Unknown {
                    note: note(
                        "PAY_ALREADY_SENT",
                        "HQ sent a pay under this number before: ask how it ended",
                    ),
                    user_paying: false,
                }
            }
            Ok(Err(_)) => return failed(note("OTHER_TILL", "another till's order number"), true),
            Err(e) => {
                tracing::warn!(till, error = %e, "pay not journaled, so not sent");
                return PayAnswer::NotSent(note(NO_DB, e.to_string()));
            }
        };
        let req = PayRequest {
            out_trade_no,
            // No gateway sends these: the number was checked against them.
            order_no: String::new(),
            seq: 0,
            amount,
            auth_code: code,
            subject,
            operator_id,
        };
        let a = gateway.pay(&req).await;
        record(pool, id, &a).await;
        a
    }

    /// The gateway of an order number this till had HQ send, with the
    /// call journaled; or why there is none.
    async fn sent(
        &self,
        pool: &Pool,
        till: &str,
        out_trade_no: &str,
        op: &str,
        detail: Value,
    ) -> Result<(Arc<dyn Gateway>, i64, i64), Result<Order, GatewayNote>> {
        let order = journal::order(pool, till, out_trade_no, self.timeout_ms())
            .await
            .map_err(|e| Err(note(NO_DB, e.to_string())))?;
        let Order::Sent { channel, age_ms } = order else {
            return Err(Ok(order));
        };
        let gateway = self.gateway(till, &channel).map_err(Err)?;
        let id = journal::begin(pool, till, Some(out_trade_no), op, Some(&channel), &detail)
            .await
            .map_err(|e| Err(note(NO_DB, e.to_string())))?;
        Ok((gateway, id, age_ms))
    }

    async fn query(&self, pool: &Pool, till: &str, out_trade_no: &str) -> QueryAnswer {
        let pending = |n| QueryAnswer::Pending {
            note: n,
            user_paying: false,
        };
        match self
            .sent(pool, till, out_trade_no, "query", json!({}))
            .await
        {
            Ok((g, id, _)) => {
                let a = g.query(out_trade_no).await;
                record(pool, id, &a).await;
                a
            }
            // Not here yet: a pay request may still be on its way, and
            // only a revoke closes the number.
            Err(Ok(Order::Unseen | Order::OtherTill)) => pending(note(
                "NOT_AT_HQ",
                "HQ has no pay request under this number (yet)",
            )),
            // Closed by a revoke, whose own answer settles it.
            Err(Ok(_)) => pending(note(
                "ORDER_CLOSED",
                "revoked before any pay request went out",
            )),
            Err(Err(n)) => pending(n),
        }
    }

    async fn revoke(&self, pool: &Pool, till: &str, out_trade_no: &str) -> RevokeAnswer {
        let order = match journal::close_unseen(pool, till, out_trade_no, self.timeout_ms()).await {
            Ok(o) => o,
            Err(e) => return RevokeAnswer::Retry(note(NO_DB, e.to_string())),
        };
        match order {
            // No pay went out under this number through this HQ's journal,
            // and none will now. Said as a gateway says it has no such
            // order, so the till still waits out the pay window and trusts
            // a paid answer it saw over this: a journal restored from an
            // old backup may lack a pay that did go out.
            Order::Closed => {
                let a = RevokeAnswer::NotFound(note(
                    "NOT_SENT_BY_HQ",
                    "HQ sent no pay under this number, and will not now",
                ));
                if let Ok(id) =
                    journal::begin(pool, till, Some(out_trade_no), "revoke", None, &json!({})).await
                {
                    record(pool, id, &a).await;
                }
                a
            }
            Order::OtherTill | Order::Unseen => {
                RevokeAnswer::Refused(note("OTHER_TILL", "another till's order number"))
            }
            Order::Sent { channel, age_ms } => {
                let gateway = match self.gateway(till, &channel) {
                    Ok(g) => g,
                    Err(n) => return RevokeAnswer::Retry(n),
                };
                // The till waited from its own pay request; HQ's went out a
                // moment later, and WeChat counts from that one. A short
                // wait is waited out here, a long one (a till told a
                // shorter delay than the gateway's) answered "again later".
                let wait = gateway.min_revoke_delay().as_millis() as i64 - age_ms;
                if wait > 2000 {
                    return RevokeAnswer::Retry(note(
                        "TOO_SOON",
                        format!("the {channel} gateway takes a revoke {wait} ms from now"),
                    ));
                }
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                }
                let id = match journal::begin(
                    pool,
                    till,
                    Some(out_trade_no),
                    "revoke",
                    Some(&channel),
                    &json!({}),
                )
                .await
                {
                    Ok(id) => id,
                    Err(e) => return RevokeAnswer::Retry(note(NO_DB, e.to_string())),
                };
                let a = gateway.revoke(out_trade_no).await;
                record(pool, id, &a).await;
                a
            }
        }
    }

    /// A refund of a payment HQ relayed for `till`: the till's own, or one
    /// an operator makes at HQ (then the till, told by its next sync,
    /// sends the same refund number again and learns the same answer).
    pub async fn refund(&self, pool: &Pool, till: &str, req: &RefundRequest) -> RefundAnswer {
        let detail = json!({
            "refund_no": req.refund_no,
            "refund_amount": req.refund_amount.0,
            "total_amount": req.total_amount.0,
        });
        match self
            .sent(pool, till, &req.out_trade_no, "refund", detail)
            .await
        {
            Ok((g, id, _)) => {
                let a = g.refund(req).await;
                record(pool, id, &a).await;
                a
            }
            Err(Ok(_)) => {
                RefundAnswer::Failed(note("NOT_AT_HQ", "HQ relayed no payment under this number"))
            }
            Err(Err(n)) => RefundAnswer::Later(n),
        }
    }

    async fn refund_query(
        &self,
        pool: &Pool,
        till: &str,
        out_trade_no: &str,
        refund_no: &str,
    ) -> RefundAnswer {
        match self
            .sent(
                pool,
                till,
                out_trade_no,
                "refund_query",
                json!({"refund_no": refund_no}),
            )
            .await
        {
            Ok((g, id, _)) => {
                let a = g.refund_query(out_trade_no, refund_no).await;
                record(pool, id, &a).await;
                a
            }
            Err(Ok(_)) => {
                RefundAnswer::NotFound(note("NOT_AT_HQ", "HQ relayed no payment under this number"))
            }
            Err(Err(n)) => RefundAnswer::Unknown(n),
        }
    }

    /// The day's rows of `till` from every gateway HQ holds keys for.
    async fn bill(&self, pool: &Pool, till: &str, date: &str) -> BillReply {
        let mut rows = Vec::new();
        let mut no_bill = Vec::new();
        for cfg in &self.channels {
            let Some(channel) = tillpay::gateway::channel(cfg.name()) else {
                continue;
            };
            let gateway = match self.gateway(till, cfg.name()) {
                Ok(g) => g,
                Err(n) => return BillReply::Failed(n),
            };
            let id = journal::begin(
                pool,
                till,
                None,
                "bill",
                Some(cfg.name()),
                &json!({"date": date}),
            )
            .await;
            let got = gateway.bill(date).await;
            let (reply, summary) = match got {
                BillAnswer::File(bytes) => {
                    match channel.parse_bill(&mut std::io::Cursor::new(bytes), till) {
                        Ok(b) => {
                            let n = b.rows.len();
                            rows.extend(b.rows);
                            (None, json!({"kind": "rows", "rows": n}))
                        }
                        Err(e) => {
                            let n = note("BAD_BILL", format!("{}: {e}", cfg.name()));
                            (
                                Some(BillReply::Failed(n.clone())),
                                json!({"kind": "failed", "detail": n}),
                            )
                        }
                    }
                }
                BillAnswer::NoBill(n) => {
                    no_bill.push(n);
                    (None, json!({"kind": "no_bill"}))
                }
                BillAnswer::NotYet(n) => (
                    Some(BillReply::NotYet(n.clone())),
                    json!({"kind": "not_yet", "detail": n}),
                ),
                BillAnswer::Failed(n) => (
                    Some(BillReply::Failed(n.clone())),
                    json!({"kind": "failed", "detail": n}),
                ),
            };
            if let Ok(id) = id {
                let _ = journal::answered(pool, id, &summary).await;
            }
            if let Some(r) = reply {
                return r;
            }
        }
        if rows.is_empty() && !no_bill.is_empty() && no_bill.len() == self.channels.len() {
            return BillReply::NoBill(no_bill.remove(0));
        }
        BillReply::Rows(rows)
    }
}

impl Relay {
    /// An operator's refund of a sale its till paid through HQ: made by HQ
    /// itself at once, under the refund number the till will use when the
    /// same request reaches it in a sync answer (so the till records it,
    /// and the gateway, seeing the number again, refunds once). `None`
    /// when the sale was not paid through HQ: then only its till refunds.
    pub async fn operator_refund(
        &self,
        pool: &Pool,
        till: &str,
        command: i64,
        order: &tillpay::sync::wire::Order,
    ) -> Result<Option<RefundAnswer>, crate::db::DbError> {
        let tillpay::sync::wire::Order::Refund {
            order_no,
            refund_no,
            amount,
            reason,
            operator_id,
        } = order
        else {
            return Ok(None);
        };
        let client = pool.get().await?;
        let row = client
            .query_opt(
                "SELECT a.out_trade_no, a.transaction_id, a.amount FROM attempts a
                 JOIN relay_orders r ON r.out_trade_no = a.out_trade_no AND r.till_id = a.till_id
                 WHERE a.till_id = $1 AND a.order_no = $2 AND a.phase = 'paid'
                   AND a.channel = 'hq' AND NOT r.closed",
                &[&till, order_no],
            )
            .await?;
        drop(client);
        let Some(row) = row else {
            return Ok(None);
        };
        let total: i64 = row.get(2);
        let req = RefundRequest {
            out_trade_no: row.get(0),
            transaction_id: row.get(1),
            refund_no: tillpay::domain::out_refund_no(till, refund_no),
            total_amount: Fen(u64::try_from(total).unwrap_or(0)),
            refund_amount: Fen(*amount),
            reason: reason.clone(),
            operator_id: operator_id.clone(),
        };
        let answer = self.refund(pool, till, &req).await;
        // Kept with the command: what is left to refund counts it even if
        // the till later refuses the command.
        let client = pool.get().await?;
        client
            .execute(
                "UPDATE commands SET refunded_by_hq = $2 WHERE id = $1",
                &[&command, &serde_json::to_value(&answer).unwrap_or_default()],
            )
            .await?;
        Ok(Some(answer))
    }
}

/// Journals an answer; one that cannot be written is logged and still
/// relayed (the till's own journal has it either way).
async fn record(pool: &Pool, id: i64, answer: &impl serde::Serialize) {
    let v = serde_json::to_value(answer).unwrap_or(Value::Null);
    if let Err(e) = journal::answered(pool, id, &v).await {
        tracing::warn!(call = id, error = %e, "relayed answer not journaled");
    }
}
