//! A day's reports: fleet reconciliation against the merchant's bills,
//! each discrepancy with what it means and what to do; totals per store,
//! provider and cashier, and per till and cashier; both tables as CSV.

use std::fmt::Write as _;

use serde_json::Value;
use tillpay::reconcile::DiscrepancyKind;

use super::html::{esc, page, table, time, yuan};
use super::{Ctx, Outcome};
use crate::fleet;

fn day_of(ctx: &Ctx<'_>) -> Result<chrono::NaiveDate, Outcome> {
    match ctx.param("day") {
        None => Ok(chrono::Local::now().date_naive()),
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| Outcome::Refused(400, "day: a date such as 2026-12-01".into())),
    }
}

fn day_form(action: &str, day: chrono::NaiveDate) -> String {
    format!(
        "<form method=\"get\" action=\"{action}\"><label>Day <input type=\"date\" name=\"day\" value=\"{day}\"></label> <button>Show</button></form>"
    )
}

/// What a discrepancy means and what to do about it.
fn meaning(kind: DiscrepancyKind) -> &'static str {
    match kind {
        DiscrepancyKind::MissingLocal => {
            "The bill has money the till's rows at HQ do not: a payment whose till lost it or has not synced it. \
             If the till is synced, find the customer's sale and refund it or record it; the money is in the account."
        }
        DiscrepancyKind::MissingRemote => {
            "The till says paid or refunded, the bill has no such row. Check the order in the merchant portal: \
             if the gateway has no payment, resolve the sale as not paid."
        }
        DiscrepancyKind::AmountMismatch => {
            "Both have it, with different amounts. The bill is the money: check the order in the portal and correct the sale."
        }
        DiscrepancyKind::StatusMismatch => {
            "The till and the bill disagree on how it ended (a sale still waiting for an operator, a refund not confirmed). \
             Settle it from the attention queue or follow the refund."
        }
    }
}

pub async fn reconcile(ctx: &Ctx<'_>) -> Outcome {
    let day = match day_of(ctx) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let mut body = day_form("/console/reconcile", day);
    let channels = ctx.hq.relay.channels();
    if channels.is_empty() {
        body.push_str("<p class=\"error\">HQ holds no gateway account ([wechat], [alipay], [acquirer] in tillpay-hq.toml): it cannot fetch the bills.</p>");
        return Outcome::Page(page(
            "Reconciliation",
            Some(&ctx.session),
            None,
            &body,
            None,
        ));
    }
    let bills = match crate::reconcile::bills(channels, &day.to_string(), &[]).await {
        Ok(b) => b,
        Err(e) => {
            let _ = write!(body, "<p class=\"error\">The bills of {day} could not be read: {}. A bill is ready after 10:00 the next day.</p>", esc(&e));
            return Outcome::Page(page(
                "Reconciliation",
                Some(&ctx.session),
                None,
                &body,
                None,
            ));
        }
    };
    let report = match crate::reconcile::reconcile(&ctx.hq.pool, day, &bills).await {
        Ok(r) => r,
        Err(e) => return Outcome::Refused(503, e.to_string()),
    };
    let differ: usize = report.tills.iter().map(|t| t.discrepancies.len()).sum();
    let _ = write!(
        body,
        "<p id=\"summary\">{} matched, {differ} discrepancies, {} bill rows of unknown tills, {} tills not synced: {}</p>",
        report.matched,
        report.unknown_till_rows.len(),
        report.not_synced.len(),
        if report.clean() { "clean" } else { "to look at" }
    );
    let per_till: Vec<Vec<String>> = report
        .tills
        .iter()
        .map(|t| {
            vec![
                esc(&t.store_id),
                esc(&t.till_id),
                t.matched.to_string(),
                t.discrepancies.len().to_string(),
            ]
        })
        .collect();
    body.push_str("<h2>Per till</h2>");
    body.push_str(&table(
        "per-till",
        &["store", "till", "matched", "discrepancies"],
        &per_till,
    ));
    let rows: Vec<Vec<String>> = report
        .tills
        .iter()
        .flat_map(|t| t.discrepancies.iter().map(move |d| (t, d)))
        .map(|(t, d)| {
            let kind = serde_json::to_value(d.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            vec![
                esc(&t.till_id),
                esc(&kind),
                esc(d.provider.as_str()),
                esc(&d.out_trade_no),
                esc(d.local.as_deref().unwrap_or("—")),
                esc(d.remote.as_deref().unwrap_or("—")),
                esc(meaning(d.kind)),
            ]
        })
        .collect();
    body.push_str("<h2>Discrepancies</h2>");
    body.push_str(&table(
        "discrepancies",
        &[
            "till",
            "kind",
            "provider",
            "out_trade_no",
            "HQ's rows",
            "the bill",
            "what it means, what to do",
        ],
        &rows,
    ));
    let unknown: Vec<Vec<String>> = report
        .unknown_till_rows
        .iter()
        .map(|r| {
            vec![
                esc(&r.till),
                esc(r.provider.as_str()),
                esc(&r.out_trade_no),
                esc(&r.kind),
                yuan(r.amount as i64),
            ]
        })
        .collect();
    body.push_str("<h2>Bill rows of tills HQ does not know</h2><p class=\"hint\">Money taken by a device HQ has no till for: register the till (tillpay-hq till add) or find the PC that sold it.</p>");
    body.push_str(&table(
        "unknown-tills",
        &[
            "till in the bill",
            "provider",
            "out_trade_no",
            "kind",
            "amount",
        ],
        &unknown,
    ));
    let late: Vec<Vec<String>> = report
        .not_synced
        .iter()
        .map(|n| vec![esc(&n.store_id), esc(&n.till_id), time(n.last_sync_at)])
        .collect();
    body.push_str("<h2>Tills not synced since the day ended</h2><p class=\"hint\">HQ may lack some of their rows; their discrepancies may close once they sync.</p>");
    body.push_str(&table("not-synced", &["store", "till", "last sync"], &late));
    Outcome::Page(page(
        "Reconciliation",
        Some(&ctx.session),
        None,
        &body,
        None,
    ))
}

/// The tills' closed shifts of a day, each with its report's figures and
/// its cashiers.
pub async fn shifts(ctx: &Ctx<'_>) -> Outcome {
    let day = match day_of(ctx) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let list = match fleet::shifts(&ctx.hq.pool, day).await {
        Ok(v) => v,
        Err(e) => return Outcome::Refused(503, e.to_string()),
    };
    let tally = |r: &Value, k: &str| {
        format!(
            "{} · {}",
            r[k]["count"].as_i64().unwrap_or(0),
            yuan(r[k]["amount"].as_i64().unwrap_or(0))
        )
    };
    let rows: Vec<Vec<String>> = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let r = &s["report"];
                    let cashiers = r["by_operator"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(who, x)| {
                                    format!(
                                        "{}: {} · {}",
                                        esc(who),
                                        x["count"].as_i64().unwrap_or(0),
                                        yuan(x["amount"].as_i64().unwrap_or(0))
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join("<br>")
                        })
                        .unwrap_or_default();
                    vec![
                        esc(s["store_id"].as_str().unwrap_or("")),
                        esc(s["till_id"].as_str().unwrap_or("")),
                        s["shift_no"].to_string(),
                        format!(
                            "{} – {}",
                            time(s["opened_at"].as_i64()),
                            time(s["closed_at"].as_i64())
                        ),
                        tally(r, "sales"),
                        tally(r, "refunds"),
                        tally(r, "revoked"),
                        r["failed"].as_i64().unwrap_or(0).to_string(),
                        r["needs_attention"].as_i64().unwrap_or(0).to_string(),
                        cashiers,
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut body = day_form("/console/shifts", day);
    body.push_str("<p class=\"hint\">Each till's shift (Z) reports as it closed them (<code>tillpay shift close</code>), synced with its journal.</p>");
    body.push_str(&table(
        "shifts",
        &[
            "store",
            "till",
            "shift",
            "open",
            "paid",
            "refunded",
            "revoked",
            "failed",
            "for an operator",
            "per cashier",
        ],
        &rows,
    ));
    Outcome::Page(page("Shifts", Some(&ctx.session), None, &body, None))
}

/// Yuan for a CSV cell: `12.34`, integer arithmetic only.
fn csv_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let f = fen.unsigned_abs();
    format!("{sign}{}.{:02}", f / 100, f % 100)
}

/// A CSV cell: quoted when it holds a comma, quote or line break; a
/// leading `=`, `+`, `-` or `@` is defused so a spreadsheet does not run it.
fn cell(s: &str) -> String {
    let risky = s.starts_with(['\t', '\r']) || s.trim_start().starts_with(['=', '+', '-', '@']);
    let s = if risky {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub async fn totals(ctx: &Ctx<'_>, csv: bool) -> Outcome {
    let day = match day_of(ctx) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let b = match fleet::breakdown(&ctx.hq.pool, day).await {
        Ok(v) => v,
        Err(e) => return Outcome::Refused(503, e.to_string()),
    };
    let list = |k: &str| b[k].as_array().cloned().unwrap_or_default();
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let num = |v: &Value, k: &str| v[k].as_i64().unwrap_or(0);
    if csv {
        let mut out = String::from("day,table,store,provider_or_till,cashier,paid_count,paid_yuan,refunded_yuan,net_yuan\n");
        for (name, key) in [
            ("by_provider", "store_provider_cashier"),
            ("by_till", "till_cashier"),
        ] {
            for r in list(key) {
                let _ = writeln!(
                    out,
                    "{day},{name},{},{},{},{},{},{},{}",
                    cell(&text(&r, "key")),
                    cell(&text(&r, "key2")),
                    cell(&text(&r, "cashier")),
                    num(&r, "paid_count"),
                    csv_yuan(num(&r, "paid_amount")),
                    csv_yuan(num(&r, "refunded_amount")),
                    csv_yuan(num(&r, "paid_amount") - num(&r, "refunded_amount")),
                );
            }
        }
        return Outcome::File(
            format!("tillpay-totals-{day}.csv"),
            "text/csv; charset=utf-8",
            out.into_bytes(),
        );
    }
    let rows = |key: &str| -> Vec<Vec<String>> {
        list(key)
            .iter()
            .map(|r| {
                vec![
                    esc(&text(r, "key")),
                    esc(&text(r, "key2")),
                    esc(&text(r, "cashier")),
                    num(r, "paid_count").to_string(),
                    yuan(num(r, "paid_amount")),
                    yuan(num(r, "refunded_amount")),
                    yuan(num(r, "paid_amount") - num(r, "refunded_amount")),
                ]
            })
            .collect()
    };
    let mut body = day_form("/console/totals", day);
    let _ = write!(
        body,
        "<p><a id=\"csv\" href=\"/console/totals.csv?day={day}\">Download as CSV</a></p>"
    );
    body.push_str("<h2>Per store, provider and cashier</h2>");
    body.push_str(&table(
        "by-provider",
        &[
            "store", "provider", "cashier", "paid", "amount", "refunded", "net",
        ],
        &rows("store_provider_cashier"),
    ));
    body.push_str("<h2>Per till and cashier (the till's shifts, as HQ sees them)</h2>");
    body.push_str(&table(
        "by-till",
        &[
            "store", "till", "cashier", "paid", "amount", "refunded", "net",
        ],
        &rows("till_cashier"),
    ));
    Outcome::Page(page("Totals", Some(&ctx.session), None, &body, None))
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(super::cell("plain"), "plain");
        assert_eq!(super::cell("a,b"), "\"a,b\"");
        assert_eq!(super::cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(super::cell("  =1+1"), "'  =1+1");
        assert_eq!(super::cell("\t=1"), "'\t=1");
        assert_eq!(super::csv_yuan(1234), "12.34");
        assert_eq!(super::csv_yuan(-5), "-0.05");
    }
}
