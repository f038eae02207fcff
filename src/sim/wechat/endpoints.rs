//! The endpoints: each checks its fields as WeChat does, asks the ledger,
//! and says what happened as an [`Outcome`].
//!
//! Over 400 lines: one handler per WeChat endpoint, each short, in the order of the documents.

use chrono::{DateTime, FixedOffset, Local};

use super::wire::Fields;
use super::{openid, Outcome, WechatSim};
use crate::domain::{Fen, Provider};
use crate::sim::behaviour::is_wechat_code;
use crate::sim::behaviour::Behaviour;
use crate::sim::http::SimResponse;
use crate::sim::ledger::{
    Ledger, Order, OrderState, PayOutcome, RefundEnd, RefundOutcome, Refusal, RevokeOutcome,
    SimRefund,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Micropay,
    OrderQuery,
    Reverse,
    Refund,
    RefundQuery,
    DownloadBill,
}

impl Endpoint {
    pub(super) fn of_path(path: &str) -> Option<Endpoint> {
        Some(match path {
            "/pay/micropay" => Endpoint::Micropay,
            "/pay/orderquery" => Endpoint::OrderQuery,
            "/secapi/pay/reverse" => Endpoint::Reverse,
            "/secapi/pay/refund" => Endpoint::Refund,
            "/pay/refundquery" => Endpoint::RefundQuery,
            "/pay/downloadbill" => Endpoint::DownloadBill,
            _ => return None,
        })
    }

    pub(super) fn run(self, sim: &WechatSim, req: &Fields) -> Outcome {
        match self {
            Endpoint::Micropay => micropay(sim, req),
            Endpoint::OrderQuery => order_query(sim, req),
            Endpoint::Reverse => reverse(sim, req),
            Endpoint::Refund => refund(sim, req),
            Endpoint::RefundQuery => refund_query(sim, req),
            Endpoint::DownloadBill => download_bill(sim, req),
        }
    }
}

fn field<'a>(req: &'a Fields, k: &str) -> Option<&'a str> {
    req.get(k).map(String::as_str).filter(|v| !v.is_empty())
}

fn put(f: &mut Fields, k: &str, v: impl Into<String>) {
    let v = v.into();
    // WeChat leaves empty fields out of its answers.
    if !v.is_empty() {
        f.insert(k.to_string(), v);
    }
}

/// WeChat's clock is Beijing time, whatever the till's zone.
pub(super) fn beijing(t: DateTime<Local>) -> DateTime<FixedOffset> {
    let east8 = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| *t.offset());
    t.with_timezone(&east8)
}

fn time_end(t: DateTime<Local>) -> String {
    beijing(t).format("%Y%m%d%H%M%S").to_string()
}

pub(super) fn parse_fee(v: &str) -> Option<Fen> {
    if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u64>().ok().filter(|n| *n > 0).map(Fen)
}

fn require(req: &Fields, names: &[&str]) -> Result<(), Outcome> {
    for n in names {
        if field(req, n).is_none() {
            return Err(Outcome::fail("LACK_PARAMS", format!("缺少参数{n}")));
        }
    }
    Ok(())
}

/// The WeChat order named by `transaction_id` (which WeChat prefers) or
/// `out_trade_no`. Alipay orders in the shared ledger are not WeChat's.
fn find_order(sim: &WechatSim, req: &Fields) -> Result<Option<Order>, Outcome> {
    if let Some(tid) = field(req, "transaction_id") {
        return Ok(sim
            .ledger
            .orders()
            .into_iter()
            .find(|o| o.provider == Provider::Wechat && o.transaction_id == tid));
    }
    match field(req, "out_trade_no") {
        Some(no) => Ok(sim
            .ledger
            .order(no)
            .filter(|o| o.provider == Provider::Wechat)),
        None => Err(Outcome::fail(
            "PARAM_ERROR",
            "transaction_id和out_trade_no必须填写一个",
        )),
    }
}

/// The fields of a paid order, as micropay and orderquery give them.
fn paid_fields(o: &Order) -> Fields {
    let mut f = Fields::new();
    put(&mut f, "openid", openid(o));
    put(&mut f, "is_subscribe", "N");
    put(&mut f, "trade_type", "MICROPAY");
    put(&mut f, "bank_type", "OTHERS");
    put(&mut f, "fee_type", "CNY");
    put(&mut f, "total_fee", o.amount.0.to_string());
    put(&mut f, "cash_fee_type", "CNY");
    put(&mut f, "cash_fee", o.customer_paid().0.to_string());
    if o.coupon().0 > 0 {
        put(&mut f, "coupon_fee", o.coupon().0.to_string());
        put(&mut f, "coupon_count", "1");
        put(&mut f, "coupon_fee_0", o.coupon().0.to_string());
        put(&mut f, "coupon_id_0", "2000000000000000001");
    }
    put(&mut f, "transaction_id", o.transaction_id.clone());
    put(&mut f, "out_trade_no", o.out_trade_no.clone());
    if let Some(t) = o.paid_at {
        put(&mut f, "time_end", time_end(t));
    }
    f
}

fn micropay(sim: &WechatSim, req: &Fields) -> Outcome {
    // Real WeChat rejects trade_type on micropay (gateway-facts.md §W3).
    if req.contains_key("trade_type") {
        return Outcome::fail("PARAM_ERROR", "无效的trade_type");
    }
    if let Err(o) = require(
        req,
        &[
            "body",
            "out_trade_no",
            "total_fee",
            "spbill_create_ip",
            "auth_code",
        ],
    ) {
        return o;
    }
    let body = field(req, "body").unwrap_or_default();
    let out_trade_no = field(req, "out_trade_no").unwrap_or_default();
    let auth_code = field(req, "auth_code").unwrap_or_default();
    let device = field(req, "device_info").unwrap_or_default();
    if body.len() > 128 {
        return Outcome::fail("PARAM_ERROR", "body参数长度有误");
    }
    if out_trade_no.len() > 32
        || !out_trade_no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
    {
        return Outcome::fail("PARAM_ERROR", "out_trade_no参数格式错误");
    }
    if device.len() > 32 {
        return Outcome::fail("PARAM_ERROR", "device_info参数长度有误");
    }
    let Some(total) = field(req, "total_fee").and_then(parse_fee) else {
        return Outcome::fail("PARAM_ERROR", "total_fee参数错误");
    };
    if field(req, "fee_type").is_some_and(|t| t != "CNY") {
        return Outcome::fail("PARAM_ERROR", "fee_type参数错误");
    }
    if !is_wechat_code(auth_code) {
        return Outcome::fail("AUTH_CODE_INVALID", "请扫描微信支付被扫条码/二维码");
    }
    let outcome = sim.ledger.pay(
        Provider::Wechat,
        out_trade_no,
        total,
        auth_code,
        device,
        body,
    );
    let with_device = |mut f: Fields| {
        put(&mut f, "device_info", device);
        if let Some(a) = field(req, "attach") {
            put(&mut f, "attach", a);
        }
        f
    };
    match outcome {
        PayOutcome::Paid(o) => Outcome::Success(with_device(paid_fields(&o))),
        PayOutcome::UserPaying(_) => Outcome::Fail {
            code: "USERPAYING",
            des: "需要用户输入支付密码".into(),
            extra: with_device(Fields::new()),
        },
        PayOutcome::InsufficientFunds => Outcome::fail("NOTENOUGH", "余额不足"),
        PayOutcome::CodeExpired => {
            Outcome::fail("AUTHCODEEXPIRE", "二维码已过期，请用户在微信上刷新后再试")
        }
        PayOutcome::CodeUsed => {
            Outcome::fail("AUTH_CODE_ERROR", "每个二维码仅限使用一次，请刷新再试")
        }
        PayOutcome::SystemError(_) => Outcome::fail("SYSTEMERROR", "系统超时"),
        PayOutcome::BankError(_) => Outcome::fail("BANKERROR", "银行系统异常"),
        PayOutcome::AnswerLost(_) => Outcome::Hangup,
        PayOutcome::Late(o, after) => Outcome::Late(
            Box::new(Outcome::Success(with_device(paid_fields(&o)))),
            after,
        ),
        PayOutcome::BadGateway(_) => Outcome::Raw(crate::sim::http::bad_gateway_page()),
        PayOutcome::SystemBusy(_) => Outcome::ReturnFail("系统繁忙,请稍后再试"),
        PayOutcome::Existing { order, mismatch } => existing(&order, mismatch),
    }
}

/// A micropay for an out_trade_no WeChat already knows (gateway-facts.md §W4).
fn existing(o: &Order, mismatch: bool) -> Outcome {
    match o.state {
        OrderState::Paid => Outcome::fail("ORDERPAID", "订单已支付"),
        OrderState::Revoked(_) => Outcome::fail("ORDERREVERSED", "订单已撤销"),
        OrderState::Failed => Outcome::fail("ORDERCLOSED", "订单已关闭"),
        // Another code or amount under a number in use.
        OrderState::Open if mismatch => Outcome::fail("OUT_TRADE_NO_USED", "商户订单号重复"),
        // The same request again while the customer is still deciding.
        OrderState::Open => Outcome::fail("USERPAYING", "需要用户输入支付密码"),
    }
}

fn order_query(sim: &WechatSim, req: &Fields) -> Outcome {
    let order = match find_order(sim, req) {
        Ok(Some(o)) => o,
        Ok(None) => return Outcome::fail("ORDERNOTEXIST", "此交易订单号不存在"),
        Err(o) => return o,
    };
    let (state, desc) = match order.state {
        OrderState::Paid if !order.refunds.is_empty() => ("REFUND", "转入退款"),
        OrderState::Paid => ("SUCCESS", "支付成功"),
        // After a system error nothing reached the customer's phone.
        OrderState::Open if order.behaviour == Behaviour::SystemErrorUnpaid => ("NOTPAY", "未支付"),
        OrderState::Open => ("USERPAYING", "需要用户输入支付密码"),
        OrderState::Failed => ("PAYERROR", "支付失败，请撤销订单"),
        OrderState::Revoked(_) => ("REVOKED", "已撤销"),
    };
    let mut f = if order.charges > 0 {
        paid_fields(&order)
    } else {
        let mut f = Fields::new();
        put(&mut f, "out_trade_no", order.out_trade_no.clone());
        if order.amount.0 > 0 {
            put(&mut f, "total_fee", order.amount.0.to_string());
        }
        f
    };
    put(&mut f, "trade_state", state);
    put(&mut f, "trade_state_desc", desc);
    put(&mut f, "device_info", order.device.clone());
    Outcome::Success(f)
}

fn reverse(sim: &WechatSim, req: &Fields) -> Outcome {
    let recall = |r: &str| {
        let mut f = Fields::new();
        put(&mut f, "recall", r);
        f
    };
    let (out_trade_no, age) = match find_order(sim, req) {
        Ok(Some(o)) => (o.out_trade_no.clone(), Some(o.age())),
        Ok(None) if field(req, "transaction_id").is_some() => {
            return Outcome::Fail {
                code: "INVALID_TRANSACTIONID",
                des: "无效transaction_id".into(),
                extra: recall("N"),
            }
        }
        // What WeChat answers for an order it never saw is not documented
        // (gateway-facts.md §U): the simulator closes the number for good,
        // so that a late micropay cannot take money for it.
        Ok(None) => (
            field(req, "out_trade_no").unwrap_or_default().to_string(),
            None,
        ),
        Err(o) => return o,
    };
    if age.is_some_and(|a| a < sim.min_reverse_delay()) {
        // "调用支付接口后请勿立即调用撤销订单API" (gateway-facts.md §W5).
        sim.ledger.note_early_reverse();
        return Outcome::Fail {
            code: "SYSTEMERROR",
            des: "请在支付15秒后再撤销订单".into(),
            extra: recall("Y"),
        };
    }
    match sim
        .ledger
        .revoke(Provider::Wechat, &out_trade_no, Some(REVERSE_WINDOW))
    {
        RevokeOutcome::Retry => Outcome::Fail {
            code: "SYSTEMERROR",
            des: "系统错误，请重试".into(),
            extra: recall("Y"),
        },
        RevokeOutcome::UserPaying => Outcome::Fail {
            code: "USERPAYING",
            des: "正在支付中不能发起撤销".into(),
            extra: recall("N"),
        },
        RevokeOutcome::Refused(Refusal::TooLate) => Outcome::Fail {
            code: "REVERSE_EXPIRE",
            des: "订单已超过撤销期限".into(),
            extra: recall("N"),
        },
        RevokeOutcome::Refused(Refusal::Refunded) => Outcome::Fail {
            code: "TRADE_ERROR",
            des: "订单已发生退款，不能撤销".into(),
            extra: recall("N"),
        },
        RevokeOutcome::Done(_) => Outcome::Success(recall("N")),
    }
}

/// A reverse is taken within 7 days of the payment (gateway-facts.md §W5).
pub(super) const REVERSE_WINDOW: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

/// Time units from an accepted refund to the money landing.
pub const REFUND_LANDS_AFTER: u32 = 5;

fn refund(sim: &WechatSim, req: &Fields) -> Outcome {
    if let Err(o) = require(req, &["out_refund_no", "total_fee", "refund_fee"]) {
        return o;
    }
    let refund_no = field(req, "out_refund_no").unwrap_or_default();
    if refund_no.len() > 64
        || !refund_no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*' | b'@'))
    {
        return Outcome::fail("PARAM_ERROR", "out_refund_no参数格式错误");
    }
    let (Some(total), Some(amount)) = (
        field(req, "total_fee").and_then(parse_fee),
        field(req, "refund_fee").and_then(parse_fee),
    ) else {
        return Outcome::fail("PARAM_ERROR", "total_fee或refund_fee参数错误");
    };
    let order = match find_order(sim, req) {
        Ok(Some(o)) => o,
        Ok(None) => return Outcome::fail("ORDERNOTEXIST", "订单不存在"),
        Err(o) => return o,
    };
    if order.amount != total {
        return Outcome::fail("PARAM_ERROR", "订单金额total_fee与实际订单金额不一致");
    }
    if let Some(o) = rule_breach(sim, &order, refund_no) {
        return o;
    }
    let first_call = sim
        .ledger
        .refund_of(&order.out_trade_no, refund_no)
        .is_none();
    // WeChat accepts a refund and lands it later; refundquery tells.
    match sim
        .ledger
        .refund_landing(&order.out_trade_no, refund_no, amount, REFUND_LANDS_AFTER)
    {
        // The refund went through, but this answer says it did not know.
        RefundOutcome::Refunded(_)
            if first_call && order.behaviour == Behaviour::RefundSystemError =>
        {
            Outcome::fail("SYSTEMERROR", "系统超时，请用相同参数再次调用")
        }
        RefundOutcome::Refunded(r) => {
            let mut f = Fields::new();
            put(&mut f, "transaction_id", order.transaction_id.clone());
            put(&mut f, "out_trade_no", order.out_trade_no.clone());
            put(&mut f, "out_refund_no", r.refund_no.clone());
            put(&mut f, "refund_id", r.refund_id.clone());
            put(&mut f, "refund_fee", r.amount.0.to_string());
            put(&mut f, "total_fee", order.amount.0.to_string());
            put(&mut f, "cash_fee", order.customer_paid().0.to_string());
            put(&mut f, "cash_refund_fee", r.amount.0.to_string());
            Outcome::Success(f)
        }
        RefundOutcome::NotFound => Outcome::fail("ORDERNOTEXIST", "订单不存在"),
        RefundOutcome::NotPaid => Outcome::fail("ERROR", "订单状态错误，不能退款"),
        RefundOutcome::Rejected(why) if why.contains("reused") => {
            Outcome::fail("REFUND_FEE_MISMATCH", "订单金额或退款金额与之前请求不一致")
        }
        RefundOutcome::Rejected(_) => Outcome::fail("ERROR", "申请退款金额超过订单可退金额"),
    }
}

/// At most 50 refunds per order (gateway-facts.md §W8).
const MAX_REFUNDS: usize = 50;

/// A new refund that WeChat's rules refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefundRule {
    /// The refund number is another order's.
    NumberUsedElsewhere,
    /// The order has had [`MAX_REFUNDS`].
    TooMany,
    /// The order's last refund was less than a minute ago.
    TooSoon,
}

/// WeChat's rules for a new refund: `out_refund_no` is unique across the
/// merchant account (tillpay puts the till id in it for that reason), the
/// refunds of one order come at least a minute apart, and there are at most
/// [`MAX_REFUNDS`] of them. A retry of a known refund is not a new one.
/// Both dialects word the breach their own way.
pub(super) fn refund_rule_breach(
    ledger: &Ledger,
    order: &Order,
    refund_no: &str,
) -> Option<RefundRule> {
    if ledger.refund_of(&order.out_trade_no, refund_no).is_some() {
        return None;
    }
    if ledger
        .refund_no_elsewhere(Provider::Wechat, &order.out_trade_no, refund_no)
        .is_some()
    {
        return Some(RefundRule::NumberUsedElsewhere);
    }
    let (count, last) = ledger.refund_history(&order.out_trade_no);
    if count >= MAX_REFUNDS {
        return Some(RefundRule::TooMany);
    }
    if last.is_some_and(|ago| ago < ledger.time_unit() * 60) {
        return Some(RefundRule::TooSoon);
    }
    None
}

fn rule_breach(sim: &WechatSim, order: &Order, refund_no: &str) -> Option<Outcome> {
    Some(match refund_rule_breach(&sim.ledger, order, refund_no)? {
        RefundRule::NumberUsedElsewhere => {
            Outcome::fail("PARAM_ERROR", "商户退款单号重复，已用于其他订单")
        }
        RefundRule::TooMany => Outcome::fail("ERROR", "订单退款次数已达上限"),
        RefundRule::TooSoon => Outcome::fail("FREQUENCY_LIMITED", "同一订单的退款请求需间隔1分钟"),
    })
}

// Long because refundquery answers with indexed fields for every refund of the order; one place builds them.
fn refund_query(sim: &WechatSim, req: &Fields) -> Outcome {
    let orders: Vec<Order> = sim
        .ledger
        .orders()
        .into_iter()
        .filter(|o| o.provider == Provider::Wechat)
        .collect();
    // WeChat takes the most specific id given.
    let by_refund = |pred: &dyn Fn(&SimRefund) -> bool| {
        orders
            .iter()
            .find(|o| o.refunds.iter().any(|r| !r.by_revoke && pred(r)))
            .map(|o| {
                (
                    o.clone(),
                    o.refunds
                        .iter()
                        .filter(|r| !r.by_revoke && pred(r))
                        .cloned()
                        .collect::<Vec<_>>(),
                )
            })
    };
    let found = if let Some(id) = field(req, "refund_id") {
        by_refund(&|r| r.refund_id == id)
    } else if let Some(no) = field(req, "out_refund_no") {
        by_refund(&|r| r.refund_no == no)
    } else if field(req, "transaction_id").is_some() || field(req, "out_trade_no").is_some() {
        match find_order(sim, req) {
            Ok(Some(o)) => {
                let rs: Vec<_> = o.refunds.iter().filter(|r| !r.by_revoke).cloned().collect();
                (!rs.is_empty()).then_some((o, rs))
            }
            Ok(None) => None,
            Err(o) => return o,
        }
    } else {
        return Outcome::fail(
            "PARAM_ERROR",
            "refund_id、out_refund_no、transaction_id、out_trade_no必须填写一个",
        );
    };
    let Some((order, refunds)) = found else {
        return Outcome::fail("REFUNDNOTEXIST", "退款订单查询失败");
    };
    let mut f = Fields::new();
    put(&mut f, "transaction_id", order.transaction_id.clone());
    put(&mut f, "out_trade_no", order.out_trade_no.clone());
    put(&mut f, "total_fee", order.amount.0.to_string());
    put(&mut f, "cash_fee", order.customer_paid().0.to_string());
    let shown: Vec<_> = refunds.iter().take(10).collect();
    let total: u64 = shown.iter().map(|r| r.amount.0).sum();
    put(&mut f, "refund_fee", total.to_string());
    put(&mut f, "refund_count", shown.len().to_string());
    for (n, r) in shown.iter().enumerate() {
        put(&mut f, &format!("out_refund_no_{n}"), r.refund_no.clone());
        put(&mut f, &format!("refund_id_{n}"), r.refund_id.clone());
        put(&mut f, &format!("refund_channel_{n}"), "ORIGINAL");
        put(&mut f, &format!("refund_fee_{n}"), r.amount.0.to_string());
        put(
            &mut f,
            &format!("settlement_refund_fee_{n}"),
            r.amount.0.to_string(),
        );
        let landed = r.landed();
        let status = match (landed, r.ends) {
            (false, _) => "PROCESSING",
            (true, RefundEnd::Returned) => "SUCCESS",
            (true, RefundEnd::Closed) => "REFUNDCLOSE",
            (true, RefundEnd::Change) => "CHANGE",
        };
        put(&mut f, &format!("refund_status_{n}"), status);
        put(
            &mut f,
            &format!("refund_account_{n}"),
            "REFUND_SOURCE_UNSETTLED_FUNDS",
        );
        put(&mut f, &format!("refund_recv_accout_{n}"), "支付用户的零钱");
        if r.returned() {
            put(
                &mut f,
                &format!("refund_success_time_{n}"),
                beijing(r.at).format("%Y-%m-%d %H:%M:%S").to_string(),
            );
        }
    }
    Outcome::Success(f)
}

/// The bill's errors are XML with `error_code` and are not signed; its
/// success is the CSV text itself (gateway-facts.md §W9).
fn bill_error(msg: &str, code: &str) -> Outcome {
    let mut f = Fields::new();
    f.insert("return_code".into(), "FAIL".into());
    f.insert("return_msg".into(), msg.into());
    f.insert("error_code".into(), code.into());
    Outcome::Raw(SimResponse::ok(
        "text/xml; charset=utf-8",
        super::wire::to_xml(&f),
    ))
}

/// Day `date`'s bill is made in the night and served from 09:00 Beijing
/// time the next day (gateway-facts.md §W9); `same_day` serves it at once.
pub(super) fn bill_ready(date: chrono::NaiveDate, same_day: bool, now: DateTime<Local>) -> bool {
    if same_day {
        return date <= now.date_naive();
    }
    let Some(from) = date.succ_opt().and_then(|d| d.and_hms_opt(9, 0, 0)) else {
        return false;
    };
    beijing(now).naive_local() >= from
}

fn download_bill(sim: &WechatSim, req: &Fields) -> Outcome {
    let Some(date) = field(req, "bill_date")
        .filter(|d| d.len() == 8)
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y%m%d").ok())
    else {
        return bill_error("invalid bill_date", "20001");
    };
    if field(req, "bill_type").is_some_and(|t| t != "ALL") {
        // The simulator keeps only the ALL layout.
        return bill_error("invalid bill_type", "20001");
    }
    if field(req, "tar_type").is_some() {
        return bill_error("invalid tar_type", "20001");
    }
    if !bill_ready(date, sim.same_day_bills, Local::now()) {
        return bill_error("Bill Creating", "20003");
    }
    if !super::bill::has_rows(&sim.ledger.orders(), date) {
        return bill_error("No Bill Exist", "20002");
    }
    Outcome::Raw(SimResponse::ok(
        "text/plain; charset=utf-8",
        sim.bill_csv(date),
    ))
}

#[cfg(test)]
mod bill_day_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_days_bill_is_served_from_nine_the_next_morning_beijing_time() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).expect("date");
        let at = |y, m, d, h| {
            let east8 = FixedOffset::east_opt(8 * 3600).expect("UTC+8");
            east8
                .with_ymd_and_hms(y, m, d, h, 0, 0)
                .single()
                .expect("time")
                .with_timezone(&Local)
        };
        assert!(
            !bill_ready(day, false, at(2026, 11, 30, 23)),
            "the same day"
        );
        assert!(!bill_ready(day, false, at(2026, 12, 1, 8)), "before nine");
        assert!(bill_ready(day, false, at(2026, 12, 1, 9)));
        assert!(bill_ready(day, false, at(2026, 12, 5, 12)));
        assert!(bill_ready(day, true, at(2026, 11, 30, 23)), "training");
    }
}
