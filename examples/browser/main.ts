/**
 * Browser example: a DiffEqFormer forward pass on the gpu backend (gpu.js on WebGL2 by default; `?mode=`
 * picks another gpu.js mode). The result is shown on the page and published as `window.__qkvflow`.
 */
import { random, setBackend, tensor } from "../../packages/autograd/src/index.js";
import { createGpuBackend, type GpuMode } from "@qkvflow/autograd/gpu";
import { createModel } from "../../packages/models/src/factory.js";
import { preset } from "../../packages/models/src/config.js";
import { DEMO, demoTokens, type DemoResult } from "./spec.js";

declare global {
  interface Window {
    __qkvflow?: DemoResult;
  }
}

function run(): DemoResult {
  const query = new URLSearchParams(location.search);
  const mode = (query.get("mode") ?? "webgl2") as GpuMode;
  const backend = createGpuBackend({ mode, onModeMismatch: "error" });
  setBackend(backend);
  const t0 = performance.now();
  const model = createModel(preset(DEMO.preset), random.key(DEMO.seed));
  model.eval();
  const V = model.config.vocabSize;
  const x = tensor(demoTokens(V), { shape: [DEMO.batch, DEMO.length], dtype: "int32" });
  const logits = model.logits(x);
  const values = Array.from(logits.data());
  const ms = performance.now() - t0;
  const ctx = (backend.gpu as unknown as { context?: WebGLRenderingContext | null }).context;
  let renderer = "none";
  if (ctx && typeof ctx.getParameter === "function") {
    const info = ctx.getExtension("WEBGL_debug_renderer_info");
    renderer = String(ctx.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : ctx.RENDERER));
  }
  return { done: true, ok: true, mode: backend.mode, renderer, shape: [...logits.shape], logits: values, ms };
}

function show(r: DemoResult): void {
  const out = document.getElementById("out");
  if (!out) return;
  out.textContent = r.ok
    ? `mode ${r.mode} (${r.renderer}); logits ${JSON.stringify(r.shape)} in ${r.ms?.toFixed(0)} ms\n` +
      `first values: ${r
        .logits!.slice(0, 6)
        .map((v) => v.toFixed(5))
        .join(", ")}`
    : `failed: ${r.error}`;
}

let result: DemoResult;
try {
  result = run();
} catch (e) {
  result = { done: true, ok: false, error: e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : String(e) };
}
window.__qkvflow = result;
show(result);
