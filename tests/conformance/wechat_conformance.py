#!/usr/bin/env python3
"""Drive tillpay's WeChat Pay simulator with the third-party client wechatpy.

The simulator must speak real WeChat Pay v2: wechatpy builds and signs the
requests its own way (its XML, its nonce, its MD5 and HMAC-SHA256), and the
simulator's answers must verify with wechatpy's own signature functions.

Usage: wechat_conformance.py BASE_URL APPID MCH_ID API_KEY CODES_JSON
CODES_JSON names payment codes for the behaviours the simulator offers:
{"pays": [...], "user_paying": "..."}. Exits 0 when every check passed,
1 with a list of the failures otherwise.
"""

import json
import sys
import uuid

import requests
import xmltodict
from wechatpy.exceptions import WeChatPayException
from wechatpy.pay import WeChatPay
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def client_for(base_url, appid, mch_id, key):
    # No mch_cert/mch_key: wechatpy then sends /secapi/ calls without a
    # client certificate, which a plain-HTTP simulator does not ask for.
    c = WeChatPay(appid=appid, api_key=key, mch_id=mch_id, timeout=10)
    # wechatpy hard-codes https://api.mch.weixin.qq.com/ as a class
    # attribute; an instance attribute of the same name takes precedence.
    c.API_BASE_URL = base_url.rstrip("/") + "/"
    return c


def md5_verifies(client, data):
    # wechatpy's own check (MD5 only, over every returned field).
    return bool(data.get("sign")) and client.check_signature(dict(data))


def hmac_verifies(key, data):
    fields = {k: v for k, v in data.items() if k != "sign"}
    return bool(data.get("sign")) and calculate_signature_hmac(fields, key) == data["sign"]


def answer_of(exc):
    """The parsed XML answer carried by a WeChatPayException."""
    return xmltodict.parse(exc.response.text)["xml"]


def expect_error(what, fn, errcode=None, return_msg=None):
    try:
        fn()
    except WeChatPayException as e:
        if errcode is not None:
            check(e.errcode == errcode, f"{what}: err_code {e.errcode!r} == {errcode!r}")
        if return_msg is not None:
            check(e.return_msg == return_msg, f"{what}: return_msg {e.return_msg!r} == {return_msg!r}")
        return e
    check(False, f"{what}: an error answer")
    return None


def main():
    base_url, appid, mch_id, key, codes_json = sys.argv[1:6]
    codes = json.loads(codes_json)
    run = uuid.uuid4().hex[:8]
    client = client_for(base_url, appid, mch_id, key)

    # 1. micropay through wechatpy's own API, MD5 (its default).
    out_trade_no = f"CONF{run}A"
    paid = client.micropay.create(
        body="tillpay conformance",
        total_fee=1,
        auth_code=codes["pays"][0],
        client_ip="127.0.0.1",
        out_trade_no=out_trade_no,
        device_info="CONF-T1",
    )
    check(paid.get("result_code") == "SUCCESS", "micropay: result_code SUCCESS")
    check(md5_verifies(client, paid), "micropay: answer verifies with wechatpy (MD5)")
    check(paid.get("total_fee") == "1", "micropay: total_fee 1")
    check(paid.get("trade_type") == "MICROPAY", "micropay: trade_type MICROPAY")
    check(paid.get("device_info") == "CONF-T1", "micropay: device_info echoed")
    check(bool(paid.get("transaction_id")), "micropay: transaction_id present")
    check(len(paid.get("time_end") or "") == 14, "micropay: time_end yyyyMMddHHmmss")
    check(paid.get("appid") == appid and paid.get("mch_id") == mch_id, "micropay: appid/mch_id")

    # 2. orderquery.
    q = client.micropay.query(out_trade_no=out_trade_no)
    check(q.get("trade_state") == "SUCCESS", "orderquery: trade_state SUCCESS")
    check(q.get("transaction_id") == paid.get("transaction_id"), "orderquery: same transaction_id")
    check(md5_verifies(client, q), "orderquery: answer verifies with wechatpy (MD5)")
    q2 = client.order.query(transaction_id=paid.get("transaction_id"))
    check(q2.get("out_trade_no") == out_trade_no, "orderquery by transaction_id")

    # 3. reverse (wechatpy's order.reverse, /secapi/pay/reverse).
    r = client.order.reverse(out_trade_no=out_trade_no)
    check(r.get("result_code") == "SUCCESS", "reverse: result_code SUCCESS")
    check(r.get("recall") == "N", "reverse: recall N")
    check(md5_verifies(client, r), "reverse: answer verifies with wechatpy (MD5)")
    q = client.micropay.query(out_trade_no=out_trade_no)
    check(q.get("trade_state") == "REVOKED", "orderquery after reverse: REVOKED")

    # 4. A customer who must confirm on the phone: USERPAYING, signed.
    e = expect_error(
        "micropay USERPAYING",
        lambda: client.micropay.create(
            body="tillpay conformance",
            total_fee=2,
            auth_code=codes["user_paying"],
            client_ip="127.0.0.1",
            out_trade_no=f"CONF{run}B",
        ),
        errcode="USERPAYING",
    )
    if e is not None:
        check(md5_verifies(client, answer_of(e)), "USERPAYING answer verifies with wechatpy (MD5)")
    q = client.micropay.query(out_trade_no=f"CONF{run}B")
    check(q.get("trade_state") == "USERPAYING", "orderquery: USERPAYING")
    r = client.order.reverse(out_trade_no=f"CONF{run}B")
    check(r.get("result_code") == "SUCCESS", "reverse of the unpaid order")

    # 5. HMAC-SHA256, signed by wechatpy's _request because sign_type says so.
    hmac_paid = client.micropay._post(
        "pay/micropay",
        data={
            "appid": appid,
            "body": "tillpay conformance hmac",
            "out_trade_no": f"CONF{run}C",
            "total_fee": 3,
            "spbill_create_ip": "127.0.0.1",
            "auth_code": codes["pays"][1],
            "sign_type": "HMAC-SHA256",
        },
    )
    check(hmac_paid.get("result_code") == "SUCCESS", "micropay HMAC-SHA256: SUCCESS")
    check(hmac_verifies(key, hmac_paid), "micropay HMAC-SHA256: answer verifies with wechatpy's HMAC")
    check(not md5_verifies(client, hmac_paid), "HMAC answer is not MD5-signed")
    hq = client.micropay._post(
        "pay/orderquery",
        data={"appid": appid, "out_trade_no": f"CONF{run}C", "sign_type": "HMAC-SHA256"},
    )
    check(hq.get("trade_state") == "SUCCESS" and hmac_verifies(key, hq), "orderquery HMAC-SHA256")

    # 6. Errors as WeChat words them.
    expect_error(
        "orderquery of an unknown order",
        lambda: client.micropay.query(out_trade_no=f"CONF{run}Z"),
        errcode="ORDERNOTEXIST",
    )
    wrong = client_for(base_url, appid, mch_id, "f" * 32)
    e = expect_error(
        "a request signed with the wrong key",
        lambda: wrong.micropay.query(out_trade_no=out_trade_no),
        return_msg="签名错误",
    )
    if e is not None:
        check(e.return_code == "FAIL", "wrong key: return_code FAIL")
        check("sign" not in answer_of(e), "wrong key: the FAIL answer is unsigned")
    expect_error(
        "micropay with trade_type",
        lambda: client.micropay._post(
            "pay/micropay",
            data={
                "appid": appid,
                "body": "x",
                "out_trade_no": f"CONF{run}D",
                "total_fee": 1,
                "spbill_create_ip": "127.0.0.1",
                "auth_code": codes["pays"][2],
                "trade_type": "MICROPAY",
            },
        ),
        errcode="PARAM_ERROR",
    )

    # 7. A raw request with a tampered field after signing.
    data = {"appid": appid, "mch_id": mch_id, "nonce_str": uuid.uuid4().hex, "out_trade_no": out_trade_no}
    sign = calculate_signature(data, key)
    data["out_trade_no"] = out_trade_no + "X"
    body = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in data.items()) + f"<sign>{sign}</sign></xml>"
    resp = requests.post(base_url.rstrip("/") + "/pay/orderquery", data=body.encode(), timeout=10)
    parsed = xmltodict.parse(resp.text)["xml"]
    check(parsed.get("return_code") == "FAIL" and parsed.get("return_msg") == "签名错误",
          "tampered request: 签名错误")

    if failures:
        print(f"{len(failures)} conformance check(s) failed:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        return 1
    print("all WeChat conformance checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except WeChatPayException as e:
        print(f"FAIL unexpected WeChat error: {e!r}", file=sys.stderr)
        sys.exit(1)
