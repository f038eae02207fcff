//! The acquirer's services: each checks its fields, asks the ledger, and
//! says what happened as an [`Outcome`]. Error codes are the wallets'
//! (WeChat's spelling), passed through as acquirers do.

use chrono::{DateTime, FixedOffset, Local};

use super::{AcquirerSim, Outcome};
use crate::domain::{Fen, Provider};
use crate::sim::behaviour::{is_alipay_code, is_unionpay_code, is_wechat_code, Behaviour};
use crate::sim::ledger::{
    Order, OrderState, PayOutcome, RefundEnd, RefundOutcome, Refusal, RevokeOutcome,
};
use crate::sim::wechat::wire::Fields;

/// A WeChat payment is reversed within 7 days; the simulator holds every
/// wallet's to that.
const REVERSE_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// Time units from an accepted refund to the money landing.
const REFUND_LANDS_AFTER: u32 = 5;

pub(super) fn run(sim: &AcquirerSim, req: &Fields) -> Outcome {
    match field(req, "service").unwrap_or("") {
        "unified.trade.micropay" => micropay(sim, req),
        "unified.trade.query" => query(sim, req),
        "unified.micropay.reverse" => reverse(sim, req),
        "unified.trade.refund" => refund(sim, req),
        "unified.trade.refundquery" => refund_query(sim, req),
        "pay.bill.merchant" => super::bill::download(sim, req),
        _ => Outcome::Refused("不支持的接口类型"),
    }
}

fn field<'a>(req: &'a Fields, k: &str) -> Option<&'a str> {
    req.get(k).map(String::as_str).filter(|v| !v.is_empty())
}

fn put(f: &mut Fields, k: &str, v: impl Into<String>) {
    let v = v.into();
    if !v.is_empty() {
        f.insert(k.to_string(), v);
    }
}

fn beijing(t: DateTime<Local>) -> String {
    let east8 = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| *t.offset());
    t.with_timezone(&east8).format("%Y%m%d%H%M%S").to_string()
}

fn fee(v: Option<&str>) -> Option<Fen> {
    let v = v?;
    (v.len() <= 12 && v.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.parse().ok())
        .flatten()
        .filter(|n| *n > 0)
        .map(Fen)
}

/// The wallet of a code, and the `trade_type` the acquirer names it by.
fn wallet(code: &str) -> Option<(Provider, &'static str)> {
    if is_wechat_code(code) {
        Some((Provider::Wechat, "pay.weixin.micropay"))
    } else if is_alipay_code(code) {
        Some((Provider::Alipay, "pay.alipay.micropay"))
    } else if is_unionpay_code(code) {
        Some((Provider::Unionpay, "pay.unionpay.micropay"))
    } else {
        None
    }
}

pub(super) fn trade_type(p: Provider) -> &'static str {
    match p {
        Provider::Wechat => "pay.weixin.micropay",
        Provider::Alipay => "pay.alipay.micropay",
        Provider::Unionpay => "pay.unionpay.micropay",
    }
}

fn order(sim: &AcquirerSim, req: &Fields) -> Option<Order> {
    let no = field(req, "out_trade_no")?;
    sim.mine(no).then(|| sim.ledger.order(no)).flatten()
}

fn paid_fields(o: &Order) -> Fields {
    let mut f = Fields::new();
    put(&mut f, "trade_type", trade_type(o.provider));
    put(&mut f, "pay_result", "0");
    put(&mut f, "transaction_id", o.transaction_id.clone());
    put(
        &mut f,
        "out_transaction_id",
        format!("X{}", o.transaction_id),
    );
    put(&mut f, "out_trade_no", o.out_trade_no.clone());
    put(&mut f, "total_fee", o.amount.0.to_string());
    put(&mut f, "fee_type", "CNY");
    if o.coupon().0 > 0 {
        put(&mut f, "coupon_fee", o.coupon().0.to_string());
    }
    put(&mut f, "device_info", o.device.clone());
    if let Some(t) = o.paid_at {
        put(&mut f, "time_end", beijing(t));
    }
    f
}

// Long because micropay checks its fields and words every customer behaviour; each is a line or two.
fn micropay(sim: &AcquirerSim, req: &Fields) -> Outcome {
    for k in [
        "out_trade_no",
        "body",
        "total_fee",
        "mch_create_ip",
        "auth_code",
    ] {
        if field(req, k).is_none() {
            return Outcome::fail("PARAM_ERROR", "缺少必填参数", "N");
        }
    }
    let no = field(req, "out_trade_no").unwrap_or_default();
    let body = field(req, "body").unwrap_or_default();
    if !(5..=32).contains(&no.len()) || !no.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        // "5到32个字符、只能包含字母数字或者下划线".
        return Outcome::fail("PARAM_ERROR", "out_trade_no格式错误", "N");
    }
    if body.len() > 127 {
        return Outcome::fail("PARAM_ERROR", "body长度超限", "N");
    }
    let Some(total) = fee(field(req, "total_fee")) else {
        return Outcome::fail("PARAM_ERROR", "total_fee参数错误", "N");
    };
    let code = field(req, "auth_code").unwrap_or_default();
    let Some((provider, _)) = wallet(code) else {
        return Outcome::fail("AUTH_CODE_INVALID", "无效的付款码", "N");
    };
    let device = field(req, "device_info").unwrap_or_default();
    sim.remember(no);
    let paid = |o: &Order| Outcome::Success(paid_fields(o));
    let outcome = sim.ledger.pay(provider, no, total, code, device, body);
    if let Some(op) = field(req, "op_user_id") {
        sim.ledger.note_operator(no, op);
    }
    match outcome {
        PayOutcome::Paid(o) => paid(&o),
        PayOutcome::UserPaying(_) => Outcome::fail("USERPAYING", "需要用户输入支付密码", "Y"),
        PayOutcome::InsufficientFunds => Outcome::fail("NOTENOUGH", "余额不足", "N"),
        PayOutcome::CodeExpired => Outcome::fail("AUTHCODEEXPIRE", "付款码已过期", "N"),
        PayOutcome::CodeUsed => Outcome::fail("AUTH_CODE_ERROR", "付款码已使用", "N"),
        PayOutcome::SystemError(_) => Outcome::fail("SYSTEMERROR", "系统超时", "Y"),
        PayOutcome::BankError(_) => Outcome::fail("BANKERROR", "银行系统异常", "Y"),
        PayOutcome::AnswerLost(_) => Outcome::Hangup,
        PayOutcome::Late(o, after) => Outcome::Late(Box::new(paid(&o)), after),
        PayOutcome::BadGateway(_) => Outcome::Raw(crate::sim::http::bad_gateway_page()),
        PayOutcome::SystemBusy(_) => Outcome::Refused("系统繁忙,请稍后再试"),
        PayOutcome::Existing { order, mismatch } => match order.state {
            OrderState::Paid => Outcome::fail("ORDERPAID", "订单已支付", "N"),
            OrderState::Revoked(_) => Outcome::fail("ORDERREVERSED", "订单已撤销", "N"),
            OrderState::Failed => Outcome::fail("ORDERCLOSED", "订单已关闭", "N"),
            OrderState::Open if mismatch => {
                Outcome::fail("OUT_TRADE_NO_USED", "商户订单号重复", "N")
            }
            OrderState::Open => Outcome::fail("USERPAYING", "需要用户输入支付密码", "Y"),
        },
    }
}

fn query(sim: &AcquirerSim, req: &Fields) -> Outcome {
    let Some(o) = order(sim, req) else {
        return Outcome::fail("ORDERNOTEXIST", "订单不存在", "N");
    };
    let (state, desc) = match o.state {
        OrderState::Paid if !o.refunds.is_empty() => ("REFUND", "转入退款"),
        OrderState::Paid => ("SUCCESS", "支付成功"),
        OrderState::Open if o.behaviour == Behaviour::SystemErrorUnpaid => ("NOTPAY", "未支付"),
        OrderState::Open => ("USERPAYING", "用户支付中"),
        OrderState::Failed => ("PAYERROR", "支付失败"),
        // UnionPay's reversal is a 冲正: the simulator says REVERSE for
        // it, REVOKED for the others, as the two spellings in the wild.
        OrderState::Revoked(_) if o.provider == Provider::Unionpay => ("REVERSE", "已冲正"),
        OrderState::Revoked(_) => ("REVOKED", "已撤销"),
    };
    let mut f = if o.charges > 0 {
        paid_fields(&o)
    } else {
        let mut f = Fields::new();
        put(&mut f, "out_trade_no", o.out_trade_no.clone());
        put(&mut f, "trade_type", trade_type(o.provider));
        f
    };
    f.remove("pay_result");
    put(&mut f, "trade_state", state);
    put(&mut f, "trade_state_desc", desc);
    Outcome::Success(f)
}

fn reverse(sim: &AcquirerSim, req: &Fields) -> Outcome {
    let Some(no) = field(req, "out_trade_no") else {
        return Outcome::fail("PARAM_ERROR", "缺少out_trade_no", "N");
    };
    let known = order(sim, req);
    if known
        .as_ref()
        .is_some_and(|o| o.provider == Provider::Wechat && o.age() < sim.min_reverse_delay())
    {
        sim.ledger.note_early_reverse();
        return Outcome::fail("SYSTEMERROR", "请在支付15秒后再撤销订单", "N");
    }
    // An order never seen is closed for good under its number, so that a
    // late micropay cannot take money for it (as the WeChat dialect does).
    let provider = known.map_or(Provider::Wechat, |o| o.provider);
    sim.remember(no);
    match sim.ledger.revoke(provider, no, Some(REVERSE_WINDOW)) {
        RevokeOutcome::Retry => Outcome::fail("SYSTEMERROR", "系统错误，请重试", "N"),
        RevokeOutcome::UserPaying => Outcome::fail("USERPAYING", "用户支付中，不能撤销", "N"),
        RevokeOutcome::Refused(Refusal::TooLate) => {
            Outcome::fail("REVERSE_EXPIRE", "订单已超过撤销期限", "N")
        }
        RevokeOutcome::Refused(Refusal::Refunded) => {
            Outcome::fail("TRADE_ERROR", "订单已退款，不能撤销", "N")
        }
        RevokeOutcome::Done(_) => Outcome::Success(Fields::new()),
    }
}

fn refund(sim: &AcquirerSim, req: &Fields) -> Outcome {
    let (Some(refund_no), Some(total), Some(amount)) = (
        field(req, "out_refund_no"),
        fee(field(req, "total_fee")),
        fee(field(req, "refund_fee")),
    ) else {
        return Outcome::fail("PARAM_ERROR", "退款参数错误", "N");
    };
    if field(req, "op_user_id").is_none() {
        return Outcome::fail("PARAM_ERROR", "缺少op_user_id", "N");
    }
    let Some(o) = order(sim, req) else {
        return Outcome::fail("ORDERNOTEXIST", "订单不存在", "N");
    };
    if o.amount != total {
        return Outcome::fail("PARAM_ERROR", "订单金额不一致", "N");
    }
    let first_call = sim.ledger.refund_of(&o.out_trade_no, refund_no).is_none();
    match sim
        .ledger
        .refund_landing(&o.out_trade_no, refund_no, amount, REFUND_LANDS_AFTER)
    {
        RefundOutcome::Refunded(_) if first_call && o.behaviour == Behaviour::RefundSystemError => {
            Outcome::fail("SYSTEMERROR", "系统超时，请用原退款单号重试", "N")
        }
        RefundOutcome::Refunded(r) => {
            let mut f = Fields::new();
            put(&mut f, "out_trade_no", o.out_trade_no.clone());
            put(&mut f, "transaction_id", o.transaction_id.clone());
            put(&mut f, "out_refund_no", r.refund_no.clone());
            put(&mut f, "refund_id", r.refund_id.clone());
            put(&mut f, "refund_fee", r.amount.0.to_string());
            put(&mut f, "refund_channel", "ORIGINAL");
            Outcome::Success(f)
        }
        RefundOutcome::NotFound => Outcome::fail("ORDERNOTEXIST", "订单不存在", "N"),
        RefundOutcome::NotPaid => Outcome::fail("ERROR", "订单状态错误，不能退款", "N"),
        RefundOutcome::Rejected(why) if why.contains("reused") => {
            Outcome::fail("REFUND_FEE_MISMATCH", "退款金额与原退款单不一致", "N")
        }
        RefundOutcome::Rejected(_) => Outcome::fail("ERROR", "退款金额超过可退金额", "N"),
    }
}

fn refund_query(sim: &AcquirerSim, req: &Fields) -> Outcome {
    let Some(refund_no) = field(req, "out_refund_no") else {
        return Outcome::fail("PARAM_ERROR", "缺少out_refund_no", "N");
    };
    let found = sim.ledger.orders().into_iter().find_map(|o| {
        let r = o
            .refunds
            .iter()
            .find(|r| !r.by_revoke && r.refund_no == refund_no)?
            .clone();
        sim.mine(&o.out_trade_no).then_some((o, r))
    });
    let Some((o, r)) = found else {
        return Outcome::fail("REFUNDNOTEXIST", "退款单不存在", "N");
    };
    let status = match (r.landed(), r.ends) {
        (false, _) => "PROCESSING",
        (true, RefundEnd::Returned) => "SUCCESS",
        (true, RefundEnd::Closed) => "FAIL",
        (true, RefundEnd::Change) => "CHANGE",
    };
    let mut f = Fields::new();
    put(&mut f, "out_trade_no", o.out_trade_no.clone());
    put(&mut f, "transaction_id", o.transaction_id.clone());
    put(&mut f, "trade_type", trade_type(o.provider));
    put(&mut f, "refund_count", "1");
    put(&mut f, "out_refund_no_0", r.refund_no.clone());
    put(&mut f, "refund_id_0", r.refund_id.clone());
    put(&mut f, "refund_channel_0", "ORIGINAL");
    put(&mut f, "refund_fee_0", r.amount.0.to_string());
    put(&mut f, "refund_status_0", status);
    if r.returned() {
        put(&mut f, "refund_time_0", beijing(r.at));
    }
    Outcome::Success(f)
}
