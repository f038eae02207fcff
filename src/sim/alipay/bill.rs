//! The day's bill as Alipay's bill URL serves it (gateway-facts.md §A8): a zip
//! of two GBK CSV files, `<pid>0156_<yyyyMMdd>_业务明细.csv` (the detail,
//! with `#` comment lines, 25 columns, text fields ending in a TAB, refund
//! rows negative) and `…_业务明细(汇总).csv` (the summary). Lines end CRLF,
//! as files made for Excel on Windows do.
//!
//! The simulator's day is the machine's local day (on a till in China that
//! is China time), so a bill lines up with the journal of the same machine.

use chrono::{DateTime, Days, Local, NaiveDate};

use crate::domain::{Fen, Provider};
use crate::sim::ledger::Order;

use super::zip_gbk;

pub const DETAIL_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

const SUMMARY_HEADER: &str = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）";

/// One detail row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    pub trade_no: String,
    pub out_trade_no: String,
    /// `交易` or `退款`.
    pub kind: &'static str,
    pub subject: String,
    pub created: DateTime<Local>,
    pub finished: DateTime<Local>,
    pub device: String,
    /// Positive for 交易; printed negative for 退款.
    pub amount: Fen,
    /// 退款批次号/请求号: the out_request_no, or for a refund that a cancel
    /// caused, the Alipay trade number (there is no merchant request number).
    pub batch: String,
}

impl BillRow {
    fn signed_amount(&self) -> String {
        if self.kind == "退款" {
            format!("-{}", self.amount.to_yuan())
        } else {
            self.amount.to_yuan()
        }
    }
}

/// The rows of `date`: a 交易 row for every Alipay order paid that day and
/// a 退款 row for every refund made that day (by refund or by cancel).
pub fn rows_of_day(orders: &[Order], date: NaiveDate) -> Vec<BillRow> {
    let mut rows = Vec::new();
    for o in orders
        .iter()
        .filter(|o| o.provider == Provider::Alipay && o.charges > 0)
    {
        let row = |kind, finished, amount, batch| BillRow {
            trade_no: o.transaction_id.clone(),
            out_trade_no: o.out_trade_no.clone(),
            kind,
            subject: o.subject.clone(),
            created: o.created,
            finished,
            device: o.device.clone(),
            amount,
            batch,
        };
        if let Some(paid) = o.paid_at.filter(|t| t.date_naive() == date) {
            rows.push(row("交易", paid, o.amount, String::new()));
        }
        for r in o.refunds.iter().filter(|r| r.at.date_naive() == date) {
            let batch = if r.by_revoke {
                o.transaction_id.clone()
            } else {
                r.refund_no.clone()
            };
            rows.push(row("退款", r.at, r.amount, batch));
        }
    }
    rows.sort_by_key(|r| r.finished);
    rows
}

/// A CSV text field: no separators or line breaks inside, then the TAB
/// Alipay appends so that spreadsheets keep long numbers as text.
fn text(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| match c {
            ',' => '，',
            '"' => '＂',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    format!("{clean}\t")
}

fn time(t: DateTime<Local>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn cn_day(d: NaiveDate) -> String {
    d.format("%Y年%m月%d日 00:00:00").to_string()
}

fn preamble(title: &str, list: &str, pid: &str, date: NaiveDate) -> String {
    let next = date.checked_add_days(Days::new(1)).unwrap_or(date);
    format!(
        "#{title}\r\n#账号：[{pid}0156]\r\n#起始日期：[{}]   终止日期：[{}]\r\n\
         #-----------------------------------------{list}----------------------------------------\r\n",
        cn_day(date),
        cn_day(next)
    )
}

fn sum(rows: &[BillRow], kind: &str) -> (usize, Fen) {
    let of_kind = rows.iter().filter(|r| r.kind == kind);
    (
        of_kind.clone().count(),
        Fen(of_kind.map(|r| r.amount.0).sum()),
    )
}

fn negative(f: Fen) -> String {
    if f.0 == 0 {
        f.to_yuan()
    } else {
        format!("-{}", f.to_yuan())
    }
}

/// The detail file's text (before GBK encoding).
pub fn detail_csv(
    rows: &[BillRow],
    pid: &str,
    date: NaiveDate,
    exported: DateTime<Local>,
) -> String {
    let mut out = preamble("支付宝业务明细查询", "业务明细列表", pid, date);
    out.push_str(DETAIL_HEADER);
    out.push_str("\r\n");
    for r in rows {
        let amount = r.signed_amount();
        let fields = [
            text(&r.trade_no),
            text(&r.out_trade_no),
            text(r.kind),
            text(&r.subject),
            time(r.created),
            time(r.finished),
            text(""),
            text(""),
            text(""),
            text(&r.device),
            text(super::methods::BUYER_LOGON_ID),
            amount.clone(),
            amount,
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            text(""),
            "0.00".into(),
            "0.00".into(),
            text(&r.batch),
            "0.00".into(),
            "0.00".into(),
            text(&r.subject).trim_end_matches('\t').to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    let (trades, traded) = sum(rows, "交易");
    let (refunds, refunded) = sum(rows, "退款");
    out.push_str("#-----------------------------------------业务明细列表结束------------------------------------\r\n");
    out.push_str(&format!(
        "#交易合计：{trades}笔，商家实收共{}元，商家优惠共0.00元\r\n",
        traded.to_yuan()
    ));
    out.push_str(&format!(
        "#退款合计：{refunds}笔，商家实收退款共{}元，商家优惠退款共0.00元\r\n",
        negative(refunded)
    ));
    out.push_str(&format!(
        "#导出时间：[{}]\r\n",
        exported.format("%Y年%m月%d日 %H:%M:%S")
    ));
    out
}

/// The summary file's text (before GBK encoding): one line for the shop
/// (the simulator has no stores) and the total.
pub fn summary_csv(
    rows: &[BillRow],
    pid: &str,
    date: NaiveDate,
    exported: DateTime<Local>,
) -> String {
    let mut out = preamble("支付宝业务汇总查询", "业务汇总列表", pid, date);
    out.push_str(SUMMARY_HEADER);
    out.push_str("\r\n");
    let (trades, traded) = sum(rows, "交易");
    let (refunds, refunded) = sum(rows, "退款");
    let net = if traded >= refunded {
        Fen(traded.0 - refunded.0).to_yuan()
    } else {
        negative(Fen(refunded.0 - traded.0))
    };
    for label in ["", "合计"] {
        out.push_str(&format!(
            "{},{},{trades},{refunds},{net},{net},0.00,0.00,0.00,0.00,0.00,{net}\r\n",
            text(label),
            text("")
        ));
    }
    out.push_str("#-----------------------------------------业务汇总列表结束------------------------------------\r\n");
    out.push_str(&format!(
        "#导出时间：[{}]\r\n",
        exported.format("%Y年%m月%d日 %H:%M:%S")
    ));
    out
}

/// The zip the bill URL serves for `date`.
pub fn bill_zip(
    orders: &[Order],
    pid: &str,
    date: NaiveDate,
    exported: DateTime<Local>,
) -> Vec<u8> {
    let rows = rows_of_day(orders, date);
    let stem = format!("{pid}0156_{}", date.format("%Y%m%d"));
    let gbk = |s: &str| encoding_rs::GBK.encode(s).0.into_owned();
    let files = [
        (
            gbk(&format!("{stem}_业务明细.csv")),
            gbk(&detail_csv(&rows, pid, date, exported)),
        ),
        (
            gbk(&format!("{stem}_业务明细(汇总).csv")),
            gbk(&summary_csv(&rows, pid, date, exported)),
        ),
    ];
    zip_gbk::write(&files, exported.naive_local())
}
