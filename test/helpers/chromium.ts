/**
 * Headless Chromium for the browser tests: the flags that give WebGL2 through SwiftShader, where the browser is,
 * and playwright-core when it is installed.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import type { TestContext } from "node:test";

/** WebGL2 on SwiftShader (ANGLE), and no background traffic. */
export const CHROMIUM_ARGS = [
  "--use-gl=angle",
  "--use-angle=swiftshader",
  "--enable-unsafe-swiftshader",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** $QKVFLOW_CHROMIUM, else Debian's or another usual install path; null when none exists. */
export function findChromium(): string | null {
  const candidates = [process.env.QKVFLOW_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
  return candidates.find((p): p is string => !!p && existsSync(p)) ?? null;
}

export type Playwright = typeof import("playwright-core");

/** playwright-core, or null when it is not installed. */
export async function loadPlaywright(): Promise<Playwright | null> {
  try {
    return await import("playwright-core");
  } catch {
    return null;
  }
}

/**
 * Chromium and playwright-core for a browser test, or null after skipping it with the reason; with
 * QKVFLOW_REQUIRE_BROWSER=1 (CI) a missing browser fails the test instead.
 */
export async function browserOrSkip(t: TestContext): Promise<{ exe: string; pw: Playwright } | null> {
  const exe = findChromium();
  const pw = await loadPlaywright();
  if (exe && pw) return { exe, pw };
  const why = !exe ? "no Chromium found (set QKVFLOW_CHROMIUM)" : "playwright-core is not installed";
  if (process.env.QKVFLOW_REQUIRE_BROWSER === "1") assert.fail(`BROWSER REQUIRED BUT UNAVAILABLE: ${why}`);
  t.skip(why);
  return null;
}
