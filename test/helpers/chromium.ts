/**
 * Headless Chromium for the browser tests: the flags that give WebGL2 through SwiftShader, where the browser is,
 * and playwright-core when it is installed.
 */
import { existsSync } from "node:fs";

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
