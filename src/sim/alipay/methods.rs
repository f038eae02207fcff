//! The business methods: each translates the shared ledger's outcome into
//! Alipay's codes and fields (gateway-facts.md §A4-§A8).

use chrono::{DateTime, Local};
use serde_json::{Map, Value};

use super::wire::Node;

use super::{code_msg, gateway_error, AlipaySim, Answer};
use crate::domain::{Fen, Provider};
use crate::gateway::RevokeEffect;
use crate::sim::behaviour::is_alipay_code;
use crate::sim::behaviour::Behaviour;
use crate::sim::ledger::{Order, OrderState, PayOutcome, RefundOutcome, Refusal, RevokeOutcome};

/// How the simulator shows the buyer's account (masked, as Alipay does).
pub(super) const BUYER_LOGON_ID: &str = "sim***@example.com";
const BUYER_USER_ID: &str = "2088102000000001";

pub(super) fn dispatch(
    sim: &AlipaySim,
    method: &str,
    biz: &Map<String, Value>,
    host: &str,
) -> Answer {
    let s = |k: &str| biz.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    match method {
        "alipay.trade.pay" => pay(sim, &s),
        "alipay.trade.query" => Answer::Node(query(sim, &s)),
        "alipay.trade.cancel" => Answer::Node(cancel(sim, &s)),
        "alipay.trade.refund" => Answer::Node(refund(sim, &s)),
        "alipay.trade.fastpay.refund.query" => Answer::Node(refund_query(sim, &s)),
        _ => Answer::Node(bill_url(sim, &s, host)),
    }
}

type Biz<'a> = dyn Fn(&str) -> Option<&'a str> + 'a;

/// A node with `code` and its msg, plus fields.
fn node(code: &str, fields: &[(&str, Value)]) -> Node {
    let mut m = Node::new();
    m.insert("code", code);
    m.insert("msg", code_msg(code));
    for (k, v) in fields {
        m.insert(*k, v.clone());
    }
    m
}

fn business_error(sub_code: &str, sub_msg: &str) -> Node {
    gateway_error("40004", sub_code, sub_msg)
}

/// Beijing time, UTC+8, the gateway's clock whatever the till's zone.
const CHINA: chrono::FixedOffset = match chrono::FixedOffset::east_opt(8 * 3600) {
    Some(z) => z,
    None => panic!("UTC+8 is a valid offset"),
};

fn china_time(t: DateTime<Local>) -> String {
    t.with_timezone(&CHINA)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn yuan(f: Fen) -> Value {
    Value::String(f.to_yuan())
}

/// Finds an Alipay order by out_trade_no or trade_no (a revoke tombstone,
/// with no trade_no, does not exist for Alipay).
fn find(sim: &AlipaySim, biz: &Biz<'_>) -> Option<Order> {
    let order = match (biz("out_trade_no"), biz("trade_no")) {
        (Some(otn), _) => sim.ledger.order(otn),
        (None, Some(tn)) => sim
            .ledger
            .orders()
            .into_iter()
            .find(|o| o.transaction_id == tn),
        (None, None) => None,
    }?;
    (order.provider == Provider::Alipay && !order.transaction_id.is_empty()).then_some(order)
}

fn trade_fields(o: &Order) -> Vec<(&'static str, Value)> {
    vec![
        ("trade_no", o.transaction_id.clone().into()),
        ("out_trade_no", o.out_trade_no.clone().into()),
        ("buyer_logon_id", BUYER_LOGON_ID.into()),
        ("buyer_user_id", BUYER_USER_ID.into()),
        ("total_amount", yuan(o.amount)),
    ]
}

fn paid_fields(o: &Order, time_key: &'static str) -> Vec<(&'static str, Value)> {
    let mut f = trade_fields(o);
    f.extend([
        ("receipt_amount", yuan(o.amount)),
        ("buyer_pay_amount", yuan(o.customer_paid())),
        ("invoice_amount", yuan(o.customer_paid())),
        ("point_amount", "0.00".into()),
        (
            "fund_bill_list",
            serde_json::json!([{ "fund_channel": "ALIPAYACCOUNT", "amount": o.amount.to_yuan() }]),
        ),
    ]);
    if let Some(t) = o.paid_at {
        f.push((time_key, china_time(t).into()));
    }
    f
}

/// out_trade_no: at most 64 of letters, digits and `_` (gateway-facts.md §A4).
fn valid_out_trade_no(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn pay(sim: &AlipaySim, biz: &Biz<'_>) -> Answer {
    let invalid = |what: &str| {
        Answer::Node(business_error(
            "ACQ.INVALID_PARAMETER",
            &format!("参数无效: {what}"),
        ))
    };
    let Some(otn) = biz("out_trade_no").filter(|o| valid_out_trade_no(o)) else {
        return invalid("out_trade_no");
    };
    if !matches!(biz("scene"), Some("bar_code" | "wave_code")) {
        return invalid("scene");
    }
    let Some(subject) = biz("subject") else {
        return invalid("subject");
    };
    let amount = biz("total_amount").and_then(|a| Fen::parse_yuan(a, true).ok());
    let Some(amount) = amount.filter(|a| (1..=10_000_000_000).contains(&a.0)) else {
        return invalid("total_amount");
    };
    let code = biz("auth_code").unwrap_or_default();
    if !is_alipay_code(code) {
        return Answer::Node(business_error(
            "ACQ.PAYMENT_AUTH_CODE_INVALID",
            "支付授权码无效",
        ));
    }
    let device = biz("terminal_id").unwrap_or_default();
    let outcome = sim
        .ledger
        .pay(Provider::Alipay, otn, amount, code, device, subject);
    if let Some(op) = biz("operator_id") {
        sim.ledger.note_operator(otn, op);
    }
    Answer::Node(match outcome {
        PayOutcome::Paid(o) => node("10000", &paid_fields(&o, "gmt_payment")),
        PayOutcome::UserPaying(o) => node("10003", &trade_fields(&o)),
        PayOutcome::InsufficientFunds => {
            business_error("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足")
        }
        PayOutcome::CodeExpired | PayOutcome::CodeUsed => {
            business_error("ACQ.PAYMENT_AUTH_CODE_INVALID", "支付授权码无效")
        }
        // Both documented forms of "system error": the client must treat
        // 40004+ACQ.SYSTEM_ERROR as unknown exactly like 20000.
        PayOutcome::SystemError(o) if o.behaviour == Behaviour::SystemErrorPaid => {
            business_error("ACQ.SYSTEM_ERROR", "系统错误")
        }
        PayOutcome::SystemError(_) => gateway_error("20000", "isp.unknow-error", "系统繁忙"),
        // Alipay has no bank-error code of its own: a system error, and the
        // query then shows the trade closed.
        PayOutcome::BankError(_) => business_error("ACQ.SYSTEM_ERROR", "系统错误"),
        PayOutcome::AnswerLost(_) => return Answer::Hangup,
        PayOutcome::Late(o, after) => {
            return Answer::Late(node("10000", &paid_fields(&o, "gmt_payment")), after)
        }
        PayOutcome::BadGateway(_) => return Answer::BadGateway,
        PayOutcome::SystemBusy(_) => {
            return Answer::Unsigned(gateway_error("20000", "isp.unknow-error", "系统繁忙"))
        }
        PayOutcome::Existing { mismatch: true, .. } => {
            business_error("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
        }
        PayOutcome::Existing { order, .. } => match order.state {
            OrderState::Paid => business_error("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"),
            OrderState::Open => node("10003", &trade_fields(&order)),
            OrderState::Failed | OrderState::Revoked(_) => {
                business_error("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
            }
        },
    })
}

fn query(sim: &AlipaySim, biz: &Biz<'_>) -> Node {
    let Some(o) = find(sim, biz) else {
        return business_error("ACQ.TRADE_NOT_EXIST", "交易不存在");
    };
    let fully_refunded = o.refunded().0 >= o.amount.0;
    let status = match o.state {
        OrderState::Open => "WAIT_BUYER_PAY",
        OrderState::Paid if fully_refunded => "TRADE_CLOSED",
        OrderState::Paid => "TRADE_SUCCESS",
        // Unpaid and closed, refunded by a cancel, or failed at the bank.
        OrderState::Failed | OrderState::Revoked(_) => "TRADE_CLOSED",
    };
    let mut fields = if o.paid_at.is_some() {
        paid_fields(&o, "send_pay_date")
    } else {
        trade_fields(&o)
    };
    fields.push(("trade_status", status.into()));
    if !o.device.is_empty() {
        fields.push(("terminal_id", o.device.clone().into()));
    }
    node("10000", &fields)
}

/// How long after its creation a trade may be cancelled: "same day only"
/// for a paid one in the global API, unconfirmed here (gateway-facts.md §U 8).
const CANCEL_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn cancel(sim: &AlipaySim, biz: &Biz<'_>) -> Node {
    let otn = match (biz("out_trade_no"), biz("trade_no")) {
        (Some(otn), _) => otn.to_string(),
        (None, Some(_)) => match find(sim, biz) {
            Some(o) => o.out_trade_no,
            None => {
                let mut n = business_error("ACQ.TRADE_NOT_EXIST", "交易不存在");
                n.insert("retry_flag", "N");
                return n;
            }
        },
        (None, None) => return business_error("ACQ.INVALID_PARAMETER", "参数无效: out_trade_no"),
    };
    let Some(behaviour) = sim.ledger.order(&otn).map(|o| o.behaviour) else {
        // Alipay documents ACQ.TRADE_NOT_EXIST for a cancel of a trade it
        // never saw (gateway-facts.md §A6); it keeps no record of the call.
        let mut n = business_error("ACQ.TRADE_NOT_EXIST", "交易不存在");
        n.insert("retry_flag", "N");
        return n;
    };
    let behaviour = Some(behaviour);
    match sim
        .ledger
        .revoke(Provider::Alipay, &otn, Some(CANCEL_WINDOW))
    {
        // Documented refusals (gateway-facts.md §A6): a trade with a refund
        // cannot be cancelled, nor one past the cancel window.
        RevokeOutcome::Refused(Refusal::Refunded) => {
            let mut n = business_error("ACQ.REASON_TRADE_REFUND_FEE_ERR", "交易已退款，不能撤销");
            n.insert("retry_flag", "N");
            n
        }
        RevokeOutcome::Refused(Refusal::TooLate) => {
            let mut n = business_error("ACQ.TRADE_CANCEL_TIME_OUT", "超过撤销时间范围");
            n.insert("retry_flag", "N");
            n
        }
        // Alipay closes a trade that is waiting for the buyer.
        RevokeOutcome::UserPaying => business_error("ACQ.SYSTEM_ERROR", "系统错误"),
        RevokeOutcome::Retry => {
            let mut n = if behaviour == Some(Behaviour::RevokeFails) {
                gateway_error("20000", "isp.unknow-error", "系统繁忙")
            } else {
                business_error("ACQ.SYSTEM_ERROR", "系统错误")
            };
            n.insert("retry_flag", "Y");
            n.insert("out_trade_no", otn);
            n
        }
        RevokeOutcome::Done(effect) => {
            let order = sim.ledger.order(&otn);
            let mut fields: Vec<(&str, Value)> = vec![
                ("out_trade_no", otn.clone().into()),
                ("retry_flag", "N".into()),
            ];
            if let Some(o) = order.as_ref().filter(|o| !o.transaction_id.is_empty()) {
                fields.push(("trade_no", o.transaction_id.clone().into()));
            }
            match effect {
                RevokeEffect::Closed => fields.push(("action", "close".into())),
                RevokeEffect::Refunded => {
                    fields.push(("action", "refund".into()));
                    let at = order
                        .and_then(|o| o.refunds.iter().rev().find(|r| r.by_revoke).map(|r| r.at));
                    if let Some(at) = at {
                        fields.push(("gmt_refund_pay", china_time(at).into()));
                    }
                }
                RevokeEffect::Unstated => {}
            }
            node("10000", &fields)
        }
    }
}

fn refund(sim: &AlipaySim, biz: &Biz<'_>) -> Node {
    let Some(order) = find(sim, biz) else {
        return business_error("ACQ.TRADE_NOT_EXIST", "交易不存在");
    };
    let amount = biz("refund_amount").and_then(|a| Fen::parse_yuan(a, true).ok());
    let Some(amount) = amount else {
        return business_error("ACQ.INVALID_PARAMETER", "参数无效: refund_amount");
    };
    // A partial refund must name itself (gateway-facts.md §A7).
    if biz("out_request_no").is_none() && amount != Fen(order.amount.0 - order.refunded().0) {
        return business_error(
            "ACQ.INVALID_PARAMETER",
            "参数无效: 部分退款时out_request_no必填",
        );
    }
    // Without out_request_no Alipay treats the call as a full refund keyed
    // by the order itself.
    let request_no = biz("out_request_no")
        .unwrap_or(&order.out_trade_no)
        .to_string();
    let existed = sim
        .ledger
        .refund_of(&order.out_trade_no, &request_no)
        .is_some();
    match sim.ledger.refund(&order.out_trade_no, &request_no, amount) {
        RefundOutcome::Refunded(r) => {
            let refunded = sim
                .ledger
                .order(&order.out_trade_no)
                .map_or(r.amount, |o| o.refunded());
            let mut fields = vec![
                ("trade_no", order.transaction_id.clone().into()),
                ("out_trade_no", order.out_trade_no.clone().into()),
                ("buyer_logon_id", BUYER_LOGON_ID.into()),
                ("buyer_user_id", BUYER_USER_ID.into()),
                // A repeated out_request_no moves no money again.
                ("fund_change", if existed { "N" } else { "Y" }.into()),
                ("refund_fee", yuan(refunded)),
                ("gmt_refund_pay", china_time(r.at).into()),
            ];
            fields.push(("send_back_fee", yuan(r.amount)));
            node("10000", &fields)
        }
        RefundOutcome::NotFound => business_error("ACQ.TRADE_NOT_EXIST", "交易不存在"),
        RefundOutcome::NotPaid => business_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"),
        RefundOutcome::Rejected(_) => {
            business_error("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        }
    }
}

fn refund_query(sim: &AlipaySim, biz: &Biz<'_>) -> Node {
    let Some(request_no) = biz("out_request_no") else {
        return business_error("ACQ.INVALID_PARAMETER", "参数无效: out_request_no");
    };
    let Some(order) = find(sim, biz) else {
        return business_error("ACQ.TRADE_NOT_EXIST", "交易不存在");
    };
    let mut fields: Vec<(&str, Value)> = vec![
        ("trade_no", order.transaction_id.clone().into()),
        ("out_trade_no", order.out_trade_no.clone().into()),
    ];
    // Not found: a bare success without refund fields (as Alipay answers).
    if let Some(r) = sim.ledger.refund_of(&order.out_trade_no, request_no) {
        fields.extend([
            ("out_request_no", Value::from(request_no)),
            ("total_amount", yuan(order.amount)),
            ("refund_amount", yuan(r.amount)),
            ("refund_status", "REFUND_SUCCESS".into()),
            ("gmt_refund_pay", china_time(r.at).into()),
        ]);
    }
    node("10000", &fields)
}

fn bill_url(sim: &AlipaySim, biz: &Biz<'_>, host: &str) -> Node {
    if biz("bill_type") != Some("trade") {
        return gateway_error("40002", "isv.invalid-arguments", "参数不合法: bill_type");
    }
    let date = biz("bill_date").and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let Some(date) = date else {
        return gateway_error("40002", "isv.invalid-arguments", "参数不合法: bill_date");
    };
    // Bills come at T+1: the current day (and later) is refused.
    let today = Local::now().date_naive();
    if date > today || (date == today && !sim.same_day_bills) {
        return gateway_error(
            "40002",
            "isv.invalid-arguments",
            "参数不合法: 账单日期须早于今天",
        );
    }
    if super::bill::rows_of_day(&sim.ledger.orders(), date).is_empty() {
        return business_error("isp.bill_not_exist", "账单不存在");
    }
    node(
        "10000",
        &[("bill_download_url", sim.issue_bill_url(host, date).into())],
    )
}
