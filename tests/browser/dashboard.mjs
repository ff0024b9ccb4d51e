// The dashboard in headless Chromium: log in with password and TOTP, watch the live
// indicator connect and the overview's charts move on, check a queue depth, toggle dark mode,
// look at it 375 px wide, draw the usage charts and a verification's timeline, and requeue a
// parked message. Started by tests/it/browser.rs, which prepares the data.
import { check, env, launch } from "./common.mjs";
import { mkdirSync } from "node:fs";

const base = env("DASHBOARD_URL");
const shots = env("SCREENSHOTS");
mkdirSync(shots, { recursive: true });

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });

  await page.goto(`${base}/`);
  check(page.url().endsWith("/login"), `expected the login page, got ${page.url()}`);
  await page.fill("input[name=username]", env("ADMIN_USER"));
  await page.fill("input[name=password]", env("ADMIN_PASSWORD"));
  await page.fill("input[name=code]", env("ADMIN_CODE"));
  await Promise.all([page.waitForURL(`${base}/`), page.click("button[type=submit]")]);

  // The script (which connects the live indicator) and the stylesheet come by their
  // content-hashed names and pass their Subresource Integrity checks.
  await page.waitForSelector('#live-state[data-state="connected"]', { timeout: 15000 });
  const sheet = await page.evaluate(() => document.styleSheets[0] && document.styleSheets[0].href);
  check(/\/static\/app\.[0-9a-f]{20}\.css$/.test(sheet || ""), `stylesheet not loaded by its hashed name: ${sheet}`);
  // The number arrives over the WebSocket (RabbitMQ's management API refreshes every 5 s).
  const expected = env("EXPECTED_REFUND_READY");
  try {
    await page.waitForFunction(
      (want) => document.querySelector('[data-live="queue.refund.ready"]').textContent.trim() === want,
      expected, { timeout: 20000 });
  } catch (error) {
    const shown = await page.textContent('[data-live="queue.refund.ready"]');
    throw new Error(`refund queue shows ${shown}, expected ${expected}`);
  }
  // The overview's charts: drawn on first paint, then moved on by the WebSocket.
  const latest = () => page.evaluate(() => {
    const charts = document.querySelector("#live-charts .charts");
    return charts ? charts.getAttribute("data-last") : null;
  });
  const atLoad = await latest();
  check(atLoad !== null, "the overview has no live charts");
  check(await page.locator("#live-charts svg.chart").count() === 4, "expected 4 live charts");
  await page.waitForFunction(
    (before) => {
      const charts = document.querySelector("#live-charts .charts");
      const queues = document.querySelector("#live-charts desc#live-queues-desc");
      return charts && charts.getAttribute("data-last") > before && queues && queues.textContent.includes("refund: from");
    },
    atLoad, { timeout: 20000 });
  const queueChart = await page.textContent("#live-charts desc#live-queues-desc");
  check(queueChart.includes(`last ${expected}.`), `the queue chart does not show the refunds: ${queueChart}`);
  check(await page.locator("#live-charts svg.chart path.line").count() >= 4, "the live charts have no lines");
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

  const before = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.click("#theme-toggle");
  const theme = await page.getAttribute("html", "data-theme");
  const after = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(theme === "dark" || theme === "light", `no theme set: ${theme}`);
  check(before !== after, "the background did not change with the theme");
  await page.reload();
  check(await page.getAttribute("html", "data-theme") === theme, "the theme was not remembered");
  // The charts follow the theme: their axis text takes the page's muted colour.
  const axis = await page.evaluate(() => getComputedStyle(document.querySelector("#live-charts svg.chart .axis")).fill);
  const muted = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--muted").trim());
  check(axis !== "" && axis !== "rgb(0, 0, 0)", `chart axes are not themed (fill ${axis}, muted ${muted})`);
  await page.screenshot({ path: `${shots}/overview-toggled.png`, fullPage: true });

  await page.setViewportSize({ width: 375, height: 812 });
  await page.reload();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the page is ${overflow}px wider than a 375px screen`);
  const chartWidth = await page.evaluate(() => document.querySelector("#live-charts svg.chart").getBoundingClientRect().width);
  check(chartWidth > 200 && chartWidth <= 375, `a live chart is ${chartWidth}px wide at 375px`);
  await page.screenshot({ path: `${shots}/overview-375.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  // The usage charts are drawn at 375 px too, without overflowing.
  await page.goto(`${base}/usage`);
  const charts = await page.locator("svg.chart").count();
  check(charts === 4, `expected 4 usage charts, saw ${charts}`);
  const lines = await page.locator("svg.chart path.line").count();
  check(lines >= 4, `expected the charts' lines, saw ${lines}`);
  await page.screenshot({ path: `${shots}/usage.png`, fullPage: true });
  await page.setViewportSize({ width: 375, height: 812 });
  await page.reload();
  const usageOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(usageOverflow <= 1, `the usage page is ${usageOverflow}px wider than a 375px screen`);
  await page.screenshot({ path: `${shots}/usage-375.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  // A verification's timeline: its steps on a time axis, described in words.
  await page.goto(`${base}/verifications/${env("VERIFICATION_ID")}`);
  const steps = await page.locator("svg.timeline-chart .step").count();
  check(steps === 3, `expected 3 steps on the timeline, saw ${steps}`);
  const story = await page.textContent("svg.timeline-chart desc");
  check(story.includes("accepted and charged") && story.includes("verification.completed"),
    `the timeline's description misses steps: ${story}`);
  await page.screenshot({ path: `${shots}/verification.png`, fullPage: true });

  await page.goto(`${base}/parked`);
  const rows = 'section[data-parked-queue="polling"] tr[data-parked-id]';
  const parkedBefore = await page.locator(rows).count();
  check(parkedBefore === Number(env("EXPECTED_PARKED")), `expected ${env("EXPECTED_PARKED")} parked, saw ${parkedBefore}`);
  const first = page.locator(rows).first();
  const id = await first.getAttribute("data-parked-id");
  await Promise.all([page.waitForURL(`${base}/parked`), first.locator("button").click()]);
  const parkedAfter = await page.locator(rows).count();
  check(parkedAfter === parkedBefore - 1, `after a requeue ${parkedAfter} remain, expected ${parkedBefore - 1}`);
  check(await page.locator(`tr[data-parked-id="${id}"]`).count() === 0, "the requeued message is still listed");
  await page.screenshot({ path: `${shots}/parked.png`, fullPage: true });
  console.log("browser test passed");
} finally {
  await browser.close();
}
