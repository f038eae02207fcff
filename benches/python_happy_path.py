"""The happy path of a code-pay sale in plain Python, for the payment
benchmark to set beside tillpay's: a journal row committed with a synced
commit (SQLite, WAL, synchronous=FULL), a WeChat Pay v2 micropay signed
with HMAC-SHA256 and sent over one kept HTTP connection, its signed answer
verified, the paid state committed. Standard library only.

    python3 python_happy_path.py HOST:PORT APPID MCH_ID KEY JOURNAL SALES SERIAL0

Prints one line of JSON: per sale, the milliseconds from the code in hand
to the pay request sent, and to the paid state committed.
"""
import hashlib
import hmac
import http.client
import json
import secrets
import sqlite3
import sys
import time
import xml.etree.ElementTree as ET


def sign(fields, key):
    text = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v != "" and k != "sign")
    text += "&key=" + key
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


def to_xml(fields):
    return "<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>"


def main():
    addr, appid, mch_id, key, journal, sales, serial0 = sys.argv[1:8]
    host, port = addr.rsplit(":", 1)
    db = sqlite3.connect(journal, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS attempts (out_trade_no TEXT PRIMARY KEY, amount INTEGER,"
        " code_masked TEXT, phase TEXT, transaction_id TEXT, at INTEGER)"
    )
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    to_request, to_paid = [], []
    for i in range(int(sales)):
        serial = int(serial0) + i
        code = f"13000{serial % 10**13:013d}"
        otn = f"PY_{serial}_1"
        amount = 100 + i
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO attempts VALUES (?, ?, ?, 'submitting', NULL, ?)",
            (otn, amount, code[:4] + "*" * 10 + code[-4:], int(time.time() * 1000)),
        )
        db.execute("COMMIT")
        fields = {
            "appid": appid,
            "mch_id": mch_id,
            "nonce_str": secrets.token_hex(16),
            "sign_type": "HMAC-SHA256",
            "body": "bench",
            "out_trade_no": otn,
            "total_fee": str(amount),
            "spbill_create_ip": "127.0.0.1",
            "auth_code": code,
            "device_info": "PY",
        }
        fields["sign"] = sign(fields, key)
        conn.request("POST", "/pay/micropay", body=to_xml(fields).encode(),
                     headers={"Content-Type": "text/xml"})
        t1 = time.perf_counter()
        answer = conn.getresponse().read()
        got = {c.tag: (c.text or "") for c in ET.fromstring(answer)}
        if got.get("sign") != sign(got, key):
            raise SystemExit(f"unverified answer: {answer!r}")
        if got.get("result_code") != "SUCCESS":
            raise SystemExit(f"not paid: {answer!r}")
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "UPDATE attempts SET phase = 'paid', transaction_id = ? WHERE out_trade_no = ?",
            (got["transaction_id"], otn),
        )
        db.execute("COMMIT")
        t2 = time.perf_counter()
        to_request.append((t1 - t0) * 1e3)
        to_paid.append((t2 - t0) * 1e3)
    print(json.dumps({"to_request_ms": to_request, "to_paid_ms": to_paid}))


main()
