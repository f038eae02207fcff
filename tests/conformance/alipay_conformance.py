#!/usr/bin/env python3
"""Drives the tillpay simulator's Alipay dialect with python-alipay-sdk, a
third-party client, and lets that client's own signing and response
verification judge it: if the simulator's wire format, signing or raw
``*_response`` layout differed from real Alipay, the SDK would refuse.

Run by tests/alipay_conformance.rs, which starts the simulator and passes
the gateway URL, keys and payment codes (one per customer behaviour).
Exits 0 when every check passed, 1 otherwise.
"""
import argparse
import io
import sys
import traceback
import urllib.request
import zipfile

from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError

results = {"passed": 0, "failed": 0}


def check(name, fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - report every failure and go on
        results["failed"] += 1
        print(f"FAIL {name}")
        traceback.print_exc(file=sys.stdout)
    else:
        results["passed"] += 1
        print(f"ok   {name}")


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def client(args, alipay_public_key_file):
    with open(args.app_key) as f:
        app_key = f.read()
    with open(alipay_public_key_file) as f:
        alipay_key = f.read()
    c = AliPay(
        appid=args.app_id,
        app_notify_url=None,
        app_private_key_string=app_key,
        alipay_public_key_string=alipay_key,
        sign_type="RSA2",
    )
    # The SDK has no setting for the gateway URL (only debug=True for the
    # sandbox); it sends GET <_gateway>?<signed query>.
    c._gateway = args.gateway
    return c


def main():
    p = argparse.ArgumentParser()
    for name in ("gateway", "app-id", "app-key", "alipay-key", "app-public-key",
                 "code-paid", "code-paying", "code-poor", "code-refund", "bill-date"):
        p.add_argument("--" + name, required=True)
    args = p.parse_args()
    ali = client(args, args.alipay_key)

    def pay(otn, code, amount="12.34"):
        return ali.api_alipay_trade_pay(
            out_trade_no=otn, scene="bar_code", auth_code=code,
            subject="一致性测试 conformance", total_amount=amount,
            product_code="FACE_TO_FACE_PAYMENT", terminal_id="CONF-T1")

    def paid_at_once():
        r = pay("CONF_PAY_1", args.code_paid)
        expect(r["code"] == "10000", r)
        expect(r["total_amount"] == "12.34" and r["trade_no"], r)
        q = ali.api_alipay_trade_query(out_trade_no="CONF_PAY_1")
        expect(q["code"] == "10000" and q["trade_status"] == "TRADE_SUCCESS", q)
        expect(q["trade_no"] == r["trade_no"], q)

    def waits_for_the_customer_then_cancel_closes():
        r = pay("CONF_PAY_2", args.code_paying)
        expect(r["code"] == "10003", r)
        q = ali.api_alipay_trade_query(out_trade_no="CONF_PAY_2")
        expect(q["trade_status"] == "WAIT_BUYER_PAY", q)
        c = ali.api_alipay_trade_cancel(out_trade_no="CONF_PAY_2")
        expect(c["code"] == "10000" and c["action"] == "close" and c["retry_flag"] == "N", c)
        q = ali.api_alipay_trade_query(out_trade_no="CONF_PAY_2")
        expect(q["trade_status"] == "TRADE_CLOSED", q)

    def insufficient_funds_is_a_signed_business_failure():
        r = pay("CONF_PAY_3", args.code_poor)
        expect(r["code"] == "40004", r)
        expect(r["sub_code"] == "ACQ.BUYER_BALANCE_NOT_ENOUGH", r)

    def cancel_of_a_paid_trade_refunds():
        c = ali.api_alipay_trade_cancel(out_trade_no="CONF_PAY_1")
        expect(c["code"] == "10000" and c["action"] == "refund", c)
        q = ali.api_alipay_trade_query(out_trade_no="CONF_PAY_1")
        expect(q["trade_status"] == "TRADE_CLOSED", q)

    def refund_and_refund_query():
        r = pay("CONF_PAY_4", args.code_refund, "5.00")
        expect(r["code"] == "10000", r)
        f = ali.api_alipay_trade_refund(
            refund_amount="1.00", out_trade_no="CONF_PAY_4", out_request_no="CONF_RF_1")
        expect(f["code"] == "10000" and f["fund_change"] == "Y", f)
        rq = ali.api_alipay_trade_fastpay_refund_query("CONF_RF_1", out_trade_no="CONF_PAY_4")
        expect(rq["code"] == "10000" and rq["refund_amount"] == "1.00", rq)
        expect(rq.get("refund_status") == "REFUND_SUCCESS", rq)

    def bill_url_serves_a_gbk_zip():
        r = ali.server_api(
            "alipay.data.dataservice.bill.downloadurl.query",
            {"bill_type": "trade", "bill_date": args.bill_date})
        expect(r["code"] == "10000", r)
        data = urllib.request.urlopen(r["bill_download_url"], timeout=10).read()
        z = zipfile.ZipFile(io.BytesIO(data))
        # No UTF-8 flag: Python decodes the names as cp437; undo it to GBK.
        names = {i.filename.encode("cp437").decode("gbk"): i for i in z.infolist()}
        detail = [n for n in names if n.endswith("_业务明细.csv")]
        expect(len(detail) == 1, list(names))
        expect(any(n.endswith("_业务明细(汇总).csv") for n in names), list(names))
        text = z.read(names[detail[0]]).decode("gbk")
        expect(text.startswith("#支付宝业务明细查询"), text[:80])
        expect("CONF_PAY_1\t,交易\t," in text, text)
        expect("CONF_PAY_4\t,退款\t," in text and "CONF_RF_1\t," in text, text)

    def unknown_method_is_an_error_response():
        try:
            ali.server_api("alipay.trade.nonexistent", {"out_trade_no": "x"})
        except AliPayException as e:
            expect("isv.invalid-method" in str(e), e)
        else:
            raise AssertionError("no error for an unknown method")

    def the_sdk_rejects_an_answer_it_cannot_verify():
        # Same simulator, but the client trusts another public key: the
        # SDK's own verification must fail, so the checks above were real.
        wrong = client(args, args.app_public_key)
        try:
            wrong.api_alipay_trade_query(out_trade_no="CONF_PAY_4")
        except AliPayValidationError:
            return
        raise AssertionError("a wrongly signed answer was accepted")

    for fn in (paid_at_once, waits_for_the_customer_then_cancel_closes,
               insufficient_funds_is_a_signed_business_failure,
               cancel_of_a_paid_trade_refunds, refund_and_refund_query,
               bill_url_serves_a_gbk_zip, unknown_method_is_an_error_response,
               the_sdk_rejects_an_answer_it_cannot_verify):
        check(fn.__name__, fn)
    print(f"alipay conformance checks: {results['passed']} ok, {results['failed']} failing")
    return 0 if results["failed"] == 0 and results["passed"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
