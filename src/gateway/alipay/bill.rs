//! Alipay's trade bill: a zip of GBK CSV files (entry names in GBK too).
//! The detail file starts `#支付宝业务明细查询`; `#` lines are comments;
//! text fields end with a tab; 交易 rows are payments and 退款 rows refunds
//! with negative amounts; the footer's totals are checked against the rows.

use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};

use crate::gateway::bill::{
    bill_amount, check_width, fields, keeps, Bill, BillError, BillRow, RowKind,
};
use crate::domain::{Fen, Provider};

const WHAT: &str = "Alipay";
/// A footer total: (rows, signed fen).
type Total = (u64, i64);

const DETAIL_MARK: &str = "#支付宝业务明细查询";

/// Reads a bill given as the zip, or as the detail CSV itself.
pub fn parse_file(bytes: &[u8], till_id: &str) -> Result<Bill, BillError> {
    parse_reader(Cursor::new(bytes), till_id)
}

/// Like [`parse_file`], streaming from a file: a big bill is never held whole.
pub fn parse_reader<R: Read + Seek>(mut r: R, till_id: &str) -> Result<Bill, BillError> {
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut r, &mut magic)?;
    r.seek(SeekFrom::Start(0))
        .map_err(|e| BillError::Io(e.to_string()))?;
    if n == 4 && magic == *b"PK\x03\x04" {
        parse_zip(r, till_id)
    } else {
        parse_detail(BufReader::with_capacity(1 << 16, r), till_id)
    }
}

/// Finds the detail CSV in the zip by its first line (entry names are GBK
/// without the UTF-8 flag, so names are not to be trusted) and parses it.
pub fn parse_zip<R: Read + Seek>(r: R, till_id: &str) -> Result<Bill, BillError> {
    let mut zip = zip::ZipArchive::new(r)
        .map_err(|e| BillError::format(WHAT, format!("not a readable zip: {e}")))?;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| BillError::format(WHAT, format!("zip entry {i}: {e}")))?;
        let mut head = vec![0u8; 64];
        let n = read_up_to(&mut entry, &mut head)?;
        head.truncate(n);
        let first = encoding_rs::GBK.decode(&head).0;
        if first.starts_with(DETAIL_MARK) {
            let rest = BufReader::new(Cursor::new(head).chain(entry));
            return parse_detail(rest, till_id);
        }
    }
    Err(BillError::format(
        WHAT,
        "the zip holds no detail file (#支付宝业务明细查询)",
    ))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, BillError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(BillError::format(WHAT, format!("zip entry: {e}"))),
        }
    }
    Ok(n)
}

struct Columns {
    trade_no: usize,
    out_trade_no: usize,
    kind: usize,
    terminal: usize,
    amount: usize,
    received: usize,
    batch: usize,
    width: usize,
}

impl Columns {
    fn from_header(h: &[&str]) -> Result<Columns, BillError> {
        let need = |name: &str| {
            h.iter()
                .position(|c| c.starts_with(name))
                .ok_or_else(|| BillError::format(WHAT, format!("the header has no {name} column")))
        };
        Ok(Columns {
            trade_no: need("支付宝交易号")?,
            out_trade_no: need("商户订单号")?,
            kind: need("业务类型")?,
            terminal: need("终端号")?,
            amount: need("订单金额")?,
            received: need("商家实收")?,
            batch: need("退款批次号")?,
            width: h.len(),
        })
    }
}

/// Parses the detail CSV (GBK), keeping rows whose 终端号 is `till_id`.
// One pass over the file, so one function: the header, the rows and the footer share the column map and the running totals.
pub fn parse_detail(input: impl BufRead, till_id: &str) -> Result<Bill, BillError> {
    let mut bill = Bill::default();
    let mut cols: Option<Columns> = None;
    let mut seen_mark = false;
    let (mut trades, mut trade_received) = (0u64, 0i64);
    let (mut refunds, mut refund_received) = (0u64, 0i64);
    // (count, fen) of the 交易合计 and 退款合计 footer lines.
    let mut footer: [Option<Total>; 2] = [None, None];
    for (n, line) in input.split(b'\n').enumerate() {
        let line = line.map_err(|e| BillError::Io(e.to_string()))?;
        let text = encoding_rs::GBK.decode(&line).0;
        let text = text.trim_end_matches(['\r', '\n']);
        let lineno = n + 1;
        if text.trim().is_empty() {
            continue;
        }
        if let Some(comment) = text.strip_prefix('#') {
            if text.starts_with(DETAIL_MARK) {
                seen_mark = true;
            }
            if let Some(t) = footer_total(comment, "交易合计") {
                footer[0] = Some(t);
            }
            if let Some(t) = footer_total(comment, "退款合计") {
                footer[1] = Some(t);
            }
            continue;
        }
        if !seen_mark {
            return Err(BillError::format(
                WHAT,
                "not a detail bill (#支付宝业务明细查询 missing)",
            ));
        }
        let f = fields(text);
        let Some(c) = &cols else {
            cols = Some(Columns::from_header(&f)?);
            continue;
        };
        check_width(WHAT, lineno, f.len(), c.width)?;
        bill.total_rows += 1;
        let money = |i: usize| -> Result<i64, BillError> {
            match bill_amount(f[i]) {
                Some((neg, a)) => Ok(if neg { -(a.0 as i64) } else { a.0 as i64 }),
                None => Err(BillError::format(
                    WHAT,
                    format!("line {lineno}: {:?} is not an amount", f[i]),
                )),
            }
        };
        let (amount, received) = (money(c.amount)?, money(c.received)?);
        let kind = match f[c.kind] {
            "交易" => {
                trades += 1;
                trade_received += received;
                RowKind::Payment
            }
            "退款" => {
                refunds += 1;
                refund_received += received;
                // A cancel's refund carries the Alipay trade number as its
                // batch number: it belongs to the revoke, not to a merchant refund.
                if f[c.batch] == f[c.trade_no] || f[c.batch].is_empty() {
                    RowKind::RevokeRefund
                } else {
                    RowKind::Refund
                }
            }
            other => {
                return Err(BillError::format(
                    WHAT,
                    format!("line {lineno}: unknown 业务类型 {other:?}"),
                ))
            }
        };
        if !keeps(till_id, f[c.terminal]) {
            bill.other_tills += 1;
            continue;
        }
        bill.rows.push(BillRow {
            provider: Provider::Alipay,
            till: f[c.terminal].to_string(),
            kind,
            out_trade_no: f[c.out_trade_no].to_string(),
            transaction_id: f[c.trade_no].to_string(),
            refund_no: (kind == RowKind::Refund).then(|| f[c.batch].to_string()),
            amount: Fen(amount.unsigned_abs()),
        });
    }
    if cols.is_none() {
        return Err(BillError::format(
            WHAT,
            "no detail header: the file is empty or not a bill",
        ));
    }
    let [Some(t), Some(r)] = footer else {
        return Err(BillError::format(
            WHAT,
            "no #交易合计 / #退款合计 footer: the file is truncated",
        ));
    };
    if t != (trades, trade_received) || r != (refunds, refund_received) {
        return Err(BillError::format(
            WHAT,
            format!(
                "the footer says {} trades ¥{} and {} refunds ¥{}, the rows add up to {trades} ¥{} and {refunds} ¥{}",
                t.0,
                signed(t.1),
                r.0,
                signed(r.1),
                signed(trade_received),
                signed(refund_received)
            ),
        ));
    }
    Ok(bill)
}

fn signed(fen: i64) -> String {
    let s = Fen(fen.unsigned_abs()).to_yuan();
    if fen < 0 {
        format!("-{s}")
    } else {
        s
    }
}

/// `交易合计：6笔，商家实收共0.06元，…` → (6, 6 fen).
fn footer_total(comment: &str, label: &str) -> Option<Total> {
    let rest = comment.strip_prefix(label)?.trim_start_matches(['：', ':']);
    let (count, rest) = rest.split_once('笔')?;
    let count: u64 = count.trim().parse().ok()?;
    let after = rest.split_once('共')?.1;
    let amount = after.split_once('元')?.0;
    let (neg, fen) = bill_amount(amount.trim())?;
    Some((count, if neg { -(fen.0 as i64) } else { fen.0 as i64 }))
}

#[cfg(test)]
mod tests;
