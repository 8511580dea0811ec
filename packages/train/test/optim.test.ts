import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeSafetensors, encodeSafetensors, tensor, type Tensor } from "@qkvflow/autograd";
import {
  AdamW,
  clipByGlobalNorm,
  clipScale,
  decayedNames,
  defaultDecayPatterns,
  globalNorm,
  makeSchedule,
  warmupSteps,
} from "../src/index.js";

const f64 = (xs: number[]): Tensor => tensor(Float64Array.from(xs), { dtype: "float64" });
const arr = (t: Tensor): number[] => Array.from(t.data());

function close(a: number, b: number, tol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
}

test("schedule: warmup is linear from 0, cosine decays to minLrRatio (hand values)", () => {
  const lr = makeSchedule({ lr: 1, totalSteps: 100, warmupRatio: 0.1, minLrRatio: 0.1 });
  assert.equal(warmupSteps(100, 0.1), 10);
  assert.equal(lr(0), 0);
  close(lr(5), 0.5, 1e-15, "mid-warmup");
  close(lr(10), 1, 1e-15, "peak");
  // D = 90: step 55 is half-way through the decay: 0.9 * 0.5 * (1 + cos(pi/2)) + 0.1 = 0.55
  close(lr(55), 0.55, 1e-15, "half-way");
  close(lr(99), 0.9 * 0.5 * (1 + Math.cos((Math.PI * 89) / 90)) + 0.1, 1e-15, "last update");
  close(lr(100), 0.1, 1e-15, "end");
  close(lr(1000), 0.1, 1e-15, "past the end");
  // The paper's 1 % warmup on 10001 steps: 100 warmup steps.
  const paper = makeSchedule({ lr: 6e-4, totalSteps: 10001, warmupRatio: 0.01, minLrRatio: 0.1 });
  close(paper(50), 3e-4, 1e-15, "paper warmup");
  close(paper(100), 6e-4, 1e-15, "paper peak");
});

test("schedule: linear and constant shapes, and bad options", () => {
  const lin = makeSchedule({ lr: 2, totalSteps: 20, warmupRatio: 0, minLrRatio: 0.5, kind: "linear" });
  close(lin(0), 2, 1e-15, "linear start");
  close(lin(10), 2 * (0.5 * 0.5 + 0.5), 1e-15, "linear middle");
  const c = makeSchedule({ lr: 3, totalSteps: 10, warmupRatio: 0.2, kind: "constant" });
  assert.deepEqual([0, 1, 2, 5, 9].map(c), [0, 1.5, 3, 3, 3]);
  assert.throws(() => makeSchedule({ lr: 1, totalSteps: 0 }), /makeSchedule: totalSteps must be a positive integer, got 0/);
  assert.throws(() => makeSchedule({ lr: 1, totalSteps: 10, kind: "exp" as never }), /expected one of cosine, linear, constant/);
});

test("schedule: property — warmup increases, decay never increases, values within [min, lr]", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 400 }),
      fc.double({ min: 0, max: 0.5, noNaN: true }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (n, w, a) => {
        const s = makeSchedule({ lr: 1, totalSteps: n, warmupRatio: w, minLrRatio: a });
        const W = warmupSteps(n, w);
        for (let i = 1; i < n; i++) {
          if (i < W) assert.ok(s(i) > s(i - 1));
          else if (i > W) assert.ok(s(i) <= s(i - 1) + 1e-15);
          if (i >= W) assert.ok(s(i) >= a - 1e-12 && s(i) <= 1 + 1e-12);
        }
      },
    ),
    { numRuns: 60 },
  );
});

test("clipping: global norm and optax clip_by_global_norm scale", () => {
  const g = { a: f64([3, 0]), b: f64([0, 4]) };
  assert.equal(globalNorm(g), 5);
  assert.equal(clipScale(5, 1), 0.2);
  assert.equal(clipScale(0.5, 1), 1);
  assert.equal(clipScale(5, null), 1);
  const c = clipByGlobalNorm(g, 1);
  assert.equal(c.norm, 5);
  assert.deepEqual(arr(c.grads.a!), [0.6000000000000001, 0]);
  close(globalNorm(c.grads), 1, 1e-15, "clipped norm");
  const same = clipByGlobalNorm(g, 10);
  assert.equal(same.grads.a, g.a, "not clipped: same tensors");
});

test("AdamW: first step has the closed form p − lr·(g/(|g|+ε) + λp) (m̂ = g, v̂ = g²)", () => {
  const lr = 0.1,
    wd = 0.01,
    eps = 1e-8;
  const opt = new AdamW({ beta1: 0.9, beta2: 0.999, eps, weightDecay: wd, decayPatterns: ["w"] });
  const p = { w: f64([1, -2, 0.5]), b: f64([0.3]) };
  const g = { w: f64([0.2, -0.5, 1e-3]), b: f64([-4]) };
  const r = opt.step(p, g, lr);
  const want = (pi: number, gi: number, lam: number): number => pi - lr * (gi / (Math.abs(gi) + eps) + lam * pi);
  [1, -2, 0.5].forEach((pi, i) => close(arr(r.params.w!)[i]!, want(pi, [0.2, -0.5, 1e-3][i]!, wd), 1e-14, `w[${i}]`));
  close(arr(r.params.b!)[0]!, want(0.3, -4, 0), 1e-14, "b (no decay)");
  assert.equal(opt.count, 1);
});

/** Naive AdamW in float64, written independently of the implementation. */
function referenceAdamW(
  steps: { g: number[]; lr: number }[],
  p0: number[],
  o: { b1: number; b2: number; eps: number; wd: number; clip: number | null; decay: boolean },
): number[] {
  let p = [...p0];
  let m = p.map(() => 0);
  let v = p.map(() => 0);
  steps.forEach(({ g: g0, lr }, k) => {
    const n = Math.hypot(...g0);
    const g = o.clip !== null && n >= o.clip ? g0.map((x) => (x * o.clip!) / n) : g0;
    const t = k + 1;
    m = m.map((mi, i) => o.b1 * mi + (1 - o.b1) * g[i]!);
    v = v.map((vi, i) => o.b2 * vi + (1 - o.b2) * g[i]! * g[i]!);
    p = p.map((pi, i) => {
      const mh = m[i]! / (1 - o.b1 ** t);
      const vh = v[i]! / (1 - o.b2 ** t);
      return pi - lr * (mh / (Math.sqrt(vh) + o.eps) + (o.decay ? o.wd * pi : 0));
    });
  });
  return p;
}

test("AdamW: several steps with clipping and decay match a naive reference (hand-computed second step too)", () => {
  const o = { b1: 0.9, b2: 0.99, eps: 1e-6, wd: 0.1, clip: 1 as number | null, decay: true };
  const steps = [
    { g: [3, 4], lr: 0.1 },
    { g: [0.1, -0.2], lr: 0.05 },
    { g: [-1, 0.5], lr: 0.02 },
  ];
  const opt = new AdamW({ beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd, maxGradNorm: 1 });
  let params = { x: f64([1, 2]) };
  const norms: number[] = [];
  for (const s of steps) {
    const r = opt.step(params, { x: f64(s.g) }, s.lr);
    norms.push(r.gradNorm);
    params = { x: r.params.x! };
  }
  const ref = referenceAdamW(steps, [1, 2], o);
  arr(params.x).forEach((x, i) => close(x, ref[i]!, 1e-13, `x[${i}]`));
  assert.deepEqual(
    norms.map((n) => Math.round(n * 1e12) / 1e12),
    [5, Math.round(Math.hypot(0.1, 0.2) * 1e12) / 1e12, Math.round(Math.hypot(1, 0.5) * 1e12) / 1e12],
  );
  // Second step by hand for x[0]: clipped g1 = 0.6, g2 = 0.1 (not clipped).
  const m2 = 0.9 * (0.1 * 0.6) + 0.1 * 0.1;
  const v2 = 0.99 * (0.01 * 0.36) + 0.01 * 0.01;
  const p1 = 1 - 0.1 * (0.6 / (0.6 + 1e-6) + 0.1 * 1);
  const p2 = p1 - 0.05 * (m2 / (1 - 0.81) / (Math.sqrt(v2 / (1 - 0.9801)) + 1e-6) + 0.1 * p1);
  const two = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-6, weightDecay: 0.1, maxGradNorm: 1 });
  const a = two.step({ x: f64([1, 2]) }, { x: f64([3, 4]) }, 0.1);
  const b = two.step({ x: a.params.x! }, { x: f64([0.1, -0.2]) }, 0.05);
  close(arr(b.params.x!)[0]!, p2, 1e-13, "hand-computed step 2");
});

test("AdamW: property — matches the naive reference for random gradients and options", () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: 3, maxLength: 3 }), { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      fc.boolean(),
      (gs, clipOn, decay) => {
        const o = { b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.05, clip: clipOn ? 0.7 : null, decay };
        const opt = new AdamW({
          beta1: o.b1,
          beta2: o.b2,
          eps: o.eps,
          weightDecay: o.wd,
          maxGradNorm: o.clip,
          decayPatterns: decay ? [".*"] : [],
        });
        let p = f64([0.5, -1, 2]);
        const steps = gs.map((g, i) => ({ g, lr: 0.01 * (i + 1) }));
        for (const s of steps) p = opt.step({ p }, { p: f64(s.g) }, s.lr).params.p!;
        const ref = referenceAdamW(steps, [0.5, -1, 2], o);
        arr(p).forEach((x, i) => close(x, ref[i]!, 1e-9, `p[${i}]`));
      },
    ),
    { numRuns: 80 },
  );
});

test("AdamW: decay mask by full-name regex; the paper masks per model kind", () => {
  const names = [
    "wte.weight",
    "wpe.weight",
    "h.0.attn.c_attn.weight",
    "h.0.attn.c_attn.bias",
    "h.0.mlp.c_fc.weight",
    "h.0.ln_1.weight",
    "ln_f.weight",
    "h.0.attn.c_attn.lora_A",
  ];
  assert.deepEqual(decayedNames(names, defaultDecayPatterns("diffeqformer")), ["wte.weight", "wpe.weight"]);
  assert.deepEqual(decayedNames(names, defaultDecayPatterns("gpt2")), [
    "wte.weight",
    "wpe.weight",
    "h.0.attn.c_attn.weight",
    "h.0.mlp.c_fc.weight",
  ]);
  assert.deepEqual(decayedNames(names, defaultDecayPatterns("discretized")), names);
  assert.deepEqual(decayedNames(["xwte.weight"], ["wte\\.weight"]), [], "whole-name match");
  // A parameter outside the mask moves by the Adam step only.
  const opt = new AdamW({ weightDecay: 0.5, decayPatterns: ["wte\\.weight"] });
  const r = opt.step({ "wte.weight": f64([2]), "ln.weight": f64([2]) }, { "wte.weight": f64([1]), "ln.weight": f64([1]) }, 0.1);
  close(arr(r.params["ln.weight"]!)[0]!, 2 - 0.1 * (1 / (1 + 1e-8)), 1e-14, "undecayed");
  close(arr(r.params["wte.weight"]!)[0]!, 2 - 0.1 * (1 / (1 + 1e-8) + 0.5 * 2), 1e-14, "decayed");
  assert.throws(() => new AdamW({ decayPatterns: ["("] }), /compileDecayPatterns: pattern '\(' is not a valid regular expression/);
});

test("AdamW: state through safetensors resumes bit for bit (float32)", () => {
  const f32 = (xs: number[]): Tensor => tensor(Float32Array.from(xs));
  const gradsAt = (k: number): Record<string, Tensor> => ({ a: f32([Math.sin(k), Math.cos(k)]), b: f32([k / 10]) });
  const run = (n: number, opt: AdamW, p: Record<string, Tensor>, from = 0): Record<string, Tensor> => {
    for (let k = from; k < n; k++) p = opt.step(p, gradsAt(k), 0.01).params;
    return p;
  };
  const init = { a: f32([0.1, 0.2]), b: f32([0.3]) };
  const full = run(6, new AdamW({ weightDecay: 0.1, maxGradNorm: 0.5 }), init);
  const first = new AdamW({ weightDecay: 0.1, maxGradNorm: 0.5 });
  const mid = run(3, first, init);
  const st = first.exportState();
  const back = decodeSafetensors(encodeSafetensors(st.tensors, st.metadata));
  const second = new AdamW({ weightDecay: 0.1, maxGradNorm: 0.5 });
  second.importState(back, mid);
  assert.equal(second.count, 3);
  const resumed = run(6, second, mid, 3);
  assert.deepEqual(Array.from(resumed.a!.data()), Array.from(full.a!.data()));
  assert.deepEqual(Array.from(resumed.b!.data()), Array.from(full.b!.data()));
  assert.throws(
    () => second.importState(back, { a: init.a! }),
    /AdamW.importState: state is for a different parameter set \(missing: none; unexpected: b\)/,
  );
});

test("AdamW: errors name the problem", () => {
  const opt = new AdamW();
  assert.throws(
    () => opt.step({ a: f64([1]) }, { a: f64([1, 2]) }, 0.1),
    /AdamW.step: gradient 'a' is float64 \[2\] but the parameter is float64 \[1\]/,
  );
  assert.throws(() => opt.step({ a: f64([1]) }, { z: f64([1]) }, 0.1), /gradient 'z' has no parameter/);
  assert.throws(() => new AdamW({ beta1: 1 }), /AdamW: beta1 must be in \[0, 1\), got 1/);
});
