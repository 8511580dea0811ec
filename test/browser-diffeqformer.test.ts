/**
 * End to end in a browser: the example page (examples/browser) runs a DiffEqFormer forward pass on the gpu
 * backend with gpu.js on WebGL2 in headless Chromium (software GL: SwiftShader through ANGLE), and its logits
 * must equal those of Node's cpu backend for the same model and tokens within float32 tolerance.
 * Needs Chromium (QKVFLOW_CHROMIUM, else /usr/bin/chromium …) and playwright-core; skips without them
 * unless QKVFLOW_REQUIRE_BROWSER=1, which turns a missing browser into a failure.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, it } from "node:test";
import { random, setBackend, tensor } from "@qkvflow/autograd";
import { createModel, preset } from "@qkvflow/models";
import { buildBrowserExample } from "../examples/browser/build.js";
import { DEMO, demoTokens, type DemoResult } from "../examples/browser/spec.js";
import { browserOrSkip, CHROMIUM_ARGS } from "./helpers/chromium.js";

/** Node's reference: the same model and tokens on the cpu backend. */
function cpuLogits(): { shape: number[]; values: number[] } {
  setBackend("cpu");
  const model = createModel(preset(DEMO.preset), random.key(DEMO.seed));
  model.eval();
  const x = tensor(demoTokens(model.config.vocabSize), { shape: [DEMO.batch, DEMO.length], dtype: "int32" });
  const y = model.logits(x);
  return { shape: [...y.shape], values: Array.from(y.data()) };
}

describe("browser example: DiffEqFormer on gpu.js WebGL2 in headless Chromium", () => {
  it("gives the cpu backend's logits", async (t) => {
    const browserFound = await browserOrSkip(t);
    if (!browserFound) return;
    const { exe, pw } = browserFound;
    const root = mkdtempSync(join(tmpdir(), "qkvflow-browser-"));
    const browser = await pw.chromium.launch({ executablePath: exe, headless: true, chromiumSandbox: false, args: CHROMIUM_ARGS });
    try {
      const html = await buildBrowserExample(root);
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`${pathToFileURL(html).href}?mode=webgl2`);
      await page.waitForFunction(() => (window as unknown as { __qkvflow?: DemoResult }).__qkvflow?.done === true, null, {
        timeout: 120_000,
      });
      const r = await page.evaluate(() => (window as unknown as { __qkvflow: DemoResult }).__qkvflow);
      assert.deepEqual(errors, [], "no uncaught page errors");
      assert.ok(r.ok, `the page failed: ${r.error}`);
      assert.equal(r.mode, "webgl2", "the gpu backend ran on WebGL2");
      const ref = cpuLogits();
      assert.deepEqual(r.shape, ref.shape);
      const scale = Math.max(...ref.values.map(Math.abs));
      let worst = 0,
        at = 0;
      ref.values.forEach((v, i) => {
        const d = Math.abs(r.logits![i] - v);
        if (d > worst) [worst, at] = [d, i];
      });
      assert.ok(
        worst <= 1e-4 * scale + 1e-6,
        `logit ${at}: ${r.logits![at]} in Chromium (${r.renderer}), ${ref.values[at]} on Node's cpu backend`,
      );
    } finally {
      await browser.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
