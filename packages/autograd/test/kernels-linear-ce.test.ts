/**
 * The fused projection + cross-entropy kernels against a float64 reference that materialises the logits:
 * float32 SIMD on one and two threads, float32 portable, float64; several chunk sizes (one row per chunk up to
 * everything in one chunk), odd sizes, ignored rows, and invalid input.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { simdKernelsAvailable } from "../src/backend/cpu/kernels/gemm.js";
import { withKernelMode } from "./kernel-modes.js";
import {
  linearCrossEntropyBackwardRows,
  linearCrossEntropyRows,
  linearCrossEntropyWithGradRows,
} from "../src/backend/cpu/kernels/linear-ce.js";

function rand(n: number, seed: number, scale: number): Float64Array {
  let s = seed >>> 0;
  return Float64Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  });
}

/** Loss, lse, dx and dw in float64 from explicit logits l = x·wᵀ. */
function reference(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  t: Int32Array,
  g: ArrayLike<number>,
  n: number,
  e: number,
  v: number,
  ignore: number,
) {
  const loss = new Float64Array(n),
    lse = new Float64Array(n),
    dx = new Float64Array(n * e),
    dw = new Float64Array(v * e);
  const l = new Float64Array(v);
  for (let r = 0; r < n; r++) {
    let m = -Infinity;
    for (let c = 0; c < v; c++) {
      let acc = 0;
      for (let k = 0; k < e; k++) acc += x[r * e + k]! * w[c * e + k]!;
      l[c] = acc;
      m = Math.max(m, acc);
    }
    let s = 0;
    for (let c = 0; c < v; c++) s += Math.exp(l[c]! - m);
    lse[r] = m + Math.log(s);
    if (t[r] === ignore) continue;
    loss[r] = lse[r]! - l[t[r]!]!;
    for (let c = 0; c < v; c++) {
      const d = g[r]! * (Math.exp(l[c]! - lse[r]!) - (c === t[r] ? 1 : 0));
      for (let k = 0; k < e; k++) {
        dx[r * e + k] += d * w[c * e + k]!;
        dw[c * e + k] += d * x[r * e + k]!;
      }
    }
  }
  return { loss, lse, dx, dw };
}

function assertNear(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(got.length >= want.length, true, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    assert.ok(
      err <= atol + rtol * Math.max(Math.abs(want[i]!), scale * 0.1),
      `${what}[${i}]: got ${got[i]}, expected ${want[i]} (error ${err})`,
    );
  }
}

const modes = [
  { name: "float32 SIMD, 1 thread", f64: false, portable: false, threads: 1 },
  { name: "float32 SIMD, 2 threads", f64: false, portable: false, threads: 2 },
  { name: "float32 portable", f64: false, portable: true, threads: 1 },
  { name: "float64", f64: true, portable: false, threads: 1 },
];

for (const mode of modes) {
  test(`linearCrossEntropyRows / BackwardRows vs float64 logits (${mode.name})`, (t) => {
    if (!mode.f64 && !mode.portable && !simdKernelsAvailable()) return t.skip("WebAssembly SIMD unavailable");
    withKernelMode(mode, () => {
      const F = mode.f64 ? Float64Array : Float32Array;
      const cases: [number, number, number, number | undefined][] = [
        [1, 1, 2, undefined],
        [7, 3, 11, 1],
        [37, 9, 53, 5],
        [37, 9, 53, undefined],
        [130, 17, 301, 64],
        [64, 128, 2000, 16],
      ];
      for (const [n, e, v, chunk] of cases) {
        const x = F.from(rand(n * e, n + e, 1.5)),
          w = F.from(rand(v * e, v + 7, 1.5)),
          g = F.from(rand(n, 3, 1));
        const tg = Int32Array.from({ length: n }, (_, i) => (i % 5 === 2 ? -100 : (i * 7919 + 3) % v));
        const ref = reference(x, w, tg, g, n, e, v, -100);
        const loss = new F(n),
          lse = new F(n);
        linearCrossEntropyRows(x, w, tg, n, e, v, -100, loss, lse, chunk);
        const label = `n ${n} e ${e} v ${v} chunk ${chunk ?? "auto"}`;
        const rtol = mode.f64 ? 1e-12 : 2e-5;
        assertNear(loss, ref.loss, rtol, mode.f64 ? 1e-12 : 1e-5, `${label} loss`);
        assertNear(lse, ref.lse, rtol, mode.f64 ? 1e-12 : 1e-5, `${label} lse`);
        const dx = new F(n * e).fill(NaN),
          dw = new F(v * e).fill(NaN);
        linearCrossEntropyBackwardRows(x, w, tg, lse, g, dx, dw, n, e, v, -100, chunk);
        assertNear(dx, ref.dx, mode.f64 ? 1e-11 : 1e-4, mode.f64 ? 1e-12 : 1e-6, `${label} dx`);
        assertNear(dw, ref.dw, mode.f64 ? 1e-11 : 1e-4, mode.f64 ? 1e-12 : 1e-6, `${label} dw`);
        // forward and backward in one pass (unit weight per row)
        const ref1 = reference(x, w, tg, new Float64Array(n).fill(1), n, e, v, -100);
        const l1 = new F(n),
          e1 = new F(n),
          dx1 = new F(n * e).fill(NaN),
          dw1 = new F(v * e).fill(NaN);
        linearCrossEntropyWithGradRows(x, w, tg, n, e, v, -100, l1, e1, dx1, dw1, chunk);
        assertNear(l1, ref1.loss, rtol, mode.f64 ? 1e-12 : 1e-5, `${label} loss (with grad)`);
        assertNear(dx1, ref1.dx, mode.f64 ? 1e-11 : 1e-4, mode.f64 ? 1e-12 : 1e-6, `${label} dx (with grad)`);
        assertNear(dw1, ref1.dw, mode.f64 ? 1e-11 : 1e-4, mode.f64 ? 1e-12 : 1e-6, `${label} dw (with grad)`);
      }
    });
  });
}

test("linearCrossEntropyRows refuses bad input with a clear message", () => {
  const x = new Float32Array(6),
    w = new Float32Array(9),
    loss = new Float32Array(2),
    lse = new Float32Array(2);
  assert.throws(
    () => linearCrossEntropyRows(x, w, new Int32Array([0, 3]), 2, 3, 3, -100, loss, lse),
    /target 3 at row 1 is out of range; expected 0 <= target < 3/,
  );
  assert.throws(
    () => linearCrossEntropyRows(x, new Float32Array(8), new Int32Array([0, 1]), 2, 3, 3, -100, loss, lse),
    /w has 8 elements, expected at least 9 \(\[3,3\]\)/,
  );
  assert.throws(
    () => linearCrossEntropyRows(x, new Float64Array(9) as unknown as Float32Array, new Int32Array([0, 1]), 2, 3, 3, -100, loss, lse),
    /w is a Float64Array; expected a Float32Array like x/,
  );
});
