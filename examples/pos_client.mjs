#!/usr/bin/env node
// A tillpay POS client in Node.js, written from docs/pos-protocol.md alone,
// with nothing but Node's standard library. Try it against `tillpay dev`:
//
//   node pos_client.mjs charge --socket tillpay-dev/pos.sock --order A1 --amount 1234
//   node pos_client.mjs charge ... --typed < code.txt     (a code typed in by hand)
//   node pos_client.mjs cancel --socket ... --order A1
//   node pos_client.mjs refund --socket ... --order A1 --refund-no R1 --amount 234
//   node pos_client.mjs watch  --socket ... --order A1    (follow a sale to its end)
//   node pos_client.mjs status --socket ...
//
// Progress goes to stderr, one line per event; the final object goes to
// stdout as one JSON line. Exit 0 when paid / refunded / answered, 1 when
// not paid, 2 on an error.

import net from "node:net";
import readline from "node:readline";

const FINAL = ["paid", "failed", "cancelled", "revoked", "needs_attention"];

/** One connection to tillpay: requests by id, notifications to listeners. */
export class Tillpay {
  constructor(path) {
    this.path = path;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = new Set();
  }

  /** Connects, retrying while tillpay (re)starts, for up to `waitMs`. */
  async connect(waitMs = 10000) {
    const until = Date.now() + waitMs;
    for (;;) {
      try {
        await this.#open();
        return this;
      } catch (e) {
        if (Date.now() > until) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  #open() {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(this.path);
      sock.once("error", reject);
      sock.once("connect", () => {
        sock.off("error", reject);
        sock.on("error", () => {});
        this.sock = sock;
        const lines = readline.createInterface({ input: sock });
        lines.on("line", (line) => this.#onLine(line));
        sock.on("close", () => {
          for (const { fail } of this.pending.values()) fail(new Error("tillpay closed the connection"));
          this.pending.clear();
          for (const l of this.listeners) l(null);
        });
        resolve();
      });
    });
  }

  #onLine(line) {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (msg.method) {
      for (const l of this.listeners) l(msg);
      return;
    }
    const waiter = this.pending.get(msg.id);
    if (!waiter) return;
    this.pending.delete(msg.id);
    if (msg.error) waiter.fail(Object.assign(new Error(msg.error.message), { code: msg.error.code }));
    else waiter.done(msg.result);
  }

  /** Sends one request (always with an id) and resolves with its result. */
  call(method, params = {}) {
    const id = this.nextId++;
    return new Promise((done, fail) => {
      this.pending.set(id, { done, fail });
      // Amounts are integers of fen: JSON.stringify writes 1234, never 1234.0.
      this.sock.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
    });
  }

  /** Calls `f(msg)` for every notification; `f(null)` when the connection ends. */
  listen(f) {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  close() {
    this.sock?.end();
  }
}

function progress(order) {
  return (msg) => {
    if (!msg) return;
    const p = msg.params;
    if (msg.method === "scanner.event" && p.event === "ignored") {
      process.stderr.write(`  scanner ignored a scan: ${p.reason}\n`);
    }
    if (msg.method !== "payment.event" || p.order_no !== order) return;
    const extra = p.auth_code_masked ?? p.reason ?? (p.elapsed_ms !== undefined ? `${p.elapsed_ms} ms` : "");
    process.stderr.write(`  ${p.event} ${extra}\n`);
  };
}

/**
 * Follows one order to its final status: the Payment now (`watch`), then
 * that order's notifications with a higher `seq`, re-asking when one ends
 * it. Survives tillpay restarting: it reconnects and watches again.
 */
export async function follow(path, order) {
  for (;;) {
    const t = await new Tillpay(path).connect(30000);
    const ended = new Promise((resolve) => {
      let seen = Infinity;
      const changes = [];
      t.listen((msg) => {
        if (!msg) return resolve(null);
        const p = msg.params;
        if (msg.method !== "payment.event" || p.order_no !== order) return;
        progress(order)(msg);
        if (FINAL.includes(p.event)) changes.push(p.seq);
        if (changes.some((s) => s > seen)) resolve("changed");
      });
      t.call("watch", { order_no: order }).then(
        (payment) => {
          seen = payment.seq;
          if (FINAL.includes(payment.status)) resolve(payment);
          else if (changes.some((s) => s > seen)) resolve("changed");
        },
        (e) => resolve(e),
      );
    });
    const r = await ended;
    if (r instanceof Error) {
      t.close();
      throw r;
    }
    if (r && r !== "changed") {
      t.close();
      return r;
    }
    if (r === "changed") {
      const payment = await t.call("query", { order_no: order });
      t.close();
      if (FINAL.includes(payment.status)) return payment;
      continue;
    }
    // The connection ended (tillpay restarting): connect and watch again.
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** A refund followed to its end: the answer, then its `refund.event`. */
async function refundToTheEnd(t, params) {
  let end;
  const ended = new Promise((resolve) => {
    end = resolve;
  });
  t.listen((msg) => {
    if (!msg) return end(null);
    const p = msg.params;
    if (msg.method === "refund.event" && p.order_no === params.order_no && p.refund_no === params.refund_no) end(p);
  });
  const first = await t.call("refund", params);
  process.stderr.write(`  refund ${first.status}\n`);
  if (first.status !== "processing") return first;
  const last = await ended;
  // Missed the event (a reconnect, say)? The same refund_no asks again.
  return last ?? (await t.call("refund", params));
}

function args(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) out._.push(a);
    else if (a === "--typed") out.typed = true;
    else out[a.slice(2)] = argv[++i];
  }
  return out;
}

async function readStdinLine() {
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) return line.trim();
  return "";
}

async function main() {
  const a = args(process.argv.slice(2));
  const [cmd] = a._;
  const path = a.socket ?? "/run/tillpay/pos.sock";
  const t = await new Tillpay(path).connect();
  let result;
  let ok = true;
  switch (cmd) {
    case "charge": {
      const params = { order_no: a.order, amount: Number.parseInt(a.amount, 10) };
      if (a.subject) params.subject = a.subject;
      // Never on the command line, where ps and the shell's history keep it.
      if (a.typed) params.auth_code = await readStdinLine();
      t.listen(progress(a.order));
      result = await t.call("charge", params);
      ok = result.status === "paid";
      break;
    }
    case "cancel":
      t.listen(progress(a.order));
      result = await t.call("cancel", { order_no: a.order });
      ok = result.status !== "paid" && result.status !== "needs_attention";
      break;
    case "refund": {
      const params = { order_no: a.order, refund_no: a["refund-no"], amount: Number.parseInt(a.amount, 10) };
      if (a.reason) params.reason = a.reason;
      result = await refundToTheEnd(t, params);
      ok = result.status === "refunded";
      break;
    }
    case "watch":
      t.close();
      result = await follow(path, a.order);
      ok = result.status === "paid";
      break;
    case "status":
      result = await t.call("status");
      break;
    default:
      process.stderr.write("commands: charge | cancel | refund | watch | status (see the top of this file)\n");
      process.exit(2);
  }
  process.stdout.write(JSON.stringify(result) + "\n");
  t.close();
  process.exit(ok ? 0 : 1);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    process.stderr.write(`tillpay: ${e.code ?? ""} ${e.message}\n`);
    process.exit(2);
  });
}
