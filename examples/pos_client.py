#!/usr/bin/env python3
"""A minimal tillpay POS client: charge a sale over the Unix socket and
print what happens. Standard library only.

    python3 pos_client.py --socket /run/tillpay/pos.sock --order A1001 --amount 1234
"""
import argparse
import itertools
import json
import socket
import sys


class TillpayClient:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.lines = self.sock.makefile("r", encoding="utf-8")
        self.ids = itertools.count(1)

    def call(self, method, params=None, on_notice=print):
        """Send one request; return its result, raise on its error.
        Notifications that arrive meanwhile go to on_notice."""
        req_id = next(self.ids)
        msg = {"jsonrpc": "2.0", "id": req_id, "method": method, "params": params or {}}
        self.sock.sendall((json.dumps(msg) + "\n").encode("utf-8"))
        for line in self.lines:
            reply = json.loads(line)
            if "method" in reply:
                on_notice(reply["params"])
            elif reply.get("id") == req_id:
                if "error" in reply:
                    raise RuntimeError("tillpay error %(code)s: %(message)s" % reply["error"])
                return reply["result"]
        raise ConnectionError("tillpay closed the connection")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", default="/run/tillpay/pos.sock")
    ap.add_argument("--order", required=True)
    ap.add_argument("--amount", type=int, required=True, help="fen")
    ap.add_argument(
        "--typed",
        action="store_true",
        help="read a code typed in by hand from stdin (never put it on the command line); "
        "else wait for the scanner",
    )
    args = ap.parse_args()

    client = TillpayClient(args.socket)
    params = {"order_no": args.order, "amount": args.amount}
    if args.typed:
        params["auth_code"] = sys.stdin.readline().strip()

    def progress(p):
        if p.get("order_no") == args.order:
            print("  ..", p["event"], p.get("auth_code_masked", ""))

    payment = client.call("charge", params, on_notice=progress)
    print("%s: %s" % (payment["order_no"], payment["status"]))
    return 0 if payment["status"] == "paid" else 1


if __name__ == "__main__":
    sys.exit(main())
