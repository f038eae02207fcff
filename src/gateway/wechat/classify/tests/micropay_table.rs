//! Every micropay err_code, taken as the official table says.

use super::*;

/// The official micropay error table (pay.weixin.qq.com micropay.php
/// chapter 9_10; gateway-facts.md §W4) as the document gives it: 错误码,
/// 支付状态, 原因, 解决方案. The expected answers are derived from these
/// columns below, not written down a second time.
const OFFICIAL_TABLE: &[(&str, &str, &str, &str)] = &[
    (
        "SYSTEMERROR",
        "支付结果未知",
        "系统超时",
        "请立即调用被扫订单结果查询API，查询当前订单状态，并根据订单的状态决定下一步的操作",
    ),
    (
        "BANKERROR",
        "支付结果未知",
        "银行端超时",
        "请立即调用被扫订单结果查询API，查询当前订单的不同状态，决定下一步的操作",
    ),
    (
        "USERPAYING",
        "支付结果未知",
        "该笔交易因为业务规则要求，需要用户输入支付密码",
        "等待5秒，然后调用被扫订单结果查询API，查询当前订单的不同状态，决定下一步的操作",
    ),
    (
        "PARAM_ERROR",
        "支付确认失败",
        "请求参数未按指引进行填写",
        "请根据接口返回的详细信息检查您的程序",
    ),
    (
        "ORDERPAID",
        "支付确认失败",
        "订单号重复",
        "请确认该订单号是否重复支付，如果是新单，请使用新订单号提交",
    ),
    (
        "NOAUTH",
        "支付确认失败",
        "商户没有开通被扫支付权限",
        "请开通商户号权限",
    ),
    (
        "AUTHCODEEXPIRE",
        "支付确认失败",
        "用户的条码已经过期",
        "请收银员提示用户，请用户在微信上刷新条码，然后请收银员重新扫码",
    ),
    (
        "NOTENOUGH",
        "支付确认失败",
        "用户的零钱余额不足",
        "请收银员提示用户更换当前支付的卡，然后请收银员重新扫码",
    ),
    (
        "NOTSUPORTCARD",
        "支付确认失败",
        "用户使用卡种不支持当前支付形式",
        "请用户重新选择卡种",
    ),
    (
        "ORDERCLOSED",
        "支付确认失败",
        "该订单已关",
        "商户订单号异常，请重新下单支付",
    ),
    (
        "ORDERREVERSED",
        "支付确认失败",
        "当前订单已经被撤销",
        "当前订单状态为“订单已撤销”，请提示用户重新支付",
    ),
    (
        "AUTH_CODE_ERROR",
        "支付确认失败",
        "请求参数未按指引进行填写",
        "每个二维码仅限使用一次，请刷新再试",
    ),
    (
        "AUTH_CODE_INVALID",
        "支付确认失败",
        "收银员扫描的不是微信支付的条码",
        "请扫描微信支付被扫条码/二维码",
    ),
    (
        "XML_FORMAT_ERROR",
        "支付确认失败",
        "XML格式错误",
        "请检查XML参数格式是否正确",
    ),
    (
        "REQUIRE_POST_METHOD",
        "支付确认失败",
        "未使用post传递参数",
        "请检查请求参数是否通过post方法提交",
    ),
    (
        "SIGNERROR",
        "支付确认失败",
        "参数签名结果不正确",
        "请检查签名参数和方法是否都符合签名算法要求",
    ),
    (
        "LACK_PARAMS",
        "支付确认失败",
        "缺少必要的请求参数",
        "请检查参数是否齐全",
    ),
    (
        "NOT_UTF8",
        "支付确认失败",
        "未使用指定编码格式",
        "请使用UTF-8编码格式",
    ),
    (
        "BUYER_MISMATCH",
        "支付确认失败",
        "暂不支持同一笔订单更换支付方",
        "请确认支付方是否相同",
    ),
    (
        "APPID_NOT_EXIST",
        "支付确认失败",
        "参数中缺少APPID",
        "请检查APPID是否正确",
    ),
    (
        "MCHID_NOT_EXIST",
        "支付确认失败",
        "参数中缺少MCHID",
        "请检查MCHID是否正确",
    ),
    (
        "APPID_MCHID_NOT_MATCH",
        "支付确认失败",
        "appid和mch_id不匹配",
        "请确认appid和mch_id是否匹配",
    ),
    (
        "OUT_TRADE_NO_USED",
        "支付确认失败",
        "同一笔交易不能多次提交",
        "请核实商户订单号是否重复提交",
    ),
    (
        "INVALID_REQUEST",
        "支付确认失败",
        "商户系统异常导致，商户权限异常、重复请求支付、证书错误、频率限制等",
        "请确认商户系统是否正常，是否具有相应支付权限，确认证书是否正确，控制频率",
    ),
    (
        "TRADE_ERROR",
        "支付确认失败",
        "业务错误导致交易失败、用户账号异常、风控、规则限制等",
        "请确认帐号是否存在异常",
    ),
];

/// What tillpay must do with a row of the official table, read off its
/// columns: "支付结果未知" is unknown (the password screen when the reason
/// is the password); a failure whose reason is that this order number was
/// already submitted names an earlier trade, so only a query can tell
/// (payment-rules.md §5); a failure whose remedy speaks to the customer or
/// the cashier (refresh, rescan, another card, pay again) is a decline; any
/// other documented failure is for the merchant to fix: a configuration
/// error.
fn expected_class(status: &str, reason: &str, remedy: &str) -> PayClass {
    if status == "支付结果未知" {
        return if reason.contains("输入支付密码") {
            PayClass::UserPaying
        } else {
            PayClass::Unknown
        };
    }
    if reason.contains("订单号重复") || reason.contains("不能多次提交") {
        return PayClass::Unknown;
    }
    let for_the_customer = [
        "用户",
        "收银员",
        "刷新",
        "扫描",
        "支付方",
        "重新下单",
        "帐号",
    ];
    if for_the_customer.iter().any(|k| remedy.contains(k)) {
        PayClass::Declined
    } else {
        PayClass::ConfigError
    }
}

#[test]
fn every_micropay_err_code_is_taken_as_the_official_table_says() {
    for (code, status, reason, remedy) in OFFICIAL_TABLE {
        let class = expected_class(status, reason, remedy);
        assert_eq!(
            pay_err_class(code),
            class,
            "{code}: {status} / {reason} / {remedy}"
        );
        let answer = pay(&pay_fail(code));
        let note = GatewayNote::new(*code, "描述");
        // The reason says the order number was submitted before: it names
        // an earlier trade.
        let number_used = reason.contains("订单号重复") || reason.contains("不能多次提交");
        let expected = match class {
            PayClass::Unknown if number_used => PayAnswer::OrderNumberUsed(note),
            PayClass::UserPaying => PayAnswer::Unknown {
                note,
                user_paying: true,
            },
            PayClass::Unknown => PayAnswer::Unknown {
                note,
                user_paying: false,
            },
            PayClass::Declined => PayAnswer::Failed {
                note,
                config_error: false,
            },
            PayClass::ConfigError => PayAnswer::Failed {
                note,
                config_error: true,
            },
        };
        assert_eq!(answer, expected, "{code}");
    }
    // A code the table does not list: nobody may call it a failure
    // without a query (payment-rules.md §6).
    assert_eq!(pay_err_class("SOMETHING_NEW"), PayClass::Unknown);
}
