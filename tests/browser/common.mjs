// What the browser scripts share: required settings and a headless Chromium.
import { chromium } from "playwright-core";

export function env(name) {
  const value = process.env[name];
  if (!value) { throw new Error(`${name} is not set`); }
  return value;
}

export function check(condition, message) {
  if (!condition) { throw new Error(message); }
}

// `extraArgs`: more Chromium switches (the customer app's test maps tenants' host names to
// 127.0.0.1 with --host-resolver-rules).
export function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           ...extraArgs],
  });
}
