/**
 * AdamW through the CPU backend's fused update kernel (large float32 parameters: the WebAssembly SIMD kernel on the
 * kernel threads) against the tensor-op definition and a float64 host reference written here, bit for bit; exact
 * resume through the state; the moments stay the optimiser's own arrays, updated in place.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeSafetensors, encodeSafetensors, random, tensor, type Tensor } from "@qkvflow/autograd";
import { AdamW, type AdamWOptions } from "../src/index.js";

// odd sizes above the kernel threshold (4096) and across several streamed chunks, and one small parameter
const SHAPES: Record<string, number[]> = { "wte.weight": [301, 129], "h.w": [67, 97], "h.b": [131] };
const OPTS: AdamWOptions = { beta2: 0.95, weightDecay: 0.1, decayPatterns: ["wte\\.weight"], maxGradNorm: 1 };

function initParams(): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(SHAPES).map(([n, s], i) => [n, random.normal(random.key(i), s, { std: 0.5 })]));
}

function gradsAt(s: number): Record<string, Tensor> {
  return Object.fromEntries(
    Object.entries(SHAPES).map(([n, sh], i) => [n, random.normal(random.key(1000 + 10 * s + i), sh, { std: s % 3 === 0 ? 0.2 : 0.01 })]),
  );
}

const lrAt = (s: number): number => 0.01 * (1 + Math.cos(s));

/** Steps [from, to) from parameters p; returns a copy of each step's new parameters. */
function run(opt: AdamW, p: Record<string, Tensor>, from: number, to: number): Record<string, Float32Array>[] {
  const seen: Record<string, Float32Array>[] = [];
  for (let s = from; s < to; s++) {
    p = opt.step(p, gradsAt(s), lrAt(s)).params;
    seen.push(Object.fromEntries(Object.entries(p).map(([n, t]) => [n, Float32Array.from(t.data())])));
  }
  return seen;
}

function sameBits(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.fail(`${what}: element ${i} is ${a[i]}, expected ${b[i]}`);
}

test("AdamW on large odd-sized float32 parameters: the fused kernel equals a float64 host reference and the tensor ops, bit for bit", () => {
  const p0 = initParams();
  const steps = 5;
  const viaOps = run(new AdamW({ ...OPTS, kernel: "ops" }), p0, 0, steps);
  const viaKernel = run(new AdamW(OPTS), p0, 0, steps);
  // independent reference: clip by the float64 global norm, then the update per element, rounded to float32
  const hp: Record<string, Float64Array> = Object.fromEntries(Object.entries(p0).map(([n, t]) => [n, Float64Array.from(t.data())]));
  const hm: Record<string, Float64Array> = {};
  const hv: Record<string, Float64Array> = {};
  for (let s = 0; s < steps; s++) {
    const g = gradsAt(s);
    let sq = 0;
    for (const t of Object.values(g)) for (const x of t.data()) sq += x * x;
    const norm = Math.sqrt(sq);
    const scale = norm < 1 ? 1 : 1 / norm;
    const t = s + 1;
    for (const n of Object.keys(SHAPES)) {
      const gd = g[n]!.data();
      const m = (hm[n] ??= new Float64Array(gd.length));
      const v = (hv[n] ??= new Float64Array(gd.length));
      const p = hp[n]!;
      const lam = n === "wte.weight" ? 0.1 : 0;
      for (let i = 0; i < gd.length; i++) {
        const gi = scale === 1 ? gd[i]! : gd[i]! * scale;
        const mi = 0.9 * m[i]! + 0.1 * gi;
        const vi = 0.95 * v[i]! + (1 - 0.95) * gi * gi;
        m[i] = Math.fround(mi);
        v[i] = Math.fround(vi);
        const upd = mi / (1 - 0.9 ** t) / (Math.sqrt(vi / (1 - 0.95 ** t)) + 1e-8);
        p[i] = Math.fround(p[i]! - lrAt(s) * (upd + lam * p[i]!));
      }
      sameBits(viaKernel[s]![n]!, p, `step ${t}: ${n}, kernel vs reference`);
      sameBits(viaOps[s]![n]!, p, `step ${t}: ${n}, tensor ops vs reference`);
    }
  }
});

test("AdamW with the fused kernel: exporting the state mid-run and resuming reproduces the run bit for bit", () => {
  const opts = OPTS;
  const full = run(new AdamW(opts), initParams(), 0, 7);
  const first = new AdamW(opts);
  let p = initParams();
  for (let s = 0; s < 4; s++) p = first.step(p, gradsAt(s), lrAt(s)).params;
  const st = first.exportState();
  // the parameters as a checkpoint stores them (copies), then the first optimiser keeps running (its moments in place)
  const saved = Object.fromEntries(Object.entries(p).map(([n, t]) => [n, tensor(Float32Array.from(t.data()), { shape: [...t.shape] })]));
  const continued = run(first, p, 4, 7);
  const second = new AdamW(opts);
  second.importState(decodeSafetensors(encodeSafetensors(st.tensors, st.metadata)), saved);
  const resumed = run(second, saved, 4, 7);
  for (let s = 0; s < 3; s++)
    for (const n of Object.keys(SHAPES)) sameBits(continued[s]![n]!, full[s + 4]![n]!, `step ${s + 5}: ${n} (continued)`);
  for (let s = 0; s < 3; s++) for (const n of Object.keys(SHAPES)) sameBits(resumed[s]![n]!, full[s + 4]![n]!, `step ${s + 5}: ${n}`);
});

test("AdamW on the CPU backend updates its moments in place: the same arrays step after step, apart from every parameter's", () => {
  const opt = new AdamW(OPTS);
  let p = initParams();
  let first: ArrayLike<number> | null = null;
  for (let s = 0; s < 3; s++) {
    const before = Float32Array.from(p["wte.weight"]!.data());
    const old = p;
    p = opt.step(p, gradsAt(s), lrAt(s)).params;
    const m = opt.moments("wte.weight")!.m.data();
    first ??= m;
    assert.equal(m, first, `step ${s + 1}: m is the optimiser's same array`);
    assert.notEqual(p["wte.weight"]!.data(), old["wte.weight"]!.data(), "a new parameter array");
    sameBits(old["wte.weight"]!.data(), before, `step ${s + 1}: the input parameters are not modified`);
  }
});
