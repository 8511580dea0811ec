/**
 * Headless GL for tests: whether the native `gl` module loads, and an X display for it (a private Xvfb
 * started on demand when DISPLAY is unset and the Xvfb binary exists; stopped by `stop`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** Whether `require("gl")` succeeds, and the load error otherwise. */
export function glModuleStatus(): { ok: true } | { ok: false; error: string } {
  try {
    require("gl");
    return { ok: true };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split("\n")[0] };
  }
}

/** A running private X server (or the existing DISPLAY). */
export interface Display {
  display: string;
  /** Stops the server this helper started (no-op for an existing DISPLAY). */
  stop(): void;
}

/** Uses DISPLAY when set; otherwise starts `Xvfb -displayfd` and sets DISPLAY. Resolves null when impossible. */
export async function ensureDisplay(timeoutMs = 10000): Promise<Display | null> {
  if (process.env.DISPLAY) return { display: process.env.DISPLAY, stop() {} };
  let proc: ChildProcess;
  try {
    proc = spawn("Xvfb", ["-displayfd", "3", "-screen", "0", "1280x1024x24", "-ac", "-nolisten", "tcp"], {
      stdio: ["ignore", "ignore", "ignore", "pipe"],
    });
  } catch {
    return null;
  }
  const display = await new Promise<string | null>((resolve) => {
    let text = "";
    const timer = setTimeout(() => resolve(null), timeoutMs);
    proc.on("error", () => {
      clearTimeout(timer);
      resolve(null);
    });
    proc.on("exit", () => {
      clearTimeout(timer);
      resolve(null);
    });
    const fd3 = proc.stdio[3] as NodeJS.ReadableStream | null;
    fd3?.on("data", (d: Buffer) => {
      text += d.toString();
      if (text.includes("\n")) {
        clearTimeout(timer);
        resolve(`:${text.trim()}`);
      }
    });
  });
  const stop = () => {
    if (proc.exitCode === null && proc.pid !== undefined) proc.kill("SIGTERM");
  };
  if (!display) {
    stop();
    return null;
  }
  process.env.DISPLAY = display;
  proc.unref();
  (proc.stdio[3] as unknown as { unref?: () => void } | null)?.unref?.();
  return { display, stop };
}
