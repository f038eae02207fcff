//! WeChat Pay's `downloadbill` text (bill_type ALL), streamed.
//!
//! Layout: a detail header line, detail rows, a summary header line, one
//! summary row. Every field starts with a backtick (so Excel keeps long
//! numbers). Column order is read from the header: it is not fixed, and
//! older merchants get a legacy layout (总金额 instead of 订单金额).

use std::io::BufRead;

use crate::gateway::bill::{
    bill_amount, check_width, fields, keeps, Bill, BillError, BillRow, RowKind,
};
use crate::domain::{Fen, Provider};

const WHAT: &str = "WeChat";

struct Columns {
    device: usize,
    transaction_id: usize,
    out_trade_no: usize,
    state: usize,
    /// 订单金额, or 总金额 in the legacy layout, or 应结订单金额.
    order_amount: usize,
    settle_amount: Option<usize>,
    refund_no: Option<usize>,
    refund_amount: Option<usize>,
    width: usize,
}

impl Columns {
    fn from_header(h: &[&str]) -> Result<Columns, BillError> {
        let find = |name: &str| h.iter().position(|c| *c == name);
        let need = |name: &str| {
            find(name)
                .ok_or_else(|| BillError::format(WHAT, format!("the header has no {name} column")))
        };
        let settle_amount = find("应结订单金额");
        let order_amount = find("订单金额")
            .or_else(|| find("总金额"))
            .or(settle_amount)
            .ok_or_else(|| {
                BillError::format(WHAT, "the header has no amount column (订单金额 / 总金额)")
            })?;
        Ok(Columns {
            device: need("设备号")?,
            transaction_id: need("微信订单号")?,
            out_trade_no: need("商户订单号")?,
            state: need("交易状态")?,
            order_amount,
            settle_amount,
            refund_no: find("商户退款单号"),
            refund_amount: find("退款金额").or_else(|| find("申请退款金额")),
            width: h.len(),
        })
    }
}

/// Decodes a line as UTF-8, falling back to GB18030 (the bill's encoding
/// changed once in the past).
fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::GB18030.decode(bytes).0.into_owned(),
    }
}

fn amount(f: &[&str], i: usize, line: usize) -> Result<Fen, BillError> {
    let raw = f.get(i).copied().unwrap_or("");
    match bill_amount(raw) {
        Some((false, a)) => Ok(a),
        _ => Err(BillError::format(
            WHAT,
            format!("line {line}: {raw:?} is not an amount"),
        )),
    }
}

/// Parses the bill, keeping rows whose 设备号 is `till_id`.
// One pass over the stream, so one function: the detail rows, the summary header and the summary row share the column map and the counts.
pub fn parse(input: impl BufRead, till_id: &str) -> Result<Bill, BillError> {
    let mut bill = Bill::default();
    let mut cols: Option<Columns> = None;
    let mut summary_header: Option<Vec<String>> = None;
    let mut summary: Option<Vec<String>> = None;
    let (mut sum_settle, mut sum_refund) = (0u64, 0u64);
    for (n, line) in input.split(b'\n').enumerate() {
        let line = line.map_err(|e| BillError::Io(e.to_string()))?;
        let text = decode(&line);
        let text = text.trim_start_matches('\u{feff}').trim_end_matches('\r');
        if text.trim().is_empty() {
            continue;
        }
        let f = fields(text);
        let lineno = n + 1;
        if let Some(h) = &summary_header {
            if summary.is_some() {
                return Err(BillError::format(
                    WHAT,
                    format!("line {lineno}: text after the summary row"),
                ));
            }
            if f.len() != h.len() {
                return Err(BillError::format(
                    WHAT,
                    format!("line {lineno}: the summary row does not fit its header"),
                ));
            }
            summary = Some(f.iter().map(|s| s.to_string()).collect());
            continue;
        }
        let Some(c) = &cols else {
            if !f.contains(&"交易时间") {
                return Err(BillError::format(
                    WHAT,
                    "the first line is not the detail header (交易时间,…)",
                ));
            }
            cols = Some(Columns::from_header(&f)?);
            continue;
        };
        if f.first() == Some(&"总交易单数") {
            summary_header = Some(f.iter().map(|s| s.to_string()).collect());
            continue;
        }
        check_width(WHAT, lineno, f.len(), c.width)?;
        bill.total_rows += 1;
        if let Some(i) = c.settle_amount {
            sum_settle += amount(&f, i, lineno)?.0;
        }
        let refund_amount = match c.refund_amount {
            Some(i) if !f[i].is_empty() => amount(&f, i, lineno)?,
            _ => Fen(0),
        };
        sum_refund += refund_amount.0;
        if !keeps(till_id, f[c.device]) {
            bill.other_tills += 1;
            continue;
        }
        let state = f[c.state];
        let kind = match state {
            "SUCCESS" => RowKind::Payment,
            "REFUND" => RowKind::Refund,
            "REVOKED" => RowKind::RevokeRefund,
            other => {
                return Err(BillError::format(
                    WHAT,
                    format!("line {lineno}: unknown 交易状态 {other:?}"),
                ))
            }
        };
        let amount = match kind {
            RowKind::Payment => amount(&f, c.order_amount, lineno)?,
            // A revoke returns the whole order when the refund column is empty.
            RowKind::RevokeRefund if refund_amount.0 == 0 => amount(&f, c.order_amount, lineno)?,
            _ => refund_amount,
        };
        bill.rows.push(BillRow {
            provider: Provider::Wechat,
            till: f[c.device].to_string(),
            kind,
            out_trade_no: f[c.out_trade_no].to_string(),
            transaction_id: f[c.transaction_id].to_string(),
            refund_no: match kind {
                RowKind::Refund => c
                    .refund_no
                    .map(|i| f[i].to_string())
                    .filter(|s| !s.is_empty()),
                _ => None,
            },
            amount,
        });
    }
    if cols.is_none() {
        return Err(BillError::format(WHAT, "the file is empty"));
    }
    let (Some(h), Some(s)) = (summary_header, summary) else {
        return Err(BillError::format(
            WHAT,
            "no summary row: the file is truncated",
        ));
    };
    check_summary(&h, &s, bill.total_rows, sum_settle, sum_refund)?;
    Ok(bill)
}

/// The summary row must agree with the details: a bill cut short, or
/// corrupted in the middle, is refused rather than half reconciled.
fn check_summary(
    h: &[String],
    s: &[String],
    rows: u64,
    settle: u64,
    refund: u64,
) -> Result<(), BillError> {
    let get = |name: &str| h.iter().position(|c| c == name).map(|i| s[i].as_str());
    if let Some(count) = get("总交易单数") {
        if count.parse::<u64>().ok() != Some(rows) {
            return Err(BillError::format(
                WHAT,
                format!("the summary counts {count} rows, the details have {rows}"),
            ));
        }
    }
    let check = |name: &str, want: u64| -> Result<(), BillError> {
        match get(name) {
            None => Ok(()),
            Some(v) => match bill_amount(v) {
                Some((false, f)) if f.0 == want => Ok(()),
                _ => Err(BillError::format(
                    WHAT,
                    format!(
                        "the summary says {name} {v}, the details add up to {}",
                        Fen(want).to_yuan()
                    ),
                )),
            },
        }
    };
    if h.iter().any(|c| c == "应结订单总金额") {
        check("应结订单总金额", settle)?;
    }
    check("退款总金额", refund)
}

#[cfg(test)]
mod tests;
