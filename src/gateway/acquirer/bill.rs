//! The acquirer's merchant bill (`pay.bill.merchant`, bill_type ALL),
//! streamed: a header line, detail rows with every value after a
//! backtick, then a summary header (总交易单数,…) and its row. Amounts are
//! yuan with two decimals. Column sets differ between deployments, so
//! columns are found by name (gateway-facts.md §Q3).
//!
//! The wallet of each row is read from 交易类型 (`pay.weixin.*`,
//! `pay.alipay.*`, `pay.unionpay.*`). How a reverse that returned money
//! shows is unconfirmed (gateway-facts.md §U): a row whose 交易状态 says
//! 撤销 or 冲正 is read as one.

use std::io::BufRead;

use crate::domain::{Fen, Provider};
use crate::gateway::bill::{
    bill_amount, check_width, fields, keeps, Bill, BillError, BillRow, RowKind,
};

const WHAT: &str = "acquirer";

struct Columns {
    device: usize,
    transaction_id: usize,
    out_trade_no: usize,
    trade_type: usize,
    state: usize,
    amount: usize,
    refund_no: Option<usize>,
    refund_amount: Option<usize>,
    width: usize,
}

impl Columns {
    fn from_header(h: &[&str]) -> Result<Columns, BillError> {
        let find = |name: &str| h.iter().position(|c| *c == name);
        let need = |name: &str| {
            find(name).ok_or_else(|| BillError::format(WHAT, format!("the header has no {name} column")))
        };
        Ok(Columns {
            device: need("设备编号")?,
            transaction_id: need("平台订单号")?,
            out_trade_no: need("商户订单号")?,
            trade_type: need("交易类型")?,
            state: need("交易状态")?,
            amount: need("总金额")?,
            refund_no: find("商户退款单号"),
            refund_amount: find("退款金额"),
            width: h.len(),
        })
    }
}

/// The wallet a row's 交易类型 names; matched by prefix, since deployments
/// add suffixes (`pay.unionpay.proxy.micropay`, `pay.weixin.jspayv3.f6`).
fn provider_of(trade_type: &str) -> Option<Provider> {
    [
        ("pay.weixin.", Provider::Wechat),
        ("pay.alipay.", Provider::Alipay),
        ("pay.unionpay.", Provider::Unionpay),
    ]
    .into_iter()
    .find(|(prefix, _)| trade_type.starts_with(prefix))
    .map(|(_, p)| p)
}

fn amount(f: &[&str], i: usize, line: usize) -> Result<Fen, BillError> {
    let raw = f.get(i).copied().unwrap_or("");
    match bill_amount(raw) {
        Some((_, a)) => Ok(a),
        None => Err(BillError::format(WHAT, format!("line {line}: {raw:?} is not an amount"))),
    }
}

/// Parses the bill, keeping rows whose 设备编号 is `till_id`.
pub fn parse(input: impl BufRead, till_id: &str) -> Result<Bill, BillError> {
    let mut bill = Bill::default();
    let mut cols: Option<Columns> = None;
    let mut in_summary = false;
    for (n, line) in input.split(b'\n').enumerate() {
        let line = line.map_err(|e| BillError::Io(e.to_string()))?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_start_matches('\u{feff}').trim_end_matches('\r');
        if text.trim().is_empty() || in_summary {
            continue;
        }
        let f = fields(text);
        let lineno = n + 1;
        let Some(c) = &cols else {
            if !f.contains(&"交易时间") {
                return Err(BillError::format(WHAT, "the first line is not the detail header (交易时间,…)"));
            }
            cols = Some(Columns::from_header(&f)?);
            continue;
        };
        if f.first() == Some(&"总交易单数") {
            in_summary = true;
            continue;
        }
        check_width(WHAT, lineno, f.len(), c.width)?;
        bill.total_rows += 1;
        if !keeps(till_id, f[c.device]) {
            bill.other_tills += 1;
            continue;
        }
        let provider = provider_of(f[c.trade_type]).ok_or_else(|| {
            BillError::format(WHAT, format!("line {lineno}: unknown 交易类型 {:?}", f[c.trade_type]))
        })?;
        let refund_no = c.refund_no.map(|i| f[i]).filter(|s| !s.is_empty());
        let state = f[c.state];
        let kind = if state.contains("撤销") || state.contains("冲正") {
            RowKind::RevokeRefund
        } else if refund_no.is_some() || state.contains("退款") {
            RowKind::Refund
        } else if state.contains("成功") {
            RowKind::Payment
        } else {
            return Err(BillError::format(WHAT, format!("line {lineno}: unknown 交易状态 {state:?}")));
        };
        let amount = match (kind, c.refund_amount) {
            (RowKind::Payment, _) | (RowKind::RevokeRefund, None) => amount(&f, c.amount, lineno)?,
            (_, Some(i)) if !f[i].is_empty() => amount(&f, i, lineno)?,
            _ => amount(&f, c.amount, lineno)?,
        };
        bill.rows.push(BillRow {
            provider,
            till: f[c.device].to_string(),
            kind,
            out_trade_no: f[c.out_trade_no].to_string(),
            transaction_id: f[c.transaction_id].to_string(),
            refund_no: match kind {
                RowKind::Refund => refund_no.map(str::to_string),
                _ => None,
            },
            amount,
        });
    }
    if cols.is_none() {
        return Err(BillError::format(WHAT, "empty bill"));
    }
    Ok(bill)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "交易时间,公众账号ID,第三方商户号,商户号,子商户号,设备编号,平台订单号,第三方订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,总金额,企业红包金额,平台退款单号,商户退款单号,退款金额,企业红包退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,终端类型,对账标识,门店编号,商户名称,收银员,子商户ID,免充值券金额,实收金额,结算金额,扩展字段2,扩展字段3,扩展字段4";

    fn row(device: &str, otn: &str, trade_type: &str, state: &str, amount: &str, refund_no: &str, refund: &str) -> String {
        let mut v = vec![""; 38];
        v[0] = "2026-12-01 09:45:17";
        v[5] = device;
        v[6] = "7551000001202612010000000001";
        v[8] = otn;
        v[10] = trade_type;
        v[11] = state;
        v[14] = amount;
        v[17] = refund_no;
        v[18] = refund;
        v.iter().map(|s| format!("`{s}")).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn rows_of_three_wallets_are_read_by_column_name_in_fen() {
        let text = [
            HEADER.to_string(),
            row("T1", "T1_A1_1", "pay.weixin.micropay", "支付成功", "12.34", "", ""),
            row("T1", "T1_A2_1", "pay.unionpay.proxy.micropay", "支付成功", "5.00", "", ""),
            row("T1", "T1_A1_1", "pay.weixin.micropay", "转入退款", "12.34", "T1_R1", "2.00"),
            row("T1", "T1_A3_1", "pay.alipay.micropay", "已撤销", "8.80", "", "8.80"),
            row("T2", "T2_A1_1", "pay.alipay.micropay", "支付成功", "1.00", "", ""),
            "总交易单数,总交易额,总退款金额,总企业红包退款金额,总手续费金额,总实收金额".to_string(),
            "`5,`27.14,`10.80,`0,`0.05,`16.34".to_string(),
        ]
        .join("\r\n");
        let bill = parse(std::io::Cursor::new(text.clone()), "T1").expect("parses");
        assert_eq!((bill.total_rows, bill.other_tills), (5, 1));
        let got: Vec<(Provider, RowKind, &str, u64)> = bill
            .rows
            .iter()
            .map(|r| (r.provider, r.kind, r.out_trade_no.as_str(), r.amount.0))
            .collect();
        assert_eq!(
            got,
            [
                (Provider::Wechat, RowKind::Payment, "T1_A1_1", 1234),
                (Provider::Unionpay, RowKind::Payment, "T1_A2_1", 500),
                (Provider::Wechat, RowKind::Refund, "T1_A1_1", 200),
                (Provider::Alipay, RowKind::RevokeRefund, "T1_A3_1", 880),
            ]
        );
        assert_eq!(bill.rows[2].refund_no.as_deref(), Some("T1_R1"));
        // For HQ, every till's rows at once, each with its till.
        let all = parse(std::io::Cursor::new(text), crate::gateway::bill::ALL_TILLS).expect("parses");
        assert_eq!((all.rows.len(), all.other_tills), (5, 0));
        let tills: Vec<&str> = all.rows.iter().map(|r| r.till.as_str()).collect();
        assert_eq!(tills, ["T1", "T1", "T1", "T1", "T2"]);
    }

    #[test]
    fn a_garbled_bill_is_an_error_not_an_empty_day() {
        assert!(parse(std::io::Cursor::new(""), "T1").is_err());
        let cut = format!("{HEADER}\n`2026-12-01 09:45:17,`x");
        assert!(parse(std::io::Cursor::new(cut), "T1").is_err());
        let odd = format!("{HEADER}\n{}", row("T1", "O", "pay.paypal.x", "支付成功", "1.00", "", ""));
        assert!(parse(std::io::Cursor::new(odd), "T1").is_err());
    }
}
