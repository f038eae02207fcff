//! The `downloadbill` CSV for `bill_type=ALL` (gateway-facts.md §W9): a detail
//! header, detail rows with every field prefixed by a backtick, a summary
//! header and the summary row. Amounts in yuan with two decimals, fees
//! with five, as WeChat prints them.

use chrono::{DateTime, Local, NaiveDate};

use crate::domain::{Fen, Provider};
use crate::sim::ledger::{Order, RefundEnd, SimRefund};

pub const DETAIL_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
pub const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// The simulated merchant's rate: 0.6 %, WeChat's usual one.
const RATE: &str = "0.60%";

/// WeChat's bill lines end in CRLF.
const EOL: &str = "\r\n";

struct Row {
    at: DateTime<Local>,
    fields: Vec<String>,
    settled: Fen,
    refunded: Fen,
    /// Negative on refund rows: the fee goes back with the money.
    fee_fen: i64,
    order_amount: Fen,
    refund_applied: Fen,
}

/// The fee on an amount, rounded to the fen (half up).
fn fee_fen(amount: Fen) -> i64 {
    i64::try_from((amount.0 * 6 + 500) / 1000).unwrap_or(i64::MAX)
}

/// Fees with five decimals, as WeChat prints them; a refund's negative.
fn fee_text(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}000", Fen(fen.unsigned_abs()).to_yuan())
}

/// The bill has no quoting: a comma or line break in a free-text field
/// would shift the columns, so the simulator keeps them out.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ',' => '，',
            '\r' | '\n' | '`' => ' ',
            c => c,
        })
        .collect()
}

fn is_day(t: DateTime<Local>, date: NaiveDate) -> bool {
    t.date_naive() == date
}

/// The columns every row of an order starts with, up to 交易类型.
fn order_columns(o: &Order, at: DateTime<Local>, appid: &str, mch_id: &str) -> Vec<String> {
    vec![
        at.format("%Y-%m-%d %H:%M:%S").to_string(),
        appid.to_string(),
        mch_id.to_string(),
        "0".to_string(),
        clean(&o.device),
        o.transaction_id.clone(),
        o.out_trade_no.clone(),
        super::openid(o),
        "MICROPAY".to_string(),
    ]
}

fn payment_row(o: &Order, at: DateTime<Local>, appid: &str, mch_id: &str) -> Row {
    let fee = fee_fen(o.amount);
    let mut fields = order_columns(o, at, appid, mch_id);
    fields.extend([
        "SUCCESS".to_string(),
        "OTHERS".to_string(),
        "CNY".to_string(),
        o.amount.to_yuan(),
        "0.00".to_string(),
        // A payment row's refund numbers are `0, not empty.
        "0".to_string(),
        "0".to_string(),
        "0.00".to_string(),
        "0.00".to_string(),
        String::new(),
        String::new(),
        clean(&o.subject),
        String::new(),
        fee_text(fee),
        RATE.to_string(),
        o.amount.to_yuan(),
        "0.00".to_string(),
        String::new(),
    ]);
    Row {
        at,
        fields,
        settled: o.amount,
        refunded: Fen(0),
        fee_fen: fee,
        order_amount: o.amount,
        refund_applied: Fen(0),
    }
}

/// A refund row. A refund that a reverse caused has no merchant refund
/// number and the status `REVOKED` (the older `bill_type=REVOKED` shows
/// that is how WeChat names them; gateway-facts.md §W9 and §U).
fn refund_row(o: &Order, r: &SimRefund, appid: &str, mch_id: &str) -> Row {
    let status = if r.by_revoke { "REVOKED" } else { "REFUND" };
    let mut fields = order_columns(o, r.at, appid, mch_id);
    fields.extend([
        status.to_string(),
        "OTHERS".to_string(),
        "CNY".to_string(),
        "0.00".to_string(),
        "0.00".to_string(),
        r.refund_id.clone(),
        if r.by_revoke {
            String::new()
        } else {
            r.refund_no.clone()
        },
        r.amount.to_yuan(),
        "0.00".to_string(),
        "ORIGINAL".to_string(),
        // The row is written when the refund starts and not updated.
        refund_status(r).to_string(),
        clean(&o.subject),
        String::new(),
        fee_text(-fee_fen(r.amount)),
        RATE.to_string(),
        "0.00".to_string(),
        r.amount.to_yuan(),
        String::new(),
    ]);
    Row {
        at: r.at,
        fields,
        settled: Fen(0),
        refunded: r.amount,
        fee_fen: -fee_fen(r.amount),
        order_amount: Fen(0),
        refund_applied: r.amount,
    }
}

fn refund_status(r: &SimRefund) -> &'static str {
    match (r.landed(), r.ends) {
        (false, _) => "PROCESSING",
        (true, RefundEnd::Returned) => "SUCCESS",
        (true, RefundEnd::Closed) => "REFUNDCLOSE",
        (true, RefundEnd::Change) => "CHANGE",
    }
}

/// Only money that moved appears: payments on the day they were paid,
/// refunds on the day they were made. Orders never paid are absent.
fn rows(orders: &[Order], appid: &str, mch_id: &str, date: NaiveDate) -> Vec<Row> {
    let mut rows = Vec::new();
    for o in orders
        .iter()
        .filter(|o| o.provider == Provider::Wechat && o.charges > 0)
    {
        if let Some(at) = o.paid_at.filter(|t| is_day(*t, date)) {
            rows.push(payment_row(o, at, appid, mch_id));
        }
        for r in o.refunds.iter().filter(|r| is_day(r.at, date)) {
            rows.push(refund_row(o, r, appid, mch_id));
        }
    }
    rows.sort_by_key(|r| r.at);
    rows
}

pub(super) fn has_rows(orders: &[Order], date: NaiveDate) -> bool {
    !rows(orders, "", "", date).is_empty()
}

pub(super) fn csv(orders: &[Order], appid: &str, mch_id: &str, date: NaiveDate) -> String {
    let rows = rows(orders, appid, mch_id, date);
    let tick = |fields: &[String]| {
        fields
            .iter()
            .map(|f| format!("`{f}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = String::new();
    out.push_str(DETAIL_HEADER);
    out.push_str(EOL);
    for r in &rows {
        out.push_str(&tick(&r.fields));
        out.push_str(EOL);
    }
    let sum = |f: fn(&Row) -> u64| Fen(rows.iter().map(f).sum());
    let fees: i64 = rows.iter().map(|r| r.fee_fen).sum();
    out.push_str(SUMMARY_HEADER);
    out.push_str(EOL);
    out.push_str(&tick(&[
        rows.len().to_string(),
        sum(|r| r.settled.0).to_yuan(),
        sum(|r| r.refunded.0).to_yuan(),
        "0.00".to_string(),
        fee_text(fees),
        sum(|r| r.order_amount.0).to_yuan(),
        sum(|r| r.refund_applied.0).to_yuan(),
    ]));
    out.push_str(EOL);
    out
}
