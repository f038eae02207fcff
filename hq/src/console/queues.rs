//! What waits on someone: the dashboard's counts, the attention queue
//! across tills with what to look up in which merchant portal, and refunds
//! on their way.

use std::fmt::Write as _;

use serde_json::Value;

use super::html::{esc, page, sale_link, table, time, yuan};
use super::{Ctx, Outcome};
use crate::fleet;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

pub async fn dashboard(ctx: &Ctx<'_>) -> Outcome {
    let pool = &ctx.hq.pool;
    let (attention, tills, totals) = match (
        fleet::attention(pool).await,
        fleet::tills(pool).await,
        fleet::totals(pool, today()).await,
    ) {
        (Ok(a), Ok(t), Ok(x)) => (a, t, x),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            return Outcome::Refused(503, e.to_string())
        }
    };
    let waiting = attention.as_array().map_or(0, Vec::len);
    let mut body = format!(
        "<p id=\"waiting\"><a href=\"/console/attention\">{waiting} payment(s) wait for an operator</a></p>"
    );
    let stores: Vec<Vec<String>> = totals["stores"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        esc(s(r, "store_id")),
                        r["paid_count"].to_string(),
                        yuan(r["paid_amount"].as_i64().unwrap_or(0)),
                        yuan(r["refunded_amount"].as_i64().unwrap_or(0)),
                        yuan(r["net_amount"].as_i64().unwrap_or(0)),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = write!(body, "<h2>Today, {}</h2>", today());
    body.push_str(&table(
        "today",
        &["store", "paid", "amount", "refunded", "net"],
        &stores,
    ));
    let tills: Vec<Vec<String>> = tills
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    vec![
                        esc(s(t, "store_id")),
                        esc(s(t, "till_id")),
                        t["high_water"].to_string(),
                        time(t["last_sync_at"].as_i64()),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    body.push_str("<h2>Tills</h2>");
    body.push_str(&table(
        "tills",
        &["store", "till", "events synced", "last sync"],
        &tills,
    ));
    Outcome::Page(page("Overview", Some(&ctx.session), None, &body, None))
}

/// Where an operator looks an order up, by the wallet it was paid with,
/// and what each answer there means.
fn where_to_look(provider: &str, channel: &str, otn: &str) -> String {
    let otn = esc(otn);
    let portal = match (provider, channel) {
        (_, "acquirer") => "the acquirer's merchant portal: search the merchant order number".to_string(),
        ("wechat", _) => "the WeChat Pay merchant platform (pay.weixin.qq.com), 交易中心 → 交易订单: search 商户订单号".to_string(),
        ("alipay", _) => "the Alipay merchant portal (b.alipay.com), 交易 → 交易订单: search 商户订单号".to_string(),
        _ => "the merchant portal of the wallet: search the merchant order number".to_string(),
    };
    format!(
        "In {portal} <code>{otn}</code>. Paid (支付成功 / 交易成功) with a transaction id: resolve as paid with that id. \
         No such order, or closed, revoked or refunded in full (已关闭 / 已撤销 / 交易关闭): resolve as not paid."
    )
}

pub async fn attention(ctx: &Ctx<'_>) -> Outcome {
    let items = match fleet::attention(&ctx.hq.pool).await {
        Ok(v) => v,
        Err(e) => return Outcome::Refused(503, e.to_string()),
    };
    let rows: Vec<Vec<String>> = items
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    let said = x["last_error"]
                        .as_object()
                        .map(|e| {
                            format!(
                                "{}: {}",
                                e["code"].as_str().unwrap_or(""),
                                e["message"].as_str().unwrap_or("")
                            )
                        })
                        .unwrap_or_else(|| "nothing: no answer came".into());
                    vec![
                        sale_link(s(x, "till_id"), s(x, "order_no")),
                        format!("{} / {}", esc(s(x, "store_id")), esc(s(x, "till_id"))),
                        time(x["created_at"].as_i64()),
                        yuan(x["amount"].as_i64().unwrap_or(0)),
                        format!(
                            "{} revoke(s) failed; the gateway last said {}",
                            x["revoke_tries"].as_i64().unwrap_or(0),
                            esc(&said)
                        ),
                        where_to_look(s(x, "provider"), s(x, "channel"), s(x, "out_trade_no")),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let body = format!(
        "<p class=\"hint\">Each of these payments may or may not have been taken: the till could not settle it. \
         Look it up, then open it to resolve it; the till's journal records the verdict at its next sync.</p>{}",
        table("queue", &["order", "store / till", "sold", "amount", "what happened", "what to check"], &rows)
    );
    Outcome::Page(page("Attention", Some(&ctx.session), None, &body, None))
}

pub async fn refunds(ctx: &Ctx<'_>) -> Outcome {
    let day = ctx
        .param("day")
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .unwrap_or_else(today);
    let list = match fleet::refunds(&ctx.hq.pool, day).await {
        Ok(v) => v,
        Err(e) => return Outcome::Refused(503, e.to_string()),
    };
    let moving = list
        .as_array()
        .is_some_and(|a| a.iter().any(|r| s(r, "status") == "processing"));
    let rows: Vec<Vec<String>> = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        sale_link(s(r, "till_id"), s(r, "order_no")),
                        esc(s(r, "till_id")),
                        esc(s(r, "refund_no")),
                        yuan(r["amount"].as_i64().unwrap_or(0)),
                        format!("<span class=\"status-{0}\">{0}</span>", esc(s(r, "status"))),
                        time(r["created_at"].as_i64()),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let body = format!(
        "<form method=\"get\" action=\"/console/refunds\"><label>Day <input type=\"date\" name=\"day\" value=\"{day}\"></label> <button>Show</button></form>\
         <p class=\"hint\">A refund is <b>processing</b> until the gateway confirms the money went back; this page follows it.</p>{}",
        table("refund-list", &["order", "till", "refund no", "amount", "status", "asked"], &rows)
    );
    Outcome::Page(page(
        "Refunds",
        Some(&ctx.session),
        None,
        &body,
        moving.then_some(5),
    ))
}
