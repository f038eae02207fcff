// An example browser POS for tillpay: JSON-RPC 2.0 over the till's local
// WebSocket (docs/pos-protocol.md). The token travels as the subprotocol
// "tillpay.bearer.<token>", as browsers cannot set headers on a WebSocket.
// Plain JavaScript, no build step: copy what you need into your POS.
"use strict";

const $ = (id) => document.getElementById(id);
let ws = null;
let nextId = 1;
const pending = new Map(); // id -> {resolve, reject}
let sale = null; // the order being charged: {order_no, amount}
let lastPaid = null;

// --- settings: the address and cashier are remembered; the token may come
// in the page's #fragment (never sent to any server) or be typed in.
const params = new URLSearchParams(location.hash.slice(1));
$("till").value = params.get("till") || localStorage.getItem("tillpay.till") || $("till").value;
$("token").value = params.get("token") || localStorage.getItem("tillpay.token") || "";
$("cashier").value = params.get("cashier") || localStorage.getItem("tillpay.cashier") || "";

function setConnected(on, text) {
  const s = $("conn-state");
  s.textContent = text;
  s.className = "state " + (on ? "on" : "off");
  for (const b of ["charge", "refund", "shift-report", "shift-close"]) $(b).disabled = !on;
}

function connect() {
  if (ws) ws.close();
  const till = $("till").value.trim();
  const token = $("token").value.trim();
  localStorage.setItem("tillpay.till", till);
  localStorage.setItem("tillpay.token", token);
  localStorage.setItem("tillpay.cashier", $("cashier").value.trim());
  setConnected(false, "connecting…");
  let socket;
  try {
    socket = new WebSocket(`ws://${till}/rpc`, [`tillpay.bearer.${token}`]);
  } catch (e) {
    setConnected(false, `cannot connect: ${e.message}`);
    return;
  }
  ws = socket;
  socket.onopen = () => setConnected(true, `connected to ${till}`);
  socket.onclose = () => {
    if (ws !== socket) return;
    ws = null;
    for (const p of pending.values()) p.reject(new Error("connection closed"));
    pending.clear();
    // The browser does not say why (a wrong token, an origin the till does
    // not allow): both end here before the connection opens.
    setConnected(false, "not connected (is the token right, and this page's origin allowed?)");
  };
  socket.onmessage = (m) => {
    let msg;
    try {
      msg = JSON.parse(m.data);
    } catch {
      return;
    }
    if (msg.id !== undefined && pending.has(msg.id)) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) p.reject(Object.assign(new Error(msg.error.message), { code: msg.error.code }));
      else p.resolve(msg.result);
    } else if (msg.method) {
      notified(msg.method, msg.params || {});
    }
  };
}

function call(method, params) {
  return new Promise((resolve, reject) => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return reject(new Error("not connected"));
    const id = nextId++;
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
  });
}

function cashier() {
  const c = $("cashier").value.trim();
  return c ? { operator_id: c } : {};
}

// --- the sale -------------------------------------------------------------

const SAYS = {
  waiting_scan: "Scan the customer's payment code",
  scanned: "Code scanned",
  submitted: "Sent to the gateway",
  user_paying: "The customer is confirming on the phone",
  revoking: "Revoking: no money will be kept",
};

function saleState(text, cls) {
  const s = $("sale-state");
  s.textContent = text;
  s.className = "big " + (cls || "");
}

function progress(text) {
  const li = document.createElement("li");
  li.textContent = text;
  $("progress").appendChild(li);
}

function notified(method, p) {
  if (method === "payment.event" && sale && p.order_no === sale.order_no) {
    const says = SAYS[p.event];
    if (says) {
      progress(p.auth_code_masked ? `${says} (${p.provider}, ${p.auth_code_masked})` : says);
      saleState(says + "…", "waiting");
    }
  } else if (method === "refund.event") {
    $("refund-state").textContent = `refund ${p.refund_no}: ${p.status} ¥${fenToYuan(p.amount)}`;
  } else if (method === "scanner.event" && p.event === "ignored") {
    progress(`scanner: ignored (${p.reason})`);
  }
}

async function charge() {
  const amount = yuanToFen($("amount").value);
  if (amount === null) return saleState("Amount: yuan with at most two decimals", "unpaid");
  const order_no = $("order").value.trim() || "W" + Date.now();
  $("order").value = "";
  const params = { order_no, amount, subject: "Example web POS", ...cashier() };
  const code = $("code").value.trim();
  if (code) params.auth_code = code;
  $("code").value = "";
  sale = { order_no, amount };
  $("progress").replaceChildren();
  $("receipt").replaceChildren();
  saleState(code ? "Sending…" : "Scan the customer's payment code…", "waiting");
  $("charge").disabled = true;
  $("cancel").disabled = false;
  try {
    ended(await call("charge", params));
  } catch (e) {
    saleState(`Not charged: ${e.message}`, "unpaid");
  } finally {
    $("charge").disabled = !ws;
    $("cancel").disabled = true;
  }
}

/** A final Payment: what the cashier tells the customer. */
function ended(p) {
  const order = p.order_no;
  switch (p.status) {
    case "paid":
      saleState(`PAID ¥${fenToYuan(p.amount)}`, "paid");
      lastPaid = p;
      $("refund-order").value = order;
      receipt(p);
      break;
    case "needs_attention":
      saleState("NOT PAID — an operator must check this sale (tillpay journal attention)", "unpaid");
      break;
    default: {
      const why = p.error ? ` (${p.error.message || p.error.code})` : "";
      saleState(`NOT PAID: ${p.status}${why}`, "unpaid");
    }
  }
  progress(`order ${order}: ${p.status}`);
}

function row(table, label, value) {
  const tr = document.createElement("tr");
  const th = document.createElement("th");
  const td = document.createElement("td");
  th.textContent = label;
  td.textContent = value;
  tr.append(th, td);
  table.appendChild(tr);
}

function receipt(p) {
  const r = p.receipt || {};
  const t = document.createElement("table");
  t.id = "receipt-table";
  row(t, "order", p.order_no);
  row(t, "paid with", `${r.provider} (via ${r.channel})`);
  row(t, "transaction", r.transaction_id || "");
  row(t, "paid at", r.paid_at || "");
  row(t, "amount", `¥${fenToYuan(r.amount)}`);
  if (r.customer_paid !== null && r.customer_paid !== undefined) row(t, "customer paid", `¥${fenToYuan(r.customer_paid)}`);
  if (r.discount) row(t, "discount", `¥${fenToYuan(r.discount)}`);
  if (r.payer) row(t, "payer", r.payer);
  if (p.operator_id) row(t, "cashier", p.operator_id);
  $("receipt").replaceChildren(t);
}

async function cancel() {
  if (!sale) return;
  try {
    // The charge's own answer tells how it ended.
    await call("cancel", { order_no: sale.order_no });
  } catch (e) {
    progress(`cancel: ${e.message}`);
  }
}

// --- refunds and the shift ------------------------------------------------

async function refund() {
  const order_no = $("refund-order").value.trim();
  const amount = yuanToFen($("refund-amount").value);
  if (!order_no || amount === null) {
    $("refund-state").textContent = "Give the order and an amount in yuan";
    return;
  }
  const refund_no = "R" + Date.now();
  $("refund-state").textContent = `refund ${refund_no}: asking…`;
  try {
    const r = await call("refund", { order_no, refund_no, amount, ...cashier() });
    $("refund-state").textContent = `refund ${r.refund_no}: ${r.status} ¥${fenToYuan(r.amount)}`;
  } catch (e) {
    $("refund-state").textContent = `refund refused: ${e.message}`;
  }
}

function shiftTable(r) {
  const t = document.createElement("table");
  t.id = "shift-table";
  row(t, "shift", `${r.shift_no}${r.closed_at ? " (closed)" : " (running)"}`);
  row(t, "opened", r.opened_at);
  if (r.closed_at) row(t, "closed", r.closed_at);
  row(t, "paid sales", `${r.sales.count}  ¥${fenToYuan(r.sales.amount)}`);
  row(t, "refunds", `${r.refunds.count}  ¥${fenToYuan(r.refunds.amount)}`);
  row(t, "revoked", `${r.revoked.count}  ¥${fenToYuan(r.revoked.amount)}`);
  row(t, "needs attention", String(r.needs_attention));
  for (const [name, s] of Object.entries(r.by_provider)) row(t, name, `${s.count}  ¥${fenToYuan(s.amount)}  refunded ¥${fenToYuan(s.refunded)}`);
  for (const [name, s] of Object.entries(r.by_operator)) row(t, `cashier ${name || "(none)"}`, `${s.count}  ¥${fenToYuan(s.amount)}  refunded ¥${fenToYuan(s.refunded)}`);
  $("shift").replaceChildren(t);
}

async function shift(method) {
  try {
    shiftTable(await call(method, {}));
  } catch (e) {
    $("shift").textContent = `${method}: ${e.message}`;
  }
}

$("connect").onclick = connect;
$("charge").onclick = charge;
$("cancel").onclick = cancel;
$("refund").onclick = refund;
$("shift-report").onclick = () => shift("shift.report");
$("shift-close").onclick = () => {
  if (confirm("Close the shift? Its report is kept and a new shift starts.")) shift("shift.close");
};
if ($("token").value) connect();
