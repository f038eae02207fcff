// Money as the till keeps it: integer fen. Yuan typed by the cashier are
// read digit by digit, never through a float.
"use strict";

/** "12.34" -> 1234; null when it is not yuan with at most two decimals. */
function yuanToFen(text) {
  const m = /^\s*(\d{1,7})(?:\.(\d{1,2}))?\s*$/.exec(text);
  if (!m) return null;
  const fen = Number(m[1]) * 100 + Number((m[2] || "").padEnd(2, "0"));
  return fen > 0 ? fen : null;
}

/** 1234 -> "12.34" */
function fenToYuan(fen) {
  const f = Math.trunc(fen);
  const sign = f < 0 ? "-" : "";
  const a = Math.abs(f);
  return `${sign}${Math.trunc(a / 100)}.${String(a % 100).padStart(2, "0")}`;
}
