/**
 * One training step of the micro DiffEqFormer on the gpu backend gives the cpu backend's loss and gradients
 * within float32 tolerance: in gpu.js's cpu mode (always) and on headlessgl (when the native `gl` module
 * loads; required with QKVFLOW_REQUIRE_HEADLESSGL=1). The cpu-backend reference and the cpu-mode run use
 * worker threads so that each backend builds the model in its own module graph.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { GPU } from "gpu.js";
import { ensureDisplay, glModuleStatus, type Display } from "../packages/autograd/test/conformance/headless-display.js";
import { trainStep, type StepBackend, type StepResult } from "../packages/autograd/test/conformance/train-step.js";

function inWorker(spec: StepBackend): Promise<StepResult> {
  return new Promise((resolve, reject) => {
    // the worker registers tsx's loader itself, then imports the TypeScript module
    const target = new URL("../packages/autograd/test/conformance/train-step.ts", import.meta.url).href;
    const api = import.meta.resolve("tsx/esm/api");
    const boot = `import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(target)});`;
    const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), { workerData: { trainStep: spec } });
    w.once("message", (m: StepResult) => resolve(m));
    w.once("error", reject);
    w.once("exit", (code) => {
      if (code !== 0) reject(new Error(`train-step worker exited with code ${code}`));
    });
  });
}

/** Same parameter names; loss within 1e-5 relative; each gradient within 1e-4 of its largest entry (1e-8 absolute). */
function assertSameStep(got: StepResult, ref: StepResult): void {
  assert.ok(Number.isFinite(ref.loss) && ref.loss > 0, `reference loss ${ref.loss}`);
  assert.ok(Math.abs(got.loss - ref.loss) <= 1e-5 * ref.loss, `loss ${got.loss} on ${got.mode}, expected ${ref.loss}`);
  assert.deepEqual(Object.keys(got.grads).sort(), Object.keys(ref.grads).sort());
  const nonzero = Object.values(ref.grads).filter((g) => g.some((v) => v !== 0)).length;
  assert.ok(nonzero >= Object.keys(ref.grads).length / 2, `only ${nonzero} parameters have a nonzero reference gradient`);
  for (const [name, r] of Object.entries(ref.grads)) {
    const g = got.grads[name];
    const scale = Math.max(...r.map(Math.abs));
    let worst = 0,
      at = 0;
    for (let i = 0; i < r.length; i++) {
      const d = Math.abs(g[i] - r[i]);
      if (d > worst) [worst, at] = [d, i];
    }
    assert.ok(worst <= 1e-4 * scale + 1e-8, `${name}[${at}] = ${g[at]} on ${got.mode}, expected ${r[at]} (max |grad| ${scale})`);
  }
}

describe("DiffEqFormer training step on the gpu backend", () => {
  let ref: Promise<StepResult>;
  before(() => {
    ref = inWorker({ kind: "cpu" });
  });

  it("gpu.js cpu mode matches the cpu backend", async () => {
    const got = await inWorker({ kind: "gpu", mode: "cpu" });
    assert.equal(got.mode, "cpu");
    assertSameStep(got, await ref);
  });

  const required = process.env.QKVFLOW_REQUIRE_HEADLESSGL === "1";
  process.env.GALLIUM_DRIVER ??= "softpipe";
  const gl = glModuleStatus();
  let display: Display | null = null;
  after(() => display?.stop());
  it("headlessgl matches the cpu backend", async (t) => {
    if (gl.ok) display = await ensureDisplay();
    if (!gl.ok || !display || !GPU.isHeadlessGLSupported) {
      const why = gl.ok ? "no X display or no WebGL context" : `the 'gl' module does not load (${gl.error})`;
      if (required) assert.fail(`HEADLESS GL REQUIRED BUT UNAVAILABLE: ${why}`);
      t.skip(`headless GL unavailable: ${why}`);
      return;
    }
    const got = trainStep({ kind: "gpu", mode: "headlessgl" });
    assert.equal(got.mode, "headlessgl");
    assertSameStep(got, await ref);
  });
});
