//! The acquirer's merchant bill (`pay.bill.merchant`, bill_type ALL): the
//! SwiftPass layout seen in the wild (38 columns, every value after a
//! backtick, yuan with two decimals), then the summary. A reverse that
//! returned money is a row of its own, 交易状态 已撤销 — how real bills
//! show it is unconfirmed (gateway-facts.md §U).

use chrono::{DateTime, FixedOffset, Local, NaiveDate};

use super::endpoints::trade_type;
use super::{AcquirerSim, Outcome};
use crate::domain::Fen;
use crate::sim::http::SimResponse;
use crate::sim::ledger::Order;
use crate::sim::wechat::wire::Fields;

pub const HEADER: &str = "交易时间,公众账号ID,第三方商户号,商户号,子商户号,设备编号,平台订单号,第三方订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,总金额,企业红包金额,平台退款单号,商户退款单号,退款金额,企业红包退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,终端类型,对账标识,门店编号,商户名称,收银员,子商户ID,免充值券金额,实收金额,结算金额,扩展字段2,扩展字段3,扩展字段4";
const SUMMARY: &str = "总交易单数,总交易额,总退款金额,总企业红包退款金额,总手续费金额,总实收金额";

fn beijing(t: DateTime<Local>) -> DateTime<FixedOffset> {
    let east8 = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| *t.offset());
    t.with_timezone(&east8)
}

fn is_day(t: DateTime<Local>, date: NaiveDate) -> bool {
    t.date_naive() == date
}

struct Row {
    at: DateTime<Local>,
    cells: Vec<String>,
    paid: Fen,
    refunded: Fen,
}

fn row(
    sim: &AcquirerSim,
    o: &Order,
    at: DateTime<Local>,
    state: &str,
    refund: Option<(&str, &str, Fen)>,
) -> Row {
    let mut c = vec![String::new(); 38];
    c[0] = beijing(at).format("%Y-%m-%d %H:%M:%S").to_string();
    c[3] = sim.mch_id.clone();
    c[5] = o.device.clone();
    c[6] = o.transaction_id.clone();
    c[7] = format!("X{}", o.transaction_id);
    c[8] = o.out_trade_no.clone();
    c[10] = trade_type(o.provider).to_string();
    c[11] = state.to_string();
    c[13] = "CNY".into();
    c[14] = o.amount.to_yuan();
    // Bills never quote fields: a comma in a subject would split it.
    c[22] = o.subject.replace(',', "，");
    let (paid, refunded) = match refund {
        Some((id, no, amount)) => {
            c[16] = id.to_string();
            c[17] = no.to_string();
            c[18] = amount.to_yuan();
            c[21] = "退款成功".into();
            (Fen(0), amount)
        }
        None => (o.amount, Fen(0)),
    };
    c[33] = paid.to_yuan();
    Row {
        at,
        cells: c,
        paid,
        refunded,
    }
}

fn rows(sim: &AcquirerSim, date: NaiveDate) -> Vec<Row> {
    let mut out = Vec::new();
    for o in sim
        .ledger
        .orders()
        .iter()
        .filter(|o| o.charges > 0 && sim.mine(&o.out_trade_no))
    {
        if let Some(at) = o.paid_at.filter(|t| is_day(*t, date)) {
            out.push(row(sim, o, at, "支付成功", None));
        }
        for r in o.refunds.iter().filter(|r| is_day(r.at, date)) {
            if r.by_revoke {
                out.push(row(
                    sim,
                    o,
                    r.at,
                    "已撤销",
                    Some((&r.refund_id, "", r.amount)),
                ));
            } else {
                out.push(row(
                    sim,
                    o,
                    r.at,
                    "转入退款",
                    Some((&r.refund_id, &r.refund_no, r.amount)),
                ));
            }
        }
    }
    out.sort_by_key(|r| r.at);
    out
}

/// Day `date`'s bill is ready from 10:00 the next day; `same_day` serves
/// it at once.
fn ready(date: NaiveDate, same_day: bool) -> bool {
    let now = beijing(Local::now()).naive_local();
    if same_day {
        return date <= now.date();
    }
    date.succ_opt()
        .and_then(|d| d.and_hms_opt(10, 0, 0))
        .is_some_and(|from| now >= from)
}

pub(super) fn download(sim: &AcquirerSim, req: &Fields) -> Outcome {
    let Some(date) = req
        .get("bill_date")
        .filter(|d| d.len() == 8)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
    else {
        return Outcome::Refused("bill_date格式错误");
    };
    if !ready(date, sim.same_day_bills) {
        return Outcome::Refused("账单生成中");
    }
    let rows = rows(sim, date);
    if rows.is_empty() {
        return Outcome::Refused("账单不存在");
    }
    let tick = |cells: &[String]| {
        cells
            .iter()
            .map(|c| format!("`{c}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut text = format!("{HEADER}\r\n");
    for r in &rows {
        text.push_str(&tick(&r.cells));
        text.push_str("\r\n");
    }
    let paid: u64 = rows.iter().map(|r| r.paid.0).sum();
    let refunded: u64 = rows.iter().map(|r| r.refunded.0).sum();
    text.push_str(SUMMARY);
    text.push_str("\r\n");
    let totals = [
        rows.len().to_string(),
        Fen(paid).to_yuan(),
        Fen(refunded).to_yuan(),
        "0".into(),
        "0.00".into(),
        Fen(paid.saturating_sub(refunded)).to_yuan(),
    ];
    text.push_str(&tick(&totals));
    text.push_str("\r\n");
    Outcome::Raw(SimResponse::ok("text/plain; charset=utf-8", text))
}
