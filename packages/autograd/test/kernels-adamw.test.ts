/**
 * The fused AdamW update over arrays (`adamwUpdateArrays`): the WebAssembly SIMD kernel on 1 and 2 threads and the
 * JavaScript loop (portable kernels forced, and float64) against a reference written here from the formula, element
 * by element in float64 with each stored value rounded once (Math.fround for float32), bit for bit, on odd sizes
 * around the kernel threshold and the chunk size.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { withKernelMode } from "./kernel-modes.js";
import { simdKernelsAvailable } from "../src/backend/cpu/kernels/gemm.js";
import { ADAMW_KERNEL_MIN, adamwUpdateArrays, adamwUpdateMany, type AdamWUpdateConstants } from "../src/backend/cpu/kernels/adamw.js";

type Float = Float32Array | Float64Array;

/** Reference: the AdamW formula per element, float64, rounded to the storage type by `round`. */
function reference(p: Float, g: Float, m: Float, v: Float, c: AdamWUpdateConstants) {
  const round = p instanceof Float32Array ? Math.fround : (x: number) => x;
  const n = p.length;
  const out = { p: new Float64Array(n), m: new Float64Array(n), v: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    const gs = g[i]! * c.scale;
    const mNew = c.beta1 * m[i]! + (1 - c.beta1) * gs;
    const vNew = c.beta2 * v[i]! + (1 - c.beta2) * gs * gs;
    const mHat = mNew / c.bc1;
    const vHat = vNew / c.bc2;
    const step = mHat / (Math.sqrt(vHat) + c.eps);
    const withDecay = c.decay === 0 ? step : step + c.decay * p[i]!;
    out.p[i] = round(p[i]! - c.lr * withDecay);
    out.m[i] = round(mNew);
    out.v[i] = round(vNew);
  }
  return out;
}

/** Asserts that `got` holds exactly the values of `want` (a float64 array of values already rounded), bit for bit. */
function sameBits(got: Float, want: Float64Array, what: string): void {
  const w = got instanceof Float32Array ? Float32Array.from(want) : want;
  const a = new Uint8Array(got.buffer, got.byteOffset, got.byteLength);
  const b = new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
  if (Buffer.compare(a, b) === 0) return;
  const i = got.findIndex((x, k) => !Object.is(x, w[k]));
  assert.fail(`${what}: element ${i} is ${got[i]}, expected ${w[i]} (${got.length} elements)`);
}

/** Deterministic pseudo-random arrays (an LCG), moments non-negative where they must be. */
function inputs(n: number, seed: number, ctor: typeof Float32Array | typeof Float64Array) {
  let s = seed >>> 0 || 1;
  const r = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
  const fill = (f: () => number): Float => {
    const a = new ctor(n);
    for (let i = 0; i < n; i++) a[i] = f();
    return a;
  };
  const p = fill(() => 2 * r());
  const g = fill(() => 0.1 * r() * (1 + 100 * Math.abs(r()) ** 4));
  const m = fill(() => 0.01 * r());
  const v = fill(() => 1e-4 * Math.abs(r()));
  return { p, g, m, v };
}

function constants(t: number, decay: number, scale: number): AdamWUpdateConstants {
  const beta1 = 0.9,
    beta2 = 0.95;
  return { beta1, beta2, eps: 1e-8, scale, bc1: 1 - beta1 ** t, bc2: 1 - beta2 ** t, decay, lr: 3e-3 };
}

/** Runs three updates in `mode` and checks every one against the reference. */
function checkAgainstReference(n: number, mode: { portable: boolean; threads: number }, ctor: typeof Float32Array | typeof Float64Array) {
  const { p, g, m, v } = inputs(n, n + 7, ctor);
  let cur: Float = p;
  const rm = ctor.from(m),
    rv = ctor.from(v);
  for (let t = 1; t <= 3; t++) {
    const c = constants(t, t === 2 ? 0 : 0.1, t === 3 ? 0.37 : 1);
    const want = reference(cur, g, rm, rv, c);
    const out = new ctor(n);
    withKernelMode(mode, () => adamwUpdateArrays(cur, g, m, v, out, c));
    const where = `n ${n}, ${ctor.name}, ${JSON.stringify(mode)}, update ${t}`;
    sameBits(out, want.p, `${where}: parameter`);
    sameBits(m, want.m, `${where}: m`);
    sameBits(v, want.v, `${where}: v`);
    rm.set(want.m);
    rv.set(want.v);
    cur = out;
  }
}

const SIZES = [1, 2, 7, ADAMW_KERNEL_MIN - 1, ADAMW_KERNEL_MIN, ADAMW_KERNEL_MIN + 1, 65_537, 2 * 32_768 + 3, 300_001];

test("adamwUpdateArrays: float32 kernel on 1 and 2 threads and the portable loop equal the float64 reference, bit for bit", () => {
  const modes = [
    { portable: true, threads: 1 },
    ...(simdKernelsAvailable()
      ? [
          { portable: false, threads: 1 },
          { portable: false, threads: 2 },
        ]
      : []),
  ];
  for (const n of SIZES) for (const mode of modes) checkAgainstReference(n, mode, Float32Array);
});

test("adamwUpdateArrays: float64 arrays run the loop and equal the reference, bit for bit", () => {
  for (const n of [1, 5, ADAMW_KERNEL_MIN + 3]) checkAgainstReference(n, { portable: false, threads: 2 }, Float64Array);
});

test("adamwUpdateArrays: property — random sizes, constants and values, kernel and loop agree with the reference", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3 * ADAMW_KERNEL_MIN }),
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.double({ min: 0, max: 0.999, noNaN: true }),
      fc.double({ min: 0, max: 0.9999, noNaN: true }),
      fc.double({ min: 1e-12, max: 1e-3, noNaN: true }),
      fc.double({ min: 0.01, max: 1, noNaN: true }),
      fc.integer({ min: 1, max: 50 }),
      fc.constantFrom(0, 0.01, 0.1),
      fc.boolean(),
      (n, seed, beta1, beta2, eps, scale, t, decay, portable) => {
        const { p, g, m, v } = inputs(n, seed, Float32Array);
        const c = { beta1, beta2, eps, scale, bc1: 1 - beta1 ** t, bc2: 1 - beta2 ** t, decay, lr: 1e-3 };
        const want = reference(p, g, m, v, c);
        withKernelMode({ portable, threads: 2 }, () => adamwUpdateArrays(p, g, m, v, p, c)); // in place: out = p
        sameBits(p, want.p, "parameter");
        sameBits(m, want.m, "m");
        sameBits(v, want.v, "v");
      },
    ),
    { numRuns: 40 },
  );
});

test("adamwUpdateMany: parameters of odd sizes and three decays laid end to end equal the reference per parameter, bit for bit", () => {
  const sizes = [3, 40_001, 1, 70_003, 129, 5_000, 2];
  const decays = [0.1, 0, 0.1, 0.05, 0, 0.1, 0.05];
  const modes = [
    { portable: true, threads: 1 },
    ...(simdKernelsAvailable()
      ? [
          { portable: false, threads: 1 },
          { portable: false, threads: 2 },
        ]
      : []),
  ];
  for (const mode of modes) {
    const items = sizes.map((n, i) => ({ ...inputs(n, 31 * i + 5, Float32Array), decay: decays[i]! }));
    const f64 = { ...inputs(9, 77, Float64Array), decay: 0.1 };
    for (let t = 1; t <= 2; t++) {
      const c = constants(t, 0, t === 2 ? 0.61 : 1);
      const all = [...items, f64];
      const want = all.map((it) => reference(it.p, it.g, it.m, it.v, { ...c, decay: it.decay }));
      const outs = all.map((it) => new (it.p.constructor as typeof Float32Array)(it.p.length) as Float);
      withKernelMode(mode, () =>
        adamwUpdateMany(
          all.map((it, i) => ({ ...it, out: outs[i]! })),
          c,
        ),
      );
      all.forEach((it, i) => {
        const where = `${JSON.stringify(mode)}, update ${t}, parameter ${i} (${it.p.length} elements, λ ${it.decay})`;
        sameBits(outs[i]!, want[i]!.p, `${where}: parameter`);
        sameBits(it.m, want[i]!.m, `${where}: m`);
        sameBits(it.v, want[i]!.v, `${where}: v`);
        it.p = outs[i]! as never;
      });
    }
  }
  assert.throws(
    () =>
      adamwUpdateMany(
        [
          {
            p: new Float32Array(2),
            g: new Float32Array(2),
            m: new Float32Array(2),
            v: new Float32Array(1),
            out: new Float32Array(2),
            decay: 0,
          },
        ],
        constants(1, 0, 1),
      ),
    /adamwUpdateMany: item 0: v has 1 elements; expected 2 like p/,
  );
});

test("adamwUpdateArrays: errors name the array or constant and what was expected", () => {
  const a = (n: number) => new Float32Array(n);
  const c = constants(1, 0, 1);
  assert.throws(() => adamwUpdateArrays(a(4), a(3), a(4), a(4), a(4), c), /adamwUpdateArrays: g has 3 elements; expected 4 like p/);
  assert.throws(
    () => adamwUpdateArrays(a(4), a(4), new Float64Array(4), a(4), a(4), c),
    /adamwUpdateArrays: m is a Float64Array; expected a Float32Array like p/,
  );
  assert.throws(
    () => adamwUpdateArrays(a(4), a(4), a(4), a(4), a(4), { ...c, lr: Number.NaN }),
    /adamwUpdateArrays: constant lr is NaN; expected a finite number/,
  );
  assert.throws(
    () => adamwUpdateArrays(new Int32Array(4) as never, a(4), a(4), a(4), a(4), c),
    /adamwUpdateArrays: p must be a Float32Array or Float64Array/,
  );
});
