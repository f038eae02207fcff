// Clicks through examples/web-pos in a real headless Chromium against
// `tillpay dev`: a sale scanned at the till (with a coupon on the receipt),
// a sale cancelled while the customer confirms (revoked), a refund, the
// shift report; then a page of another origin and a page with a wrong
// token, which cannot connect and charge nothing. Keeps screenshots.
//
//   TILLPAY_BIN=target/debug/tillpay SHOTS=target/web-pos node web_pos.mjs
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, extname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
const pageDir = join(here, "..", "..", "examples", "web-pos");
const bin = process.env.TILLPAY_BIN;
const shots = process.env.SHOTS || join(here, "shots");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
assert.ok(bin, "set TILLPAY_BIN to the tillpay binary");
mkdirSync(shots, { recursive: true });

/** Serves the example page's files on a free loopback port. */
function serve() {
  const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };
  const server = createServer((req, res) => {
    const name = new URL(req.url, "http://x").pathname.replace(/^\/$/, "/index.html").slice(1);
    if (!/^[a-z.-]+$/.test(name)) return res.writeHead(404).end();
    try {
      const body = readFileSync(join(pageDir, name));
      res.writeHead(200, { "content-type": types[extname(name)] || "text/plain" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(server)));
}

function freePort() {
  return new Promise((ok) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** `tillpay dev` with the web interface; resolves once it has started. */
function startDev(dir, webPort, origin) {
  const dev = spawn(bin, ["dev", "--fast", "--dir", dir, "--web", `127.0.0.1:${webPort}`, "--web-origin", origin], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let out = "";
  return new Promise((ok, fail) => {
    dev.on("exit", (c) => fail(new Error(`tillpay dev exited ${c}: ${out}`)));
    dev.stdout.on("data", (d) => {
      out += d;
      if (out.includes("commands:")) ok(dev);
    });
  });
}

// Ready-made simulator codes (docs/simulator.md): Alipay 28, WeChat 13,
// then the behaviour's two digits and its parameter.
const serial = String(Date.now() % 1e13).padStart(13, "0");
const COUPON_CODE = `13192${serial}`; // WeChat, pays at once, 2 yuan by coupon
const CONFIRMING_CODE = `28020${serial}`; // Alipay, never confirms

const dir = mkdtempSync(join(tmpdir(), "tillpay-webpos-"));
const pages = await serve();
const other = await serve(); // another origin: not allowed
const pageOrigin = `http://127.0.0.1:${pages.address().port}`;
const otherOrigin = `http://127.0.0.1:${other.address().port}`;
const webPort = await freePort();
const dev = await startDev(dir, webPort, pageOrigin);
const token = readFileSync(join(dir, "web-token"), "utf8").trim();
const till = `127.0.0.1:${webPort}`;

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 1200 } });
  page.on("dialog", (d) => d.accept());
  await page.goto(`${pageOrigin}/#till=${till}&token=${token}&cashier=alice`);
  await page.locator("#conn-state", { hasText: "connected to" }).waitFor({ timeout: 10000 });

  // 1. A sale scanned at the till: the page waits, the scan gun reads the code.
  await page.fill("#amount", "12.34");
  await page.click("#charge");
  await page.locator("#sale-state", { hasText: "Scan the customer's payment code" }).waitFor();
  dev.stdin.write(`scan ${COUPON_CODE}\n`);
  await page.locator("#sale-state", { hasText: "PAID ¥12.34" }).waitFor({ timeout: 20000 });
  const receipt = await page.locator("#receipt-table").innerText();
  for (const want of ["wechat", "customer paid\t¥10.34", "discount\t¥2.00", "cashier\talice"]) {
    assert.ok(receipt.includes(want), `receipt lacks ${JSON.stringify(want)}:\n${receipt}`);
  }
  assert.ok((await page.locator("#progress").innerText()).includes("Sent to the gateway"));
  await page.screenshot({ path: join(shots, "web-pos-paid.png"), fullPage: true });
  const paidOrder = await page.inputValue("#refund-order");

  // 2. The customer never confirms; the cashier cancels: revoked, no money kept.
  await page.fill("#amount", "5.00");
  await page.fill("#code", CONFIRMING_CODE);
  await page.click("#charge");
  await page.locator("#sale-state", { hasText: "confirming on the phone" }).waitFor({ timeout: 10000 });
  await page.click("#cancel");
  await page.locator("#sale-state", { hasText: "NOT PAID: revoked" }).waitFor({ timeout: 20000 });

  // 3. A refund of part of the first sale.
  await page.fill("#refund-amount", "2.00");
  await page.click("#refund");
  await page.locator("#refund-state", { hasText: "refunded ¥2.00" }).waitFor({ timeout: 20000 });

  // 4. The shift: the report, then closing it.
  await page.click("#shift-report");
  let shift = await page.locator("#shift-table").innerText();
  assert.match(shift, /paid sales\t1 +¥12\.34/, shift);
  assert.match(shift, /refunds\t1 +¥2\.00/, shift);
  assert.match(shift, /revoked\t1 +¥5\.00/, shift);
  assert.match(shift, /cashier alice\t1 +¥12\.34 +refunded ¥2\.00/, shift);
  await page.click("#shift-close");
  await page.locator("#shift-table", { hasText: "(closed)" }).waitFor();
  await page.screenshot({ path: join(shots, "web-pos.png"), fullPage: true });

  // 5. A page of another origin, and one with a wrong token: they cannot
  // connect, so they cannot charge.
  for (const [url, what] of [
    [`${otherOrigin}/#till=${till}&token=${token}`, "another origin"],
    [`${pageOrigin}/#till=${till}&token=wrong-${token}`, "a wrong token"],
  ]) {
    const p = await browser.newPage();
    await p.goto(url);
    await p.locator("#conn-state", { hasText: "not connected" }).waitFor({ timeout: 10000 });
    assert.ok(await p.locator("#charge").isDisabled(), `${what}: Charge must stay disabled`);
    // Even a script on that page that skips the buttons is refused.
    const status = await p.evaluate(async ([till, token]) => {
      try {
        const r = await fetch(`http://${till}/v1/charge`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ order_no: "EVIL1", amount: 100, auth_code: "280000000000000001234" }),
        });
        return r.status;
      } catch (e) {
        return `blocked: ${e.message}`;
      }
    }, [till, what === "a wrong token" ? `wrong-${token}` : token]);
    assert.notEqual(status, 200, `${what}: ${status}`);
    await p.screenshot({ path: join(shots, `web-pos-refused-${what.replace(/ /g, "-")}.png`) });
    await p.close();
  }

  // What the till holds: the paid sale with its refund, the revoked one,
  // and nothing from the refused pages.
  const list = await fetch(`http://${till}/v1/list`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  }).then((r) => r.json());
  const byOrder = Object.fromEntries(list.map((p) => [p.order_no, p]));
  assert.equal(list.length, 2, JSON.stringify(list));
  assert.equal(byOrder[paidOrder].status, "paid");
  assert.equal(byOrder[paidOrder].refunded_amount, 200);
  assert.ok(list.some((p) => p.status === "revoked" && p.amount === 500), JSON.stringify(list));
  assert.ok(!byOrder.EVIL1, "a refused page charged nothing");
  console.log(`web POS: paid, revoked, refunded, shift closed; refused pages charged nothing; screenshots in ${shots}`);
} finally {
  await browser.close();
  dev.stdin.write("quit\n");
  pages.close();
  other.close();
  rmSync(dir, { recursive: true, force: true });
}
