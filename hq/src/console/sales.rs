//! Finding a sale, its whole history attempt by attempt, and the two things
//! an operator does to one: resolve it (when it waits on an operator) and
//! refund it (when paid). Both become a command for the till, recorded
//! with who asked, and the audit log's.

use std::fmt::Write as _;

use serde_json::{json, Value};
use tillpay::domain::Fen;
use tillpay::sync::wire::Order;

use super::auth::Role;
use super::html::{csrf, esc, page, sale_link, table, time, url_part, yuan};
use super::{Ctx, Outcome};
use crate::commands::{self, CommandError};
use crate::fleet::{self, SalesFilter, Search};

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

fn n(v: &Value, k: &str) -> i64 {
    v[k].as_i64().unwrap_or(0)
}

fn status(v: &Value) -> String {
    let st = s(v, "status");
    format!("<span class=\"status-{0}\">{0}</span>", esc(st))
}

/// The first and last four digits of what the operator typed of a masked
/// code (`1345****6789`, `1345 6789`, the whole code).
fn code_ends(text: &str) -> Option<(String, String)> {
    let digits: Vec<char> = text.chars().filter(char::is_ascii_digit).collect();
    // Exactly the eight shown: a whole code is never asked for, echoed or
    // put in a URL.
    (digits.len() == 8).then(|| {
        (
            digits[..4].iter().collect(),
            digits[digits.len() - 4..].iter().collect(),
        )
    })
}

pub async fn search(ctx: &Ctx<'_>) -> Outcome {
    let day = match ctx
        .param("day")
        .map(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d"))
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => return Outcome::Refused(400, "day: a date such as 2026-12-01".into()),
    };
    let amount = match ctx.param("amount").map(|a| Fen::parse_yuan(a, false)) {
        None => None,
        Some(Ok(f)) => i64::try_from(f.0).ok(),
        Some(Err(_)) => return Outcome::Refused(400, "amount: yuan, such as 12.34".into()),
    };
    let code = match ctx.param("code") {
        None => None,
        Some(c) => match code_ends(c) {
            Some(ends) => Some(ends),
            None => {
                return Outcome::Refused(
                    400,
                    "code: only its first four and last four digits, such as 1345****6789".into(),
                )
            }
        },
    };
    let q = Search {
        number: ctx.param("q").map(str::to_string),
        code,
        amount,
        filter: SalesFilter {
            day,
            store: ctx.param("store").map(str::to_string),
            till: ctx.param("till").map(str::to_string),
            status: ctx.param("status").map(str::to_string),
            limit: 200,
        },
    };
    let value = |k: &str| esc(ctx.param(k).unwrap_or(""));
    let mut body = format!(
        "<form class=\"box\" method=\"get\" action=\"/console/sales\" id=\"find\">\
         <label>Order no, out_trade_no or transaction id <input name=\"q\" value=\"{}\"></label>\
         <label>Masked code <input name=\"code\" placeholder=\"1345****6789\" value=\"{}\"></label>\
         <label>Amount (yuan) <input name=\"amount\" placeholder=\"12.34\" value=\"{}\"></label>\
         <label>Store <input name=\"store\" value=\"{}\"></label> <label>Till <input name=\"till\" value=\"{}\"></label>\
         <label>Day <input name=\"day\" type=\"date\" value=\"{}\"></label>\
         <label>Status <select name=\"status\"><option value=\"\">any</option>",
        value("q"),
        value("code"),
        value("amount"),
        value("store"),
        value("till"),
        value("day"),
    );
    for st in [
        "paid",
        "needs_attention",
        "in_flight",
        "failed",
        "revoked",
        "cancelled",
        "open",
    ] {
        let sel = if ctx.param("status") == Some(st) {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option{sel}>{st}</option>");
    }
    body.push_str("</select></label><button>Find</button></form>");
    let searched = ["q", "code", "amount", "store", "till", "day", "status"]
        .iter()
        .any(|k| ctx.param(k).is_some());
    if searched {
        let found = match fleet::search(&ctx.hq.pool, &q).await {
            Ok(v) => v,
            Err(e) => return Outcome::Refused(503, e.to_string()),
        };
        let rows: Vec<Vec<String>> = found
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| {
                        vec![
                            sale_link(s(v, "till_id"), s(v, "order_no")),
                            esc(s(v, "store_id")),
                            esc(s(v, "till_id")),
                            time(v["created_at"].as_i64()),
                            yuan(n(v, "amount")),
                            status(v),
                            esc(s(v, "operator_id")),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = write!(body, "<h2>{} found</h2>", rows.len());
        body.push_str(&table(
            "found",
            &[
                "order", "store", "till", "sold", "amount", "status", "cashier",
            ],
            &rows,
        ));
    }
    Outcome::Page(page("Find a sale", Some(&ctx.session), None, &body, None))
}

/// What an operator's action came to, for the notice on the sale's page.
fn notice(ctx: &Ctx<'_>) -> Option<String> {
    let id = ctx.param("command").unwrap_or("");
    match ctx.param("done")? {
        "resolve" => Some(format!("Resolve queued for the till as command {id}: it reaches the till's journal at its next sync.")),
        "refund" => Some(format!("Refund queued for the till as command {id}.")),
        "refund_hq" => Some(format!("Refunded by HQ now (the sale was paid through HQ), and recorded for the till as command {id}.")),
        _ => None,
    }
}

pub async fn detail(ctx: &Ctx<'_>, till: &str, order: &str) -> Outcome {
    let sale = match fleet::sale(&ctx.hq.pool, till, order).await {
        Ok(Some(v)) => v,
        Ok(None) => return Outcome::Refused(404, format!("no order {order} of till {till} at HQ")),
        Err(e) => return Outcome::Refused(503, e.to_string()),
    };
    let cmds = commands::list(&ctx.hq.pool, Some(till), Some(order))
        .await
        .unwrap_or(Value::Null);
    let mut body = format!(
        "<dl class=\"sale\"><dt>Store / till</dt><dd>{} / {}</dd><dt>Sold</dt><dd>{}</dd><dt>Amount</dt><dd id=\"amount\">{}</dd>\
         <dt>Status</dt><dd id=\"status\">{}</dd><dt>Paid</dt><dd>{}</dd><dt>Refunded</dt><dd id=\"refunded\">{}</dd><dt>Cashier</dt><dd>{}</dd><dt>Subject</dt><dd>{}</dd></dl>",
        esc(s(&sale, "store_id")),
        esc(s(&sale, "till_id")),
        time(sale["created_at"].as_i64()),
        yuan(n(&sale, "amount")),
        status(&sale),
        yuan(n(&sale, "paid_amount")),
        yuan(n(&sale, "refunded_amount")),
        esc(s(&sale, "operator_id")),
        esc(s(&sale, "subject")),
    );
    let attempts: Vec<Vec<String>> = sale["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    vec![
                        n(x, "seq").to_string(),
                        esc(s(x, "out_trade_no")),
                        format!("{} / {}", esc(s(x, "provider")), esc(s(x, "channel"))),
                        esc(s(x, "code_masked")),
                        format!("<span class=\"status-{0}\">{0}</span>", esc(s(x, "phase"))),
                        esc(s(x, "transaction_id")),
                        x["error"]
                            .as_object()
                            .map(|e| {
                                esc(&format!(
                                    "{}: {}",
                                    e["code"].as_str().unwrap_or(""),
                                    e["message"].as_str().unwrap_or("")
                                ))
                            })
                            .unwrap_or_default(),
                        n(x, "revoke_tries").to_string(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    body.push_str("<h2>Attempts</h2>");
    body.push_str(&table(
        "attempts",
        &[
            "#",
            "out_trade_no",
            "provider / channel",
            "code",
            "phase",
            "transaction id",
            "gateway said",
            "revokes",
        ],
        &attempts,
    ));
    let refunds: Vec<Vec<String>> = sale["refunds"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        esc(s(r, "refund_no")),
                        yuan(n(r, "amount")),
                        format!("<span class=\"status-{0}\">{0}</span>", esc(s(r, "status"))),
                        esc(s(r, "refund_id")),
                        time(r["created_at"].as_i64()),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    body.push_str("<h2>Refunds</h2>");
    body.push_str(&table(
        "refunds",
        &["refund no", "amount", "status", "gateway's id", "asked"],
        &refunds,
    ));
    let requests: Vec<Vec<String>> = cmds
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    vec![
                        n(c, "id").to_string(),
                        esc(s(c, "kind")),
                        esc(s(c, "requested_by")),
                        time(c["requested_at"].as_i64()),
                        format!("<span class=\"cmd-{0}\">{0}</span>", esc(s(c, "state"))),
                        esc(s(c, "result")),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    body.push_str("<h2>Operators' requests</h2>");
    body.push_str(&table(
        "requests",
        &["#", "what", "who", "when", "state", "the till said"],
        &requests,
    ));
    let history: Vec<Vec<String>> = sale["history"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    vec![
                        time(e["at"].as_i64()),
                        esc(s(e, "out_trade_no")),
                        esc(s(e, "kind")),
                        esc(&e["detail"].to_string()),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    body.push_str("<h2>History</h2>");
    body.push_str(&table(
        "history",
        &["when", "out_trade_no", "event", "detail"],
        &history,
    ));
    if sale["relayed"].as_array().is_some_and(|a| !a.is_empty()) {
        let relayed: Vec<Vec<String>> = sale["relayed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        vec![
                            time(c["started_at"].as_i64()),
                            esc(s(c, "op")),
                            esc(s(c, "channel")),
                            time(c["answered_at"].as_i64()),
                            esc(&c["answer"].to_string()),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        body.push_str("<h2>Calls HQ relayed</h2>");
        body.push_str(&table(
            "relayed",
            &["sent", "call", "channel", "answered", "answer"],
            &relayed,
        ));
    }
    let action = format!("/console/sales/{}/{}", url_part(till), url_part(order));
    let may_act = ctx.session.role >= Role::Operator;
    if may_act && s(&sale, "status") == "needs_attention" {
        let _ = write!(
            body,
            "<h2>Resolve</h2><p class=\"hint\">Look the order up in the merchant portal first (the attention queue says where).</p>\
             <form class=\"box\" method=\"post\" action=\"{}/resolve\" id=\"resolve\">{}\
             <label><input type=\"radio\" name=\"as\" value=\"paid\"> Paid: the portal shows it paid</label>\
             <label>Transaction id (when paid) <input name=\"transaction_id\"></label>\
             <label><input type=\"radio\" name=\"as\" value=\"unpaid\"> Not paid: the portal shows no payment, or a closed one</label>\
             <label>Note <textarea name=\"note\" required placeholder=\"what the portal showed\"></textarea></label>\
             <button>Resolve</button></form>",
            esc(&action),
            csrf(&ctx.session)
        );
    }
    let left = n(&sale, "paid_amount") - n(&sale, "refunded_amount");
    if may_act && left > 0 {
        // The refund number is made with the form, so a form sent twice
        // asks once.
        let refund_no = format!("HQ{}", chrono::Utc::now().format("%y%m%d%H%M%S%3f"));
        let _ = write!(
            body,
            "<h2>Refund</h2><form class=\"box\" method=\"post\" action=\"{}/refund\" id=\"refund\">{}\
             <input type=\"hidden\" name=\"refund_no\" value=\"{}\">\
             <label>Amount (yuan, at most {}) <input name=\"amount\" required placeholder=\"12.34\"></label>\
             <label>Reason <input name=\"reason\"></label><button>Refund</button></form>",
            esc(&action),
            csrf(&ctx.session),
            esc(&refund_no),
            yuan(left)
        );
    }
    // While a refund or a request is on its way, the page follows it.
    let moving = sale["refunds"]
        .as_array()
        .is_some_and(|a| a.iter().any(|r| s(r, "status") == "processing"))
        || cmds.as_array().is_some_and(|a| {
            a.iter()
                .any(|c| matches!(s(c, "state"), "queued" | "delivered"))
        });
    let title = format!("Sale {order}");
    let note = notice(ctx);
    Outcome::Page(page(
        &title,
        Some(&ctx.session),
        note.as_deref(),
        &body,
        moving.then_some(3),
    ))
}

fn refused(e: CommandError) -> Outcome {
    match e {
        e @ CommandError::NoSale { .. } => Outcome::Refused(404, e.to_string()),
        e @ CommandError::Conflict(_) => Outcome::Refused(409, e.to_string()),
        e @ CommandError::Invalid(_) => Outcome::Refused(400, e.to_string()),
        e @ CommandError::Db(_) => Outcome::Refused(503, e.to_string()),
    }
}

pub async fn resolve(ctx: &Ctx<'_>, till: &str, order: &str) -> Outcome {
    let as_paid = match ctx.param("as") {
        Some("paid") => true,
        Some("unpaid") => false,
        _ => return Outcome::Refused(400, "say whether the portal shows it paid or not".into()),
    };
    let txn = ctx.param("transaction_id").map(str::to_string);
    if as_paid && txn.is_none() {
        return Outcome::Refused(
            400,
            "a sale resolved as paid needs the portal's transaction id".into(),
        );
    }
    let cmd = Order::Resolve {
        order_no: order.to_string(),
        as_paid,
        transaction_id: txn.clone(),
        paid_at: None,
        note: ctx.param("note").unwrap_or("").to_string(),
        operator: format!("hq:{}", ctx.session.username),
    };
    let asked = commands::Asked {
        username: ctx.session.username.clone(),
        address: ctx.address.clone(),
        detail: json!({"as_paid": as_paid, "transaction_id": txn, "note": ctx.param("note")}),
    };
    match commands::request(&ctx.hq.pool, till, &ctx.session.username, cmd, &asked).await {
        Ok(id) => Outcome::SeeOther(format!(
            "/console/sales/{}/{}?done=resolve&command={id}",
            url_part(till),
            url_part(order)
        )),
        Err(e) => refused(e),
    }
}

pub async fn refund(ctx: &Ctx<'_>, till: &str, order: &str) -> Outcome {
    let amount = match ctx.param("amount").map(|a| Fen::parse_yuan(a, false)) {
        Some(Ok(f)) if f.0 > 0 => f,
        _ => return Outcome::Refused(400, "amount: yuan, such as 12.34".into()),
    };
    let refund_no = ctx.param("refund_no").unwrap_or("").to_string();
    let cmd = Order::Refund {
        order_no: order.to_string(),
        refund_no: refund_no.clone(),
        amount: amount.0,
        reason: ctx.param("reason").map(str::to_string),
        operator_id: None,
    };
    let target = format!("{till}/{order}");
    let asked = commands::Asked {
        username: ctx.session.username.clone(),
        address: ctx.address.clone(),
        detail: json!({"amount": amount.0, "refund_no": refund_no}),
    };
    let id = match commands::request(
        &ctx.hq.pool,
        till,
        &ctx.session.username,
        cmd.clone(),
        &asked,
    )
    .await
    {
        Ok(id) => id,
        Err(e) => return refused(e),
    };
    let by_hq = ctx
        .hq
        .relay
        .operator_refund(&ctx.hq.pool, till, id, &cmd)
        .await;
    let done = match &by_hq {
        Ok(Some(_)) => "refund_hq",
        _ => "refund",
    };
    if let Ok(Some(a)) = &by_hq {
        ctx.audit(
            "refunded_by_hq",
            &target,
            json!({"command": id, "refund_no": refund_no, "answer": serde_json::to_value(a).unwrap_or_default()}),
        )
        .await;
    }
    Outcome::SeeOther(format!(
        "/console/sales/{}/{}?done={done}&command={id}",
        url_part(till),
        url_part(order)
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_masked_code_is_found_by_its_ends() {
        let ends = |s: &str| super::code_ends(s);
        assert_eq!(ends("1345****6789"), Some(("1345".into(), "6789".into())));
        assert_eq!(ends("1345 6789"), Some(("1345".into(), "6789".into())));
        assert_eq!(ends("134567890123456789"), None, "a whole code is refused");
        assert_eq!(ends("1345**67"), None);
    }
}
