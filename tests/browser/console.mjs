// Clicks through tillpay-hq's operators' console in a real headless
// Chromium: an operator logs in, finds a sale by its order number and by
// its masked code, resolves the attention item (and sees the till's
// journal carry it out), refunds a paid sale until the gateway confirms,
// reads the day's reconciliation and totals (and their CSV); a form posted
// from a page of another site acts on nothing; a viewer has no refund form
// and is refused when it posts one; the admin reads the audit log.
// Keeps screenshots.
//
//   HQ_URL=http://127.0.0.1:8740 PASSWORD=... SHOTS=dir P2_MASKED=1345****6789 node console.mjs
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";

const hq = process.env.HQ_URL;
const password = process.env.PASSWORD;
const shots = process.env.SHOTS || "shots";
const p2Masked = process.env.P2_MASKED;
assert.ok(hq && password && p2Masked, "set HQ_URL, PASSWORD and P2_MASKED");
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const shot = (page, name) => page.screenshot({ path: join(shots, name), fullPage: true });
const step = (what) => console.log(`console: ${what}`);

async function login(context, user) {
  const page = await context.newPage();
  await page.goto(`${hq}/console/login`);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", password);
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/console/login") && r.request().method() === "POST"),
    page.click("button"),
  ]);
  if (answer.status() !== 303) throw new Error(`login as ${user}: ${answer.status()} ${await page.textContent("main")}`);
  await page.waitForURL(`${hq}/console/`).catch(async (e) => {
    const cookies = await context.cookies();
    throw new Error(`login as ${user}: no session after the redirect (cookies: ${JSON.stringify(cookies)}; set-cookie: ${JSON.stringify(await answer.headerValue("set-cookie"))}): ${e}`);
  });
  assert.equal(await page.textContent("h1"), "Overview");
  return page;
}

/** Reloads `page` until `check` holds (a till syncs every 200 ms). */
async function until(page, what, check, seconds = 30) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    if (await check()) return;
    assert.ok(Date.now() < end, `timed out: ${what}`);
    await page.waitForTimeout(300);
    await page.reload();
  }
}

try {
  // The operator.
  const olga = await browser.newContext();
  let page = await login(olga, "olga");
  await shot(page, "console-overview.png");
  step("logged in");

  // Find a sale by its order number, then by its masked code.
  await page.click("nav >> text=Sales");
  await page.fill("input[name=q]", "P1");
  await page.click("#find button");
  await page.click("#found >> text=P1");
  assert.match(await page.textContent("#status"), /paid/);
  assert.match(await page.textContent("#attempts"), /\*\*\*\*/, "the code shows masked");
  await shot(page, "console-sale.png");
  await page.goto(`${hq}/console/sales`);
  await page.fill("input[name=code]", p2Masked);
  await page.click("#find button");
  assert.match(await page.textContent("#found"), /P2/);
  step("found sales by order number and by masked code");

  // The attention queue: what happened, where to look; resolve as unpaid.
  await page.click("nav >> text=Attention");
  const queue = await page.textContent("#queue");
  assert.match(queue, /N1/);
  assert.match(queue, /WeChat Pay merchant platform/);
  await shot(page, "console-attention.png");
  await page.click("#queue >> text=N1");
  await page.check("#resolve input[value=unpaid]");
  await page.fill("#resolve textarea[name=note]", "portal: order closed, no payment");
  await page.click("#resolve button");
  assert.match(await page.textContent(".notice"), /Resolve queued/);
  await until(page, "the till carries out the resolve", async () => /done/.test(await page.textContent("#requests")));
  assert.doesNotMatch(await page.textContent("#status"), /needs_attention/);
  await shot(page, "console-resolved.png");
  step("resolved N1; the till's journal has it");

  // Refund part of P1 and follow it until the gateway confirms.
  await page.goto(`${hq}/console/sales/T1/P1`);
  await page.fill("#refund input[name=amount]", "1.00");
  await page.fill("#refund input[name=reason]", "one cup returned");
  await page.click("#refund button");
  assert.match(await page.textContent(".notice"), /Refund queued/);
  await until(page, "the refund is confirmed", async () => /¥1\.00/.test(await page.textContent("#refunded")));
  assert.match(await page.textContent("#refunds"), /refunded/);
  await shot(page, "console-refunded.png");
  step("refunded ¥1.00 of P1");

  // The day's reconciliation and totals.
  await page.click("nav >> text=Reconciliation");
  assert.match(await page.textContent("#summary"), /matched/);
  await shot(page, "console-reconcile.png");
  await page.click("nav >> text=Totals");
  assert.match(await page.textContent("#by-provider"), /alipay/);
  const csv = await page.request.get(new URL(await page.getAttribute("#csv", "href"), hq).href);
  assert.equal(csv.status(), 200);
  assert.match(await csv.text(), /^day,table,store,provider_or_till,cashier/);
  await shot(page, "console-totals.png");
  await page.click("nav >> text=Shifts");
  await until(page, "the till's closed shift is at HQ", async () => /amy/.test(await page.textContent("#shifts")));
  await shot(page, "console-shifts.png");
  step("read the reconciliation, the totals and their CSV, and the till's shift report");

  // A page of another site posts a refund form to the console, in the
  // operator's own browser: nothing is refunded.
  const evil = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html" }).end(
      `<form id=f method=post action="${hq}/console/sales/T1/P2/refund">` +
      `<input name=amount value=8.00><input name=refund_no value=EVIL1></form>` +
      `<script>document.getElementById('f').submit()</script>`);
  });
  await new Promise((ok) => evil.listen(0, "127.0.0.2", ok));
  const evilPage = await olga.newPage();
  const answered = evilPage.waitForResponse((r) => r.url().endsWith("/console/sales/T1/P2/refund"));
  await evilPage.goto(`http://127.0.0.2:${evil.address().port}/`);
  const refusal = await answered;
  assert.ok([303, 403].includes(refusal.status()), `the cross-site post was answered ${refusal.status()}`);
  await evilPage.waitForLoadState();
  await shot(evilPage, "console-cross-site.png");
  evil.close();
  await page.goto(`${hq}/console/sales/T1/P2`);
  assert.match(await page.textContent("#refunded"), /¥0\.00/);
  step("a cross-site form post refunded nothing");
  await page.click(".who button");
  await page.waitForURL(`${hq}/console/login`);

  // The viewer: no refund form, and a refund posted anyway is refused.
  const vic = await browser.newContext();
  page = await login(vic, "vic");
  await page.goto(`${hq}/console/sales/T1/P2`);
  assert.equal(await page.locator("#refund").count(), 0, "a viewer sees no refund form");
  await shot(page, "console-viewer.png");
  // Posted from the viewer's own page with its own token, as a form (the
  // console's pages may not fetch).
  const answered2 = page.waitForResponse((r) => r.url().endsWith("/console/sales/T1/P2/refund"));
  await page.evaluate(() => {
    const f = document.createElement("form");
    f.method = "post";
    f.action = location.pathname + "/refund";
    const csrf = document.querySelector("input[name=csrf]").value;
    for (const [k, v] of [["csrf", csrf], ["amount", "8.00"], ["refund_no", "VIEW1"]]) {
      const i = document.createElement("input");
      i.name = k;
      i.value = v;
      f.appendChild(i);
    }
    document.body.appendChild(f);
    f.submit();
  });
  const status = (await answered2).status();
  assert.equal(status, 403);
  step("a viewer cannot refund");

  // The admin reads the audit log.
  const ada = await browser.newContext();
  page = await login(ada, "ada");
  await page.click("nav >> text=Audit log");
  const audit = await page.textContent("#audit");
  for (const want of ["olga", "resolve", "refund", "refused_role", "vic"]) assert.match(audit, new RegExp(want));
  await shot(page, "console-audit.png");
  step("the audit log has every action");
  console.log("console: all steps passed");
} finally {
  await browser.close();
}
