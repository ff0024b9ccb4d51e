// The README's dashboard pictures (run by scripts/screenshots on a pipeline it has loaded):
// logs in with the administrator scripts/screenshots made, then photographs the overview
// (light and dark) and the usage page.
import { env, launch } from "./common.mjs";
import { createHmac } from "node:crypto";

const base = env("DASHBOARD_URL");
const shots = env("SCREENSHOTS");
const admin = JSON.parse(env("ADMIN"));

// RFC 6238 with the defaults our dashboard uses: SHA-1, 6 digits, 30 s steps.
function totp(otpauthUri) {
  const secret = new URL(otpauthUri).searchParams.get("secret");
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const char of secret.replace(/=+$/, "").toUpperCase()) {
    bits += alphabet.indexOf(char).toString(2).padStart(5, "0");
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000)));
  const digest = createHmac("sha1", key).update(counter).digest();
  const offset = digest[digest.length - 1] & 0x0f;
  const code = (digest.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return String(code).padStart(6, "0");
}

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${base}/login`);
  await page.fill("input[name=username]", admin.username);
  await page.fill("input[name=password]", admin.password);
  await page.fill("input[name=code]", totp(admin.otpauth_uri));
  await Promise.all([page.waitForURL(`${base}/`), page.click("button[type=submit]")]);
  await page.waitForSelector('#live-state[data-state="connected"]', { timeout: 15000 });
  // One live update, so the picture shows the charts as they move.
  const before = await page.getAttribute("#live-charts .charts", "data-last");
  await page.waitForFunction(
    (then) => document.querySelector("#live-charts .charts").getAttribute("data-last") > then,
    before, { timeout: 20000 });
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: `${shots}/overview-dark.png`, fullPage: true });
  await page.emulateMedia({ colorScheme: "light" });
  await page.goto(`${base}/usage`);
  await page.waitForSelector("svg.chart");
  await page.screenshot({ path: `${shots}/usage.png`, fullPage: true });
  await page.setViewportSize({ width: 375, height: 812 });
  await page.goto(`${base}/`);
  await page.screenshot({ path: `${shots}/overview-375.png`, fullPage: false });
  console.log(`pictures in ${shots}`);
} finally {
  await browser.close();
}
