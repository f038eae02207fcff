#!/usr/bin/env python3
"""Drive tillpay's WeChat Pay API v3 simulator with the third-party client wechatpayv3.

The simulator must speak real WeChat Pay v3: wechatpayv3 builds and signs
the requests its own way (its JSON, its nonce, its WECHATPAY2-SHA256-RSA2048
Authorization), and it verifies every 2xx answer's Wechatpay-Signature with
its own code (Core._verify_signature, in "WeChat Pay public key" mode), so an
answer it cannot verify raises instead of being returned.

Usage: wechat_v3_conformance.py BASE_URL APPID MCHID MERCHANT_KEY_FILE
       MERCHANT_SERIAL PUBLIC_KEY_FILE PUBLIC_KEY_ID CODES_JSON
MERCHANT_KEY_FILE is the merchant's PKCS#8 PEM private key (apiclient_key.pem),
PUBLIC_KEY_FILE the WeChat Pay public key (SPKI PEM) named by PUBLIC_KEY_ID.
CODES_JSON names payment codes for the behaviours the simulator offers:
{"pays": [...], "user_paying": "..."}. Every out_trade_no starts with
"CONFV3": one order of 10 fen is paid and 3 fen of it refunded (the refund
lands a few simulated seconds later), one of 2 fen never confirms and is
reversed. Exits 0 when every check passed, 1 with a list of the failures
otherwise.
"""

import json
import sys
import time
import uuid

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.utils import build_authorization

failures = []

# wechatpayv3 wants an APIv3 key, used only to decrypt callbacks and
# platform certificates; public-key mode downloads no certificate.
APIV3_KEY = "0" * 32
STORE = {"id": "CONF-STORE-1", "name": "tillpay conformance", "area_code": "440305",
         "address": "simulator"}


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def client_for(base_url, appid, mchid, private_key, serial, public_key, public_key_id):
    # public_key + public_key_id: wechatpayv3's "WeChat Pay public key" mode.
    # Core then verifies answers whose Wechatpay-Serial is public_key_id with
    # that key and never calls /v3/certificates (it does so only without one).
    c = WeChatPay(
        wechatpay_type=WeChatPayType.CODEPAY,
        mchid=mchid,
        private_key=private_key,
        cert_serial_no=serial,
        appid=appid,
        apiv3_key=APIV3_KEY,
        public_key=public_key,
        public_key_id=public_key_id,
        timeout=(5, 30),
    )
    # wechatpayv3 has no base URL parameter: Core hard-codes
    # self._gate_way = 'https://api.mch.weixin.qq.com' and every request goes
    # to self._gate_way + path, so point it at the simulator here.
    c._core._gate_way = base_url.rstrip("/")
    return c


def answer(result):
    """(status, parsed JSON or None) of a wechatpayv3 call's (code, text)."""
    code, text = result
    try:
        return code, json.loads(text) if text else None
    except (TypeError, ValueError):
        return code, None


def raw(client, method, path, data=None):
    """A request signed by wechatpayv3's own build_authorization, sent with
    requests so that the answer's headers can be checked (Core.request
    returns only status and body)."""
    core = client._core
    body = json.dumps(data) if data is not None else ""
    auth = build_authorization(path, method, core._mchid, core._cert_serial_no,
                               core._private_key, data=body or None)
    headers = {"Authorization": auth, "Accept": "application/json",
               "Content-Type": "application/json"}
    return requests.request(method, core._gate_way + path, data=body.encode() or None,
                            headers=headers, timeout=(5, 30))


def other_public_key_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def other_private_key_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def codepay(client, out_trade_no, total, auth_code, scene_info=None):
    # wechatpayv3 has code pay: pay(..., pay_type=CODEPAY) posts to
    # /v3/pay/transactions/codepay and, for CODEPAY only, sends no notify_url.
    return answer(client.pay(
        description="tillpay conformance",
        out_trade_no=out_trade_no,
        amount={"total": total, "currency": "CNY"},
        payer={"auth_code": auth_code},
        scene_info=scene_info or {"device_id": "CONF-T1", "store_info": STORE},
        pay_type=WeChatPayType.CODEPAY,
    ))


def rejected_by_verification(what, fn):
    try:
        fn()
    except Exception as e:  # wechatpayv3 raises a bare Exception
        return check("failed to verify the signature" in str(e),
                     f"{what}: wechatpayv3 rejects the answer ({e})")
    return check(False, f"{what}: wechatpayv3 rejects the answer (it returned it)")


def main():
    (base_url, appid, mchid, key_file, serial, pub_file, pub_id, codes_json) = sys.argv[1:9]
    codes = json.loads(codes_json)
    private_key, public_key = read(key_file), read(pub_file)
    run = uuid.uuid4().hex[:8].upper()
    client = client_for(base_url, appid, mchid, private_key, serial, public_key, pub_id)
    paid_no, paying_no = f"CONFV3{run}A", f"CONFV3{run}B"

    # 1. Code pay of a code that pays at once: 200, SUCCESS, verified.
    code, paid = codepay(client, paid_no, 10, codes["pays"][0])
    check(code == 200, f"codepay: HTTP 200 (got {code})")
    paid = paid or {}
    check(paid.get("trade_state") == "SUCCESS", "codepay: trade_state SUCCESS")
    check(paid.get("out_trade_no") == paid_no, "codepay: out_trade_no echoed")
    check(paid.get("appid") == appid and paid.get("mchid") == mchid, "codepay: appid/mchid")
    check(bool(paid.get("transaction_id")), "codepay: transaction_id present")
    check(paid.get("trade_type") == "MICROPAY", "codepay: trade_type MICROPAY")
    check((paid.get("amount") or {}).get("total") == 10, "codepay: amount.total 10")
    check(bool((paid.get("payer") or {}).get("openid")), "codepay: payer.openid present")
    check(bool(paid.get("success_time")), "codepay: success_time present")

    # 2. Query it.
    code, q = answer(client.query(out_trade_no=paid_no))
    q = q or {}
    check(code == 200 and q.get("trade_state") == "SUCCESS", f"query: 200 SUCCESS (got {code} {q.get('trade_state')})")
    check(q.get("transaction_id") == paid.get("transaction_id"), "query: same transaction_id")

    # 3. A customer who never confirms: 202 USERPAYING (verified like any
    # 2xx), then reversed.
    code, up = codepay(client, paying_no, 2, codes["user_paying"])
    check(code == 202 and (up or {}).get("trade_state") == "USERPAYING",
          f"codepay: HTTP 202 USERPAYING (got {code} {up})")
    code, q = answer(client.query(out_trade_no=paying_no))
    check(code == 200 and (q or {}).get("trade_state") == "USERPAYING",
          f"query: USERPAYING (got {code} {(q or {}).get('trade_state')})")
    # WeChat asks for no reverse soon after the code pay; the simulator
    # answers 500 SYSTEM_ERROR to one (tillpay dev --fast: within 3 s).
    for attempt in range(10):
        code, r = answer(client.codepay_reverse(out_trade_no=paying_no))
        if not (code == 500 and (r or {}).get("code") == "SYSTEM_ERROR"):
            break
        print(f"     reverse: 500 SYSTEM_ERROR ({(r or {}).get('message')}), retrying")
        time.sleep(1.0)
    check(code == 200, f"reverse: HTTP 200 (got {code} {r})")
    check((r or {}).get("out_trade_no") == paying_no, "reverse: out_trade_no echoed")
    code, q = answer(client.query(out_trade_no=paying_no))
    check(code == 200 and (q or {}).get("trade_state") == "REVOKED",
          f"query after reverse: REVOKED (got {code} {(q or {}).get('trade_state')})")

    # 4. Refund part of the paid order, then query the refund.
    refund_no = f"CONFV3{run}R1"
    code, rf = answer(client.refund(out_refund_no=refund_no, out_trade_no=paid_no,
                                    amount={"refund": 3, "total": 10, "currency": "CNY"},
                                    reason="tillpay conformance"))
    rf = rf or {}
    check(code == 200 and rf.get("status") in ("PROCESSING", "SUCCESS"),
          f"refund: 200 PROCESSING or SUCCESS (got {code} {rf.get('status')})")
    check(rf.get("out_refund_no") == refund_no and rf.get("out_trade_no") == paid_no,
          "refund: out_refund_no and out_trade_no echoed")
    check((rf.get("amount") or {}).get("refund") == 3, "refund: amount.refund 3")
    code, rq = answer(client.query_refund(out_refund_no=refund_no))
    rq = rq or {}
    check(code == 200 and rq.get("out_refund_no") == refund_no,
          f"refund query: 200 (got {code} {rq.get('out_refund_no') or rq})")
    check(rq.get("refund_id") == rf.get("refund_id"), "refund query: same refund_id")
    check(rq.get("status") in ("PROCESSING", "SUCCESS"), f"refund query: status {rq.get('status')}")

    # 5. Verification is on: a client holding another WeChat Pay public key
    # under the same id gets the same signed 200 answers, and wechatpayv3
    # refuses them.
    stranger = client_for(base_url, appid, mchid, private_key, serial,
                          other_public_key_pem(), pub_id)
    rejected_by_verification("query with another public key",
                             lambda: stranger.query(out_trade_no=paid_no))
    rejected_by_verification("refund query with another public key",
                             lambda: stranger.query_refund(out_refund_no=refund_no))

    # 6. Errors as WeChat v3 words them: {code, message}, 4xx, signed too
    # (wechatpayv3 verifies only 2xx answers, so check with its own
    # _verify_signature); a request signed with another key: unsigned 401.
    code, e = answer(client.query(out_trade_no=f"CONFV3{run}Z"))
    check(code == 404 and (e or {}).get("code") == "ORDER_NOT_EXIST",
          f"query of an unknown order: 404 ORDER_NOT_EXIST (got {code} {e})")
    resp = raw(client, "GET", f"/v3/pay/transactions/out-trade-no/CONFV3{run}Z?mchid={mchid}")
    check(resp.status_code == 404 and client._core._verify_signature(resp.headers, resp.text),
          "the 404 answer verifies with wechatpayv3")
    code, e = codepay(client, f"CONFV3{run}S", 1, codes["pays"][-1],
                      scene_info={"device_id": "CONF-T1"})
    check(code == 400 and (e or {}).get("code") == "PARAM_ERROR",
          f"codepay without scene_info.store_info: 400 PARAM_ERROR (got {code} {e})")
    forger = client_for(base_url, appid, mchid, other_private_key_pem(), serial,
                        public_key, pub_id)
    code, e = answer(forger.query(out_trade_no=paid_no))
    check(code == 401 and (e or {}).get("code") == "SIGN_ERROR",
          f"a request signed with another key: 401 SIGN_ERROR (got {code} {e})")
    resp = raw(forger, "GET", f"/v3/pay/transactions/out-trade-no/{paid_no}?mchid={mchid}")
    check(resp.status_code == 401 and "Wechatpay-Signature" not in resp.headers,
          "the 401 SIGN_ERROR answer is unsigned")

    if failures:
        print(f"{len(failures)} conformance check(s) failed:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        return 1
    print("all WeChat v3 conformance checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # wechatpayv3 raises bare Exceptions
        print(f"FAIL unexpected error: {e!r}", file=sys.stderr)
        sys.exit(1)
