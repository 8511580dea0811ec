/**
 * The optimiser and the gradient accumulation as tensor code (and the fused CPU loops of the optimiser): checked
 * element by element against host loops written independently here (float64 arithmetic, results rounded to
 * float32), bit for bit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { random, tensor, type Tensor } from "@qkvflow/autograd";
import { AdamW, GradientAccumulator, globalNorm, globalNormTensor, type OptimizerKernel } from "../src/index.js";

const f32 = (xs: number[]): Tensor => tensor(Float32Array.from(xs));
const bits = (xs: ArrayLike<number>): string[] => Array.from(xs, (x) => (Object.is(x, -0) ? "-0" : String(x)));

/** Host AdamW over float32 storage: every element in float64, moments and parameters rounded to float32. */
class HostAdamW {
  m: Record<string, Float32Array> = {};
  v: Record<string, Float32Array> = {};
  t = 0;
  constructor(
    private readonly o: { b1: number; b2: number; eps: number; wd: number; clip: number | null; decays: (n: string) => boolean },
  ) {}
  step(p: Record<string, Float32Array>, g: Record<string, Float32Array>, lr: number): Record<string, Float32Array> {
    let sq = 0;
    for (const n of Object.keys(g)) for (const x of g[n]!) sq += x * x;
    const norm = Math.sqrt(sq);
    const scale = this.o.clip === null || norm < this.o.clip ? 1 : this.o.clip / norm;
    this.t++;
    const out: Record<string, Float32Array> = {};
    for (const n of Object.keys(g)) {
      const m = (this.m[n] ??= new Float32Array(g[n]!.length));
      const v = (this.v[n] ??= new Float32Array(g[n]!.length));
      const lam = this.o.decays(n) ? this.o.wd : 0;
      out[n] = p[n]!.map((pi, i) => {
        const gi = scale === 1 ? g[n]![i]! : g[n]![i]! * scale;
        const mi = this.o.b1 * m[i]! + (1 - this.o.b1) * gi;
        const vi = this.o.b2 * v[i]! + (1 - this.o.b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const upd = mi / (1 - this.o.b1 ** this.t) / (Math.sqrt(vi / (1 - this.o.b2 ** this.t)) + this.o.eps);
        return pi - lr * (upd + lam * pi);
      });
    }
    return out;
  }
}

for (const kernel of ["ops", "auto"] as OptimizerKernel[]) {
  test(`AdamW (kernel ${kernel}): float32 parameters and moments equal a float64 host loop rounded to float32, bit for bit`, () => {
    const shapes: Record<string, number[]> = { "wte.weight": [40, 8], "h.w": [8, 16], "h.b": [16] };
    const o = { b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.1, clip: 1 as number | null, decays: (n: string) => n === "wte.weight" };
    const opt = new AdamW({
      beta1: o.b1,
      beta2: o.b2,
      eps: o.eps,
      weightDecay: o.wd,
      decayPatterns: ["wte\\.weight"],
      maxGradNorm: o.clip,
      kernel,
    });
    const host = new HostAdamW(o);
    let p: Record<string, Tensor> = {};
    let hp: Record<string, Float32Array> = {};
    for (const [i, [n, s]] of Object.entries(shapes).entries()) {
      p[n] = random.normal(random.key(i), s, { std: 0.5 });
      hp[n] = Float32Array.from(p[n]!.data());
    }
    let clipped = 0;
    for (let s = 0; s < 12; s++) {
      const g: Record<string, Tensor> = {};
      for (const [i, [n, sh]] of Object.entries(shapes).entries())
        g[n] = random.normal(random.key(100 * s + i), sh, { std: s % 3 === 0 ? 0.5 : 0.02 });
      const lr = 0.01 * (1 + Math.cos(s));
      const r = opt.step(p, g, lr);
      if (r.clipScale !== 1) clipped++;
      hp = host.step(hp, Object.fromEntries(Object.entries(g).map(([n, t]) => [n, t.data() as Float32Array])), lr);
      p = r.params;
      for (const n of Object.keys(shapes)) {
        assert.equal(p[n]!.dtype, "float32");
        assert.deepEqual(bits(p[n]!.data()), bits(hp[n]!), `step ${s + 1}: parameter ${n}`);
        const mv = opt.moments(n)!;
        assert.deepEqual(bits(mv.m.data()), bits(host.m[n]!), `step ${s + 1}: m of ${n}`);
        assert.deepEqual(bits(mv.v.data()), bits(host.v[n]!), `step ${s + 1}: v of ${n}`);
      }
    }
    assert.ok(clipped > 0 && clipped < 12, `${clipped} of 12 steps clipped; expected some, not all`);
  });
}

test("AdamW: the tensor-op and the fused CPU kernels agree bit for bit (float32 and float64 parameters)", () => {
  for (const dtype of ["float32", "float64"] as const) {
    const opts = { beta2: 0.95, weightDecay: 0.1, decayPatterns: ["a"], maxGradNorm: 0.3 };
    const a = new AdamW({ ...opts, kernel: "ops" });
    const b = new AdamW({ ...opts, kernel: "auto" });
    let pa: Record<string, Tensor> = {
      a: random.normal(random.key(1), [5, 7], { dtype }),
      b: random.normal(random.key(2), [7], { dtype }),
    };
    let pb = pa;
    for (let s = 0; s < 6; s++) {
      const g = {
        a: random.normal(random.key(10 + s), [5, 7], { std: 0.2, dtype }),
        b: random.normal(random.key(20 + s), [7], { std: 0.01, dtype }),
      };
      const ra = a.step(pa, g, 0.02),
        rb = b.step(pb, g, 0.02);
      assert.equal(ra.gradNorm, rb.gradNorm, `${dtype} step ${s + 1}: norm`);
      pa = ra.params;
      pb = rb.params;
      for (const n of ["a", "b"]) {
        assert.equal(pb[n]!.dtype, dtype);
        assert.deepEqual(bits(pb[n]!.data()), bits(pa[n]!.data()), `${dtype} step ${s + 1}: ${n}`);
        assert.deepEqual(bits(b.moments(n)!.v.data()), bits(a.moments(n)!.v.data()), `${dtype} step ${s + 1}: v of ${n}`);
      }
    }
  }
  assert.throws(() => new AdamW({ kernel: "gpu" as never }), /AdamW: kernel is "gpu"; expected 'auto' or 'ops'/);
});

test("AdamW precision float32: the update stays in float32 and agrees with the float64 update to float32 accuracy", () => {
  const p = { w: random.normal(random.key(1), [64], { std: 0.5 }) };
  const a = new AdamW({ weightDecay: 0.1, maxGradNorm: 1 });
  const b = new AdamW({ weightDecay: 0.1, maxGradNorm: 1, precision: "float32" });
  let pa: Record<string, Tensor> = p,
    pb: Record<string, Tensor> = p;
  for (let s = 0; s < 5; s++) {
    const g = { w: random.normal(random.key(10 + s), [64], { std: 0.3 }) };
    pa = a.step(pa, g, 0.01).params;
    pb = b.step(pb, g, 0.01).params;
  }
  const x = pa.w!.data(),
    y = pb.w!.data();
  for (let i = 0; i < x.length; i++)
    assert.ok(Math.abs(x[i]! - y[i]!) <= 1e-5 * Math.max(1, Math.abs(x[i]!)), `w[${i}]: ${x[i]} vs ${y[i]}`);
  assert.throws(() => new AdamW({ precision: "half" as never }), /AdamW: precision is "half"; expected 'auto' or 'float32'/);
});

test("globalNorm: one float64 sum over the gradients end to end, equal to the host loop; a scalar tensor on the backend", () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 0, maxLength: 20 }), { minLength: 1, maxLength: 4 }),
      (parts) => {
        const g = Object.fromEntries(parts.map((xs, i) => [`g${i}`, f32(xs)]));
        let s = 0;
        for (const xs of parts) for (const x of xs) s += Math.fround(x) * Math.fround(x);
        assert.equal(globalNorm(g), Math.sqrt(s));
        assert.equal(globalNorm(g, { kernel: "ops" }), Math.sqrt(s));
        const t = globalNormTensor(g);
        assert.deepEqual([t.shape.length, t.dtype], [0, "float64"]);
      },
    ),
    { numRuns: 60 },
  );
  assert.equal(globalNorm({}), 0);
  assert.equal(globalNorm({}, { kernel: "ops" }), 0);
  for (const kernel of ["ops", "auto"] as OptimizerKernel[]) {
    assert.throws(
      () => globalNorm({ i: tensor(Int32Array.from([1])) }, { kernel }),
      /globalNorm: gradient 'i' is int32; expected float32 or float64/,
    );
  }
});

test("GradientAccumulator (tensor ops and fused CPU loop): the mean equals a float64 host sum divided by the count and rounded, bit for bit", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.float({ min: -10, max: 10, noNaN: true }), { minLength: 6, maxLength: 6 }),
      fc.integer({ min: 0, max: 1000 }),
      fc.constantFrom<OptimizerKernel>("ops", "auto"),
      (count, base, seed, kernel) => {
        const acc = new GradientAccumulator("auto", kernel);
        const micro = Array.from({ length: count }, (_, j) => ({
          loss: tensor(Float32Array.from([base[0]! + j])).reshape([]),
          a: f32(base.slice(0, 4).map((x, i) => x * (j + 1) + i / 7)),
          b: random.normal(random.key(seed + j), [2, 3]),
        }));
        for (const m of micro) acc.add(m.loss, { a: m.a, b: m.b });
        assert.equal(acc.count, count);
        const r = acc.mean();
        assert.equal(r.count, count);
        assert.equal(acc.count, 0);
        let ls = 0;
        for (const m of micro) ls += m.loss.item();
        assert.equal(r.loss, ls / count);
        for (const k of ["a", "b"] as const) {
          const n = micro[0]![k].size;
          const want = new Float32Array(n);
          for (let i = 0; i < n; i++) {
            let s = 0;
            for (const m of micro) s += m[k].data()[i]!;
            want[i] = s / count;
          }
          assert.equal(r.grads[k]!.dtype, "float32");
          assert.deepEqual(bits(r.grads[k]!.data()), bits(want), `${k} with ${count} micro-batches (kernel ${kernel})`);
        }
        if (count === 1) assert.equal(r.grads.a, micro[0]!.a, "a single micro-batch passes through");
      },
    ),
    { numRuns: 60 },
  );
});

test("GradientAccumulator: errors name the problem", () => {
  const acc = new GradientAccumulator();
  assert.throws(() => acc.mean(), /GradientAccumulator.mean: nothing was added/);
  assert.throws(() => acc.add(f32([1, 2]), {}), /GradientAccumulator.add: the loss has shape \[2\]; expected a scalar/);
  acc.add(f32([1]).reshape([]), { a: f32([1]) });
  assert.throws(() => acc.add(f32([1]).reshape([]), { b: f32([1]) }), /gradients for b; expected the names of the first micro-batch \(a\)/);
});
