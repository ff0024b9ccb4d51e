// The customer web app in headless Chromium, as a tenant's customer uses it: sign up under
// the tenant's domain and see its brand; top up through the (simulated) Paystack checkout,
// whose signed webhook credits the wallet; rent a number and watch the code arrive without
// reloading; cancel another and see the refund; a second tenant's customer sees none of it;
// bad input gets a message; dark mode and a 375 px screen. Started by tests/it/browser.rs.
import { check, env, launch } from "./common.mjs";
import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";

const port = env("APP_PORT");
const alpha = `http://${env("ALPHA_DOMAIN")}:${port}`;
const beta = `http://${env("BETA_DOMAIN")}:${port}`;
const api = env("API_URL");
const simulator = env("SIMULATOR_URL");
const shots = env("SCREENSHOTS");
mkdirSync(shots, { recursive: true });

async function simulate(config) {
  const answer = await fetch(`${simulator}/_sim/config`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(config),
  });
  check(answer.ok, `the simulator refused ${JSON.stringify(config)}: ${answer.status}`);
}

// Waits for `predicate` in the page; on a timeout, says what the page showed instead.
async function waitIn(page, what, predicate, timeout = 30000) {
  try {
    await page.waitForFunction(predicate, null, { timeout });
  } catch (error) {
    const shown = await page.evaluate(() => document.querySelector("main").innerText);
    const live = await page.evaluate(() => `${(document.getElementById("live") || {}).textContent} from ${document.body.getAttribute("data-live")}, ${document.body.getAttribute("data-live-events")} events`);
    throw new Error(`${what} did not happen (live: ${live}); the page shows:\n${shown}`);
  }
}

async function signUp(page, base, email) {
  await page.goto(`${base}/sign-up`);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", "a long enough password");
  await Promise.all([page.waitForURL(`${base}/`), page.click("button[type=submit]")]);
}

const browser = await launch([
  `--host-resolver-rules=MAP ${env("ALPHA_DOMAIN")} 127.0.0.1, MAP ${env("BETA_DOMAIN")} 127.0.0.1`,
]);
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  // What the content security policy blocked, or a script that failed (the logo's and the
  // checkout's hosts do not resolve here, and 4xx pages are expected: those are not counted).
  page.on("console", (message) => {
    const text = message.text();
    if (message.type() === "error" && !text.startsWith("Failed to load resource")) { errors.push(text); }
  });
  page.on("pageerror", (error) => errors.push(String(error)));

  // Signed out, the tenant's brand already greets the customer.
  await page.goto(`${alpha}/`);
  check(page.url() === `${alpha}/sign-in`, `expected the sign-in page, got ${page.url()}`);
  check((await page.textContent("h1")).includes(env("ALPHA_NAME")), "the sign-in page does not carry the brand");
  const brand = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--brand").trim());
  check(brand === env("ALPHA_COLOUR"), `the brand colour is ${brand}`);
  await page.screenshot({ path: `${shots}/app-sign-in.png` });

  // Bad input: a message on the page, not an error page.
  await page.goto(`${alpha}/sign-up`);
  await page.fill("input[name=email]", "someone@example.com");
  await page.fill("input[name=password]", "short");
  await page.evaluate(() => document.querySelector("input[name=password]").removeAttribute("minlength"));
  await page.click("button[type=submit]");
  check((await page.textContent("[role=alert]")).includes("10 to 128"), "no message for a short password");

  await signUp(page, alpha, env("CUSTOMER_EMAIL"));
  check((await page.textContent("#brand-name")).includes(env("ALPHA_NAME")), "the rent page does not carry the brand");

  // Top up: the wallet opens Paystack's checkout (the simulator answers for Paystack's API;
  // its checkout page lives on a domain that does not resolve here), then Paystack's signed
  // webhook credits the payment.
  await page.goto(`${alpha}/wallet`);
  await page.fill("#amount", "twenty");
  await page.click("#top-up");
  check((await page.textContent("[role=alert]")).includes("amount such as"), "no message for a bad amount");
  await page.fill("#amount", "20");
  const checkout = page.waitForRequest((request) => request.url().startsWith("https://checkout.paystack.invalid/"));
  const failed = page.waitForEvent("framenavigated", (frame) => frame.url().startsWith("chrome-error:"));
  await page.click("#top-up");
  const reference = (await checkout).url().split("/").pop();
  await failed;
  check(reference, "the checkout was not opened");
  const body = JSON.stringify({ event: "charge.success", data: { id: 1, status: "success", reference,
    amount: 2000, currency: "USD", customer: { email: env("CUSTOMER_EMAIL") } } });
  const signature = createHmac("sha512", env("PAYSTACK_SECRET")).update(body).digest("hex");
  const paid = await fetch(`${api}/v1/payments/paystack/webhook`, {
    method: "POST", headers: { "content-type": "application/json", "x-paystack-signature": signature }, body,
  });
  check(paid.ok, `the payment webhook was refused: ${paid.status}`);
  await page.goto(`${alpha}/wallet?paid=1`);
  check((await page.textContent("#balance")).trim() === "20.00", `balance after top-up: ${await page.textContent("#balance")}`);
  await page.screenshot({ path: `${shots}/app-wallet.png`, fullPage: true });

  // Rent: the number at once, the code arrives live (the simulator sends it seconds later).
  await simulate({ sms_delay_ms: 4000, no_sms_ratio: 0 });
  await page.goto(`${alpha}/`);
  await page.selectOption("#service", "telegram");
  await page.screenshot({ path: `${shots}/app-rent.png`, fullPage: true });
  await Promise.all([page.waitForURL(/\/verifications\//), page.click("#rent")]);
  const rentedUrl = page.url();
  await page.waitForSelector('#live[data-state="open"]', { timeout: 15000 });
  const waiting = (await page.textContent("#code")).trim();
  check(!/^\d+$/.test(waiting), `the code was there before it could arrive: ${waiting}`);
  const navigations = [];
  page.on("framenavigated", (frame) => { if (frame === page.mainFrame()) { navigations.push(frame.url()); } });
  await waitIn(page, "the code arriving", () => /^\d+$/.test(document.getElementById("code").textContent.trim()));
  check(navigations.length === 0, `the page reloaded: ${navigations}`);
  check((await page.textContent("#status")).trim() === "completed", "the status did not follow");
  await page.screenshot({ path: `${shots}/app-code.png`, fullPage: true });

  // Another, whose SMS never comes: cancel it and see the refund.
  await simulate({ sms_delay_ms: 0, no_sms_ratio: 1 });
  await page.goto(`${alpha}/`);
  await page.selectOption("#service", "telegram");
  await Promise.all([page.waitForURL(/\/verifications\//), page.click("#rent")]);
  await page.waitForSelector('#live[data-state="open"]', { timeout: 15000 });
  await waitIn(page, "a number assigned", () => /\d/.test(document.getElementById("number").textContent));
  await waitIn(page, "the countdown to the deadline", () => /^\d+:\d\d$/.test(document.getElementById("countdown").textContent.trim()), 5000);
  await page.click("#cancel");
  await page.waitForSelector("#refund:not([hidden])", { timeout: 30000 });
  await page.screenshot({ path: `${shots}/app-refund.png`, fullPage: true });

  await page.goto(`${alpha}/history`);
  check(await page.locator("#history tbody tr[data-verification]").count() === 2, "history does not list both rentals");

  // Dark mode, remembered; a phone's width without sideways scrolling.
  const before = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.click("#theme-toggle");
  await page.reload();
  const after = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(before !== after, "the theme did not change or was not remembered");
  await page.goto(rentedUrl);
  await page.screenshot({ path: `${shots}/app-code-dark.png`, fullPage: true });
  await page.setViewportSize({ width: 375, height: 812 });
  for (const path of ["/", "/wallet", "/history", "/developers"]) {
    await page.goto(`${alpha}${path}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `${path} is ${overflow}px wider than a 375px screen`);
  }
  await page.goto(rentedUrl);
  await page.screenshot({ path: `${shots}/app-code-375.png`, fullPage: true });

  // A second tenant's customer: its own brand, none of the first's data.
  const other = await (await browser.newContext()).newPage();
  await signUp(other, beta, env("CUSTOMER_EMAIL"));
  check((await other.textContent("#brand-name")).includes(env("BETA_NAME")), "the second tenant's brand is missing");
  await other.goto(`${beta}/history`);
  check(await other.locator("#history tbody tr[data-verification]").count() === 0, "the second tenant's customer sees rentals");
  const answer = await other.goto(rentedUrl.replace(alpha, beta));
  check(answer.status() === 404, `another tenant's verification answered ${answer.status()}`);

  check(errors.length === 0, `console errors: ${errors.join("; ")}`);
  console.log("customer app browser test passed");
} finally {
  await browser.close();
}
