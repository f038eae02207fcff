//! The v3 endpoints: each checks its request as WeChat's v3 pages say,
//! asks the ledger, and says what happened as an [`Out`].
//!
//! Over 400 lines: one handler per v3 endpoint, each short, in the order of the documents.

use chrono::{DateTime, Local};
use serde_json::{json, Value};

use super::{error, Out, WechatV3Sim};
use crate::domain::Provider;
use crate::sim::behaviour::{is_wechat_code, Behaviour};
use crate::sim::http::{SimRequest, SimResponse};
use crate::sim::ledger::{
    Order, OrderState, PayOutcome, RefundEnd, RefundOutcome, Refusal, RevokeOutcome, SimRefund,
};
use crate::sim::wechat::endpoints::{
    beijing, bill_ready, refund_rule_breach, RefundRule, REFUND_LANDS_AFTER, REVERSE_WINDOW,
};
use crate::sim::wechat::openid;

/// Direct merchant or service provider: the path says, and the ids the
/// answers echo follow.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Partner,
}

pub(super) fn run(sim: &WechatV3Sim, req: &SimRequest) -> Out {
    let path = req.path.as_str();
    let (mode, rest) = if let Some(r) = path.strip_prefix("/v3/pay/partner/transactions/") {
        (Mode::Partner, Some(r))
    } else if let Some(r) = path.strip_prefix("/v3/pay/transactions/") {
        (Mode::Direct, Some(r))
    } else {
        (Mode::Direct, None)
    };
    let query = query_pairs(req.query.as_deref());
    match (req.method.as_str(), rest) {
        ("POST", Some("codepay")) => with_body(req, |b| codepay(sim, mode, &b)),
        (method, Some(r)) if r.starts_with("out-trade-no/") => {
            let r = &r["out-trade-no/".len()..];
            match (method, r.strip_suffix("/reverse")) {
                ("POST", Some(no)) => with_body(req, |b| reverse(sim, mode, no, &b)),
                ("GET", None) => order_query(sim, mode, r, &query),
                _ => error(405, "INVALID_REQUEST", "不支持的请求方法"),
            }
        }
        _ => match (req.method.as_str(), path) {
            ("POST", "/v3/refund/domestic/refunds") => with_body(req, |b| refund(sim, &b)),
            ("GET", p) if p.starts_with("/v3/refund/domestic/refunds/") => {
                refund_query(sim, &p["/v3/refund/domestic/refunds/".len()..], &query)
            }
            ("GET", "/v3/bill/tradebill") => trade_bill(sim, req, &query),
            ("GET", "/v3/billdownload/file") => bill_download(sim, &query),
            _ => error(404, "RESOURCE_NOT_EXISTS", "无效的请求地址"),
        },
    }
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

fn with_body(req: &SimRequest, f: impl FnOnce(Value) -> Out) -> Out {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(v) if v.is_object() => f(v),
        _ => error(400, "PARAM_ERROR", "请求体不是合法的JSON对象"),
    }
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The merchant ids a request must carry for `mode`, echoed in answers.
fn ids(sim: &WechatV3Sim, mode: Mode, body: &Value) -> Result<Value, Out> {
    match mode {
        Mode::Direct => {
            if text(body, "mchid") != sim.mchid {
                return Err(error(400, "MCH_NOT_EXISTS", "商户号不存在"));
            }
            if text(body, "appid") != sim.appid {
                return Err(error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配"));
            }
            Ok(json!({"appid": sim.appid, "mchid": sim.mchid}))
        }
        Mode::Partner => {
            if text(body, "sp_mchid") != sim.mchid || text(body, "sub_mchid").is_empty() {
                return Err(error(400, "MCH_NOT_EXISTS", "服务商或子商户号不存在"));
            }
            if text(body, "sp_appid") != sim.appid {
                return Err(error(
                    400,
                    "APPID_MCHID_NOT_MATCH",
                    "sp_appid和sp_mchid不匹配",
                ));
            }
            let mut v = json!({"sp_appid": sim.appid, "sp_mchid": sim.mchid, "sub_mchid": text(body, "sub_mchid")});
            if !text(body, "sub_appid").is_empty() {
                v["sub_appid"] = json!(text(body, "sub_appid"));
            }
            Ok(v)
        }
    }
}

fn rfc3339(t: DateTime<Local>) -> String {
    beijing(t).to_rfc3339()
}

/// The order as code pay and the query show it.
fn order_json(mut v: Value, o: &Order, state: &str, desc: &str) -> Value {
    v["out_trade_no"] = json!(o.out_trade_no);
    v["trade_state"] = json!(state);
    v["trade_state_desc"] = json!(desc);
    v["scene_info"] = json!({"device_id": o.device});
    if o.charges > 0 {
        v["transaction_id"] = json!(o.transaction_id);
        v["trade_type"] = json!("MICROPAY");
        v["bank_type"] = json!("OTHERS");
        v["payer"] = json!({"openid": openid(o)});
        v["amount"] = json!({"total": o.amount.0, "payer_total": o.customer_paid().0, "currency": "CNY", "payer_currency": "CNY"});
        if o.coupon().0 > 0 {
            v["promotion_detail"] = json!([{"coupon_id": "2000000000000000001", "scope": "SINGLE",
                "type": "CASH", "amount": o.coupon().0, "currency": "CNY"}]);
        }
        if let Some(t) = o.paid_at {
            v["success_time"] = json!(rfc3339(t));
        }
    } else {
        v["amount"] = json!({"total": o.amount.0, "currency": "CNY"});
    }
    v
}

fn out_trade_no_ok(no: &str) -> bool {
    (6..=32).contains(&no.len())
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
}

// Long because code pay checks many fields; each check is a line or two.
fn codepay(sim: &WechatV3Sim, mode: Mode, body: &Value) -> Out {
    let ids = match ids(sim, mode, body) {
        Ok(v) => v,
        Err(o) => return o,
    };
    let description = text(body, "description");
    let out_trade_no = text(body, "out_trade_no");
    let auth_code = body
        .pointer("/payer/auth_code")
        .and_then(Value::as_str)
        .unwrap_or("");
    let total = body
        .pointer("/amount/total")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let device = body
        .pointer("/scene_info/device_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    if description.is_empty() || description.len() > 127 {
        return error(400, "PARAM_ERROR", "description长度有误");
    }
    if !out_trade_no_ok(out_trade_no) {
        return error(400, "PARAM_ERROR", "out_trade_no格式错误");
    }
    if total == 0 || total > 100_000_000_000 {
        return error(400, "PARAM_ERROR", "amount.total参数错误");
    }
    if body.pointer("/amount/currency").is_some_and(|c| c != "CNY") {
        return error(400, "PARAM_ERROR", "amount.currency参数错误");
    }
    // The code pay schema requires scene_info.store_info.
    if body
        .pointer("/scene_info/store_info")
        .is_none_or(|s| !s.is_object())
    {
        return error(400, "PARAM_ERROR", "缺少参数scene_info.store_info");
    }
    if device.len() > 32 {
        return error(400, "PARAM_ERROR", "scene_info.device_id长度有误");
    }
    if !is_wechat_code(auth_code) {
        return error(400, "AUTH_CODE_INVALID", "请扫描微信支付被扫条码/二维码");
    }
    let outcome = sim.ledger.pay(
        Provider::Wechat,
        out_trade_no,
        crate::domain::Fen(total),
        auth_code,
        device,
        description,
    );
    let paid = |o: &Order| Out::Json(200, order_json(ids.clone(), o, "SUCCESS", "支付成功"));
    // Business errors: v2's meanings in v3's form (the official v3 table
    // was not available), with v3's statuses: 4xx failed, 5xx unknown.
    match outcome {
        PayOutcome::Paid(o) => paid(&o),
        PayOutcome::UserPaying(_) => Out::Json(202, json!({"trade_state": "USERPAYING"})),
        PayOutcome::InsufficientFunds => error(403, "NOT_ENOUGH", "用户账户余额不足"),
        PayOutcome::CodeExpired => error(
            400,
            "AUTH_CODE_EXPIRE",
            "二维码已过期，请用户在微信上刷新后再试",
        ),
        PayOutcome::CodeUsed => error(400, "AUTH_CODE_ERROR", "每个二维码仅限使用一次，请刷新再试"),
        PayOutcome::SystemError(_) => error(500, "SYSTEM_ERROR", "系统繁忙，请稍后重试"),
        PayOutcome::BankError(_) => error(500, "BANK_ERROR", "银行系统异常"),
        PayOutcome::AnswerLost(_) => Out::Hangup,
        PayOutcome::Late(o, after) => Out::Late(Box::new(paid(&o)), after),
        PayOutcome::BadGateway(_) => Out::Raw(crate::sim::http::bad_gateway_page()),
        PayOutcome::SystemBusy(_) => error(429, "FREQUENCY_LIMITED", "请求频率过高，请稍后重试"),
        PayOutcome::Existing { order, mismatch } => match order.state {
            OrderState::Paid => error(400, "ORDER_PAID", "订单已支付"),
            OrderState::Revoked(_) => error(400, "ORDER_REVERSED", "订单已撤销"),
            OrderState::Failed => error(400, "ORDER_CLOSED", "订单已关闭"),
            OrderState::Open if mismatch => error(400, "OUT_TRADE_NO_USED", "商户订单号重复"),
            OrderState::Open => Out::Json(202, json!({"trade_state": "USERPAYING"})),
        },
    }
}

/// The query's merchant parameters, as ids for the answer.
fn query_ids(sim: &WechatV3Sim, mode: Mode, q: &[(String, String)]) -> Result<Value, Out> {
    let body = match mode {
        Mode::Direct => json!({"mchid": param(q, "mchid").unwrap_or(""), "appid": sim.appid}),
        Mode::Partner => json!({
            "sp_mchid": param(q, "sp_mchid").unwrap_or(""),
            "sub_mchid": param(q, "sub_mchid").unwrap_or(""),
            "sp_appid": sim.appid,
        }),
    };
    ids(sim, mode, &body)
}

fn wechat_order(sim: &WechatV3Sim, no: &str) -> Option<Order> {
    sim.ledger
        .order(no)
        .filter(|o| o.provider == Provider::Wechat)
}

fn order_query(sim: &WechatV3Sim, mode: Mode, no: &str, q: &[(String, String)]) -> Out {
    let ids = match query_ids(sim, mode, q) {
        Ok(v) => v,
        Err(o) => return o,
    };
    let Some(order) = wechat_order(sim, no) else {
        return error(404, "ORDER_NOT_EXIST", "订单不存在");
    };
    let (state, desc) = match order.state {
        OrderState::Paid if !order.refunds.is_empty() => ("REFUND", "转入退款"),
        OrderState::Paid => ("SUCCESS", "支付成功"),
        // After a system error nothing reached the customer's phone.
        OrderState::Open if order.behaviour == Behaviour::SystemErrorUnpaid => ("NOTPAY", "未支付"),
        OrderState::Open => ("USERPAYING", "用户支付中"),
        OrderState::Failed => ("PAYERROR", "支付失败，请撤销订单"),
        OrderState::Revoked(_) => ("REVOKED", "已撤销"),
    };
    Out::Json(200, order_json(ids, &order, state, desc))
}

fn reverse(sim: &WechatV3Sim, mode: Mode, no: &str, body: &Value) -> Out {
    let ids = match ids(sim, mode, body) {
        Ok(v) => v,
        Err(o) => return o,
    };
    if !out_trade_no_ok(no) {
        return error(400, "PARAM_ERROR", "out_trade_no格式错误");
    }
    // An order never seen is closed for good, so that a late code pay
    // cannot take money for it (as the v2 dialect does).
    let age = wechat_order(sim, no).map(|o| o.age());
    if age.is_some_and(|a| a < sim.min_reverse_delay()) {
        // "调用支付接口后请勿立即调用撤销订单API" (gateway-facts.md §W5).
        sim.ledger.note_early_reverse();
        return error(500, "SYSTEM_ERROR", "请在支付15秒后再撤销订单");
    }
    match sim
        .ledger
        .revoke(Provider::Wechat, no, Some(REVERSE_WINDOW))
    {
        RevokeOutcome::Retry => error(500, "SYSTEM_ERROR", "系统错误，请重试"),
        RevokeOutcome::UserPaying => error(400, "USERPAYING", "正在支付中不能发起撤销"),
        RevokeOutcome::Refused(Refusal::TooLate) => {
            error(400, "REVERSE_EXPIRE", "订单已超过撤销期限")
        }
        RevokeOutcome::Refused(Refusal::Refunded) => {
            error(400, "TRADE_ERROR", "订单已发生退款，不能撤销")
        }
        RevokeOutcome::Done(_) => {
            let mut v = ids;
            v["out_trade_no"] = json!(no);
            Out::Json(200, v)
        }
    }
}

/// A refund as the refund API and its query show it.
fn refund_json(order: &Order, r: &SimRefund, sub_mchid: Option<&str>) -> Value {
    let status = match (r.landed(), r.ends) {
        (false, _) => "PROCESSING",
        (true, RefundEnd::Returned) => "SUCCESS",
        (true, RefundEnd::Closed) => "CLOSED",
        (true, RefundEnd::Change) => "ABNORMAL",
    };
    let mut v = json!({
        "refund_id": r.refund_id,
        "out_refund_no": r.refund_no,
        "transaction_id": order.transaction_id,
        "out_trade_no": order.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": rfc3339(r.at),
        "status": status,
        "funds_account": "UNSETTLED",
        "amount": {
            "total": order.amount.0, "refund": r.amount.0,
            "payer_total": order.customer_paid().0, "payer_refund": r.amount.0,
            "settlement_total": order.amount.0, "settlement_refund": r.amount.0,
            "discount_refund": 0, "currency": "CNY",
        },
    });
    if r.returned() {
        v["success_time"] = json!(rfc3339(r.at));
    }
    if let Some(sub) = sub_mchid {
        v["sub_mchid"] = json!(sub);
    }
    v
}

// Long because the refund API checks its amounts and WeChat's refund rules in order.
fn refund(sim: &WechatV3Sim, body: &Value) -> Out {
    let refund_no = text(body, "out_refund_no");
    if refund_no.is_empty()
        || refund_no.len() > 64
        || !refund_no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*' | b'@'))
    {
        return error(400, "PARAM_ERROR", "out_refund_no格式错误");
    }
    let amount = |k: &str| {
        body.pointer(&format!("/amount/{k}"))
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
    };
    let (Some(total), Some(refund_fee)) = (amount("total"), amount("refund")) else {
        return error(400, "PARAM_ERROR", "amount.total或amount.refund参数错误");
    };
    let order = match (text(body, "transaction_id"), text(body, "out_trade_no")) {
        ("", "") => {
            return error(
                400,
                "PARAM_ERROR",
                "transaction_id和out_trade_no必须填写一个",
            )
        }
        ("", no) => wechat_order(sim, no),
        (tid, _) => sim
            .ledger
            .orders()
            .into_iter()
            .find(|o| o.provider == Provider::Wechat && o.transaction_id == tid),
    };
    let Some(order) = order else {
        return error(404, "RESOURCE_NOT_EXISTS", "订单不存在");
    };
    if order.amount.0 != total {
        return error(400, "PARAM_ERROR", "订单金额与实际订单金额不一致");
    }
    if let Some(rule) = refund_rule_breach(&sim.ledger, &order, refund_no) {
        return match rule {
            RefundRule::NumberUsedElsewhere => {
                error(400, "INVALID_REQUEST", "商户退款单号重复，已用于其他订单")
            }
            RefundRule::TooMany => error(400, "INVALID_REQUEST", "订单退款次数已达上限"),
            RefundRule::TooSoon => error(429, "FREQUENCY_LIMITED", "同一订单的退款请求需间隔1分钟"),
        };
    }
    let first_call = sim
        .ledger
        .refund_of(&order.out_trade_no, refund_no)
        .is_none();
    let sub = Some(text(body, "sub_mchid")).filter(|s| !s.is_empty());
    match sim.ledger.refund_landing(
        &order.out_trade_no,
        refund_no,
        crate::domain::Fen(refund_fee),
        REFUND_LANDS_AFTER,
    ) {
        // The refund went through, but this answer says it did not know.
        RefundOutcome::Refunded(_)
            if first_call && order.behaviour == Behaviour::RefundSystemError =>
        {
            error(500, "SYSTEM_ERROR", "系统超时，请用相同参数再次调用")
        }
        RefundOutcome::Refunded(r) => Out::Json(200, refund_json(&order, &r, sub)),
        RefundOutcome::NotFound => error(404, "RESOURCE_NOT_EXISTS", "订单不存在"),
        RefundOutcome::NotPaid => error(400, "INVALID_REQUEST", "订单状态错误，不能退款"),
        RefundOutcome::Rejected(why) if why.contains("reused") => {
            error(400, "INVALID_REQUEST", "订单金额或退款金额与之前请求不一致")
        }
        RefundOutcome::Rejected(_) => error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额"),
    }
}

fn refund_query(sim: &WechatV3Sim, refund_no: &str, q: &[(String, String)]) -> Out {
    let found = sim.ledger.orders().into_iter().find_map(|o| {
        let r = o
            .refunds
            .iter()
            .find(|r| !r.by_revoke && r.refund_no == refund_no)
            .cloned()?;
        (o.provider == Provider::Wechat).then_some((o, r))
    });
    match found {
        Some((o, r)) => Out::Json(200, refund_json(&o, &r, param(q, "sub_mchid"))),
        None => error(404, "RESOURCE_NOT_EXISTS", "退款单不存在"),
    }
}

/// The bill file's address: this simulator, a token that names the day.
fn trade_bill(sim: &WechatV3Sim, req: &SimRequest, q: &[(String, String)]) -> Out {
    let Some(date) =
        param(q, "bill_date").and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    else {
        return error(400, "INVALID_REQUEST", "账单日期格式不正确");
    };
    if param(q, "bill_type").is_some_and(|t| t != "ALL") {
        // The simulator keeps only the ALL layout.
        return error(400, "INVALID_REQUEST", "bill_type参数错误");
    }
    if !bill_ready(date, sim.same_day_bills, Local::now()) {
        return error(400, "STATEMENT_CREATING", "账单生成中");
    }
    let orders = sim.ledger.orders();
    if !crate::sim::wechat::bill::has_rows(&orders, date) {
        return error(400, "NO_STATEMENT_EXIST", "账单文件不存在");
    }
    let csv = crate::sim::wechat::bill::csv(&orders, &sim.appid, &sim.mchid, date);
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, csv.as_bytes());
    let hash: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let host = req.header("host").unwrap_or("127.0.0.1");
    Out::Json(
        200,
        json!({
            "hash_type": "SHA1",
            "hash_value": hash,
            "download_url": format!("http://{host}/v3/billdownload/file?token=T{}", date.format("%Y%m%d")),
        }),
    )
}

/// The file itself: unsigned, as WeChat serves it (the hash in the signed
/// trade bill answer stands for it).
fn bill_download(sim: &WechatV3Sim, q: &[(String, String)]) -> Out {
    let Some(date) = param(q, "token")
        .and_then(|t| t.strip_prefix('T'))
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y%m%d").ok())
    else {
        return error(400, "INVALID_REQUEST", "token无效，请重新申请账单");
    };
    let csv = crate::sim::wechat::bill::csv(&sim.ledger.orders(), &sim.appid, &sim.mchid, date);
    Out::Raw(SimResponse::ok("text/plain; charset=utf-8", csv))
}
