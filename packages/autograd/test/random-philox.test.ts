/**
 * The Philox-4x32-10 generator behind dropout: known-answer vectors, a second (BigInt) implementation of the
 * block function and of the documented dropout stream, statistical sanity, and the dropout op on the CPU kernel,
 * the composite (required primitives only) and the gpu.js backend in cpu mode.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import * as ag from "../src/index.js";
import { createGpuBackend } from "../src/backend/gpu/index.js";
import { composite } from "../src/ops/fused.js";
import { dropoutInto, dropoutKeepMask, dropThreshold, philox4x32, philoxStream } from "../src/random/philox.js";
import { dropoutF32, dropoutWasmAvailable } from "../src/backend/cpu/kernels/dropout-wasm.js";
import { setPortableForced } from "../src/backend/cpu/kernels/runtime.js";
import { ModuleBuilder } from "../src/backend/cpu/kernels/wasm-emitter.js";
import { RequiredOnlyBackend } from "./conformance/required-backend.js";

// ---------------------------------------------------------------- independent reference (BigInt, plainly written)

const MASK32 = 0xffffffffn;

function philoxRef(key: readonly number[], ctr: readonly number[], rounds = 10): number[] {
  let k = key.map(BigInt);
  let c = ctr.map(BigInt);
  for (let r = 0; r < rounds; r++) {
    if (r > 0) k = [(k[0] + 0x9e3779b9n) & MASK32, (k[1] + 0xbb67ae85n) & MASK32];
    const p0 = 0xd2511f53n * c[0];
    const p1 = 0xcd9e8d57n * c[2];
    c = [(p1 >> 32n) ^ c[1] ^ k[0], p1 & MASK32, (p0 >> 32n) ^ c[3] ^ k[1], p0 & MASK32];
  }
  return c.map(Number);
}

/** The documented stream: element i ↔ word i mod 4 of block ⌊i/4⌋ (counter (j mod 2³², ⌊j/2³²⌋, 0, 0)). */
function keepRef(k0: number, k1: number, n: number, rate: number): boolean[] {
  const t = BigInt(Math.round(rate * 2 ** 32));
  const out: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const j = BigInt(Math.floor(i / 4));
    const w = philoxRef([k0, k1], [Number(j & MASK32), Number(j >> 32n), 0, 0]);
    out.push(BigInt(w[i % 4]) >= t);
  }
  return out;
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });

describe("Philox-4x32-10", () => {
  test("known-answer vectors (Random123 kat_vectors, philox4x32 with 10 rounds)", () => {
    // Source: the kat_vectors file of the Random123 library (D. E. Shaw Research, Salmon et al., SC'11),
    // lines "philox4x32 10 <ctr0..3> <key0..1> <out0..3>".
    const kat: [number[], number[], number[]][] = [
      [
        [0, 0, 0, 0],
        [0, 0],
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
      ],
      [
        [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
        [0xffffffff, 0xffffffff],
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
      ],
      [
        [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
        [0xa4093822, 0x299f31d0],
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
      ],
    ];
    for (const [ctr, key, want] of kat) {
      assert.deepEqual(philox4x32(key, ctr), want);
      assert.deepEqual(philoxRef(key, ctr), want);
    }
  });

  test("agrees with a BigInt implementation on random keys and counters", () => {
    fc.assert(
      fc.property(fc.tuple(u32, u32), fc.tuple(u32, u32, u32, u32), (key, ctr) => {
        assert.deepEqual(philox4x32(key, ctr), philoxRef(key, ctr));
      }),
      { numRuns: 300 },
    );
  });

  test("rejects bad keys and counters", () => {
    assert.throws(() => philox4x32([1], [0, 0, 0, 0]), /key of 1 .* expected 2 and 4/);
    assert.throws(() => philox4x32([1, 2], [0, 0, 0, 2 ** 32]), /not an unsigned 32-bit integer/);
    assert.throws(() => dropThreshold(1), /expected 0 <= rate < 1/);
  });
});

describe("dropout stream", () => {
  test("the fused pass and the host mask follow the documented stream (odd sizes, several keys and rates)", () => {
    fc.assert(
      fc.property(u32, u32, fc.integer({ min: 0, max: 37 }), fc.double({ min: 0, max: 0.95, noNaN: true }), (k0, k1, n, rate) => {
        const ref = keepRef(k0, k1, n, rate);
        assert.deepEqual(Array.from(dropoutKeepMask(k0, k1, n, rate), Boolean), ref);
        const x = Float64Array.from({ length: n }, (_, i) => i + 1);
        const out = new Float64Array(n);
        const s = 1 / (1 - rate);
        dropoutInto(x, out, k0, k1, rate, s);
        assert.deepEqual(
          Array.from(out),
          ref.map((keep, i) => (keep ? (i + 1) * s : 0)),
        );
      }),
      { numRuns: 150 },
    );
  });

  test("a range [begin, end) of the pass equals the same elements of the whole pass", () => {
    const n = 1003;
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const whole = new Float32Array(n);
    dropoutInto(x, whole, 7, 9, 0.3, Math.fround(1 / 0.7));
    const parts = new Float32Array(n);
    for (const [b, e] of [
      [0, 400],
      [400, 1000],
      [1000, 1003],
    ])
      dropoutInto(x, parts, 7, 9, 0.3, Math.fround(1 / 0.7), b, e);
    assert.deepEqual(parts, whole);
    assert.throws(() => dropoutInto(x, parts, 7, 9, 0.3, 1, 3, 8), /multiple of 4/);
  });

  test("keep rate within binomial bounds for fixed seeds", () => {
    const n = 1 << 20;
    for (const [rate, k0, k1] of [
      [0.1, 0, 1],
      [0.5, 123, 456],
      [0.9, 0xdeadbeef, 42],
    ]) {
      const kept = dropoutKeepMask(k0, k1, n, rate).reduce((a, v) => a + v, 0);
      const mean = n * (1 - rate);
      const sd = Math.sqrt(n * rate * (1 - rate));
      assert.ok(Math.abs(kept - mean) < 5 * sd, `rate ${rate}: kept ${kept}, expected ${mean} ± ${5 * sd}`);
    }
  });

  test("low bits of every output word are uniform (chi-square over 256 bins, per word position)", () => {
    const blocks = 1 << 16;
    const w = new Uint32Array(4 * blocks);
    philoxStream(0x12345678, 0x9abcdef0, 0, blocks, w);
    for (let pos = 0; pos < 4; pos++) {
      const bins = new Float64Array(256);
      for (let j = 0; j < blocks; j++) bins[w[4 * j + pos] & 255]++;
      const e = blocks / 256;
      const chi2 = bins.reduce((a, o) => a + ((o - e) * (o - e)) / e, 0);
      // 255 degrees of freedom: mean 255, sd √510 ≈ 22.6; ±5 sd
      assert.ok(chi2 > 255 - 5 * Math.sqrt(510) && chi2 < 255 + 5 * Math.sqrt(510), `word ${pos}: chi² = ${chi2}`);
    }
  });

  test("different keys give different (independent-looking) masks", () => {
    const n = 1 << 16;
    const a = dropoutKeepMask(1, 2, n, 0.5),
      b = dropoutKeepMask(1, 3, n, 0.5),
      c = dropoutKeepMask(2, 2, n, 0.5);
    for (const [p, q] of [
      [a, b],
      [a, c],
      [b, c],
    ]) {
      let diff = 0;
      for (let i = 0; i < n; i++) diff += p[i] ^ q[i];
      // independent masks at rate ½ disagree on half the elements
      assert.ok(Math.abs(diff - n / 2) < 5 * Math.sqrt(n / 4), `disagreements ${diff} of ${n}`);
    }
  });
});

describe("dropout SIMD pass (WebAssembly)", () => {
  test("is available where WebAssembly SIMD is (Node 20)", () => {
    assert.equal(dropoutWasmAvailable(), true);
  });

  test("the emitter's i32x4.mul, i32x4.ge_u and i64x2.extmul_{low,high}_i32x4_u agree with BigInt arithmetic", () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const mb = new ModuleBuilder();
    mb.importMemory({ module: "env", name: "memory", initialPages: 1 });
    // inputs a, b at 0 and 16; outputs mul at 32, ge_u at 48, extmul low at 64, high at 80
    mb.func("f", [], [], (f) => {
      f.i32Const(32).i32Const(0).v128Load().i32Const(16).v128Load().i32x4Mul().v128Store();
      f.i32Const(48).i32Const(0).v128Load().i32Const(16).v128Load().i32x4GeU().v128Store();
      f.i32Const(64).i32Const(0).v128Load().i32Const(16).v128Load().i64x2ExtmulLowI32x4U().v128Store();
      f.i32Const(80).i32Const(0).v128Load().i32Const(16).v128Load().i64x2ExtmulHighI32x4U().v128Store();
    });
    const run = new WebAssembly.Instance(new WebAssembly.Module(mb.toBytes()), { env: { memory } }).exports.f as () => void;
    const u = new Uint32Array(memory.buffer);
    const wide = new BigUint64Array(memory.buffer);
    fc.assert(
      fc.property(fc.array(u32, { minLength: 8, maxLength: 8 }), (v) => {
        u.set(v);
        run();
        const a = v.slice(0, 4).map(BigInt),
          b = v.slice(4).map(BigInt);
        assert.deepEqual(
          Array.from(u.subarray(8, 12)),
          a.map((x, i) => Number((x * b[i]) & MASK32)),
        );
        assert.deepEqual(
          Array.from(u.subarray(12, 16)),
          a.map((x, i) => (x >= b[i] ? 0xffffffff : 0)),
        );
        assert.deepEqual(
          Array.from(wide.subarray(8, 12)),
          a.map((x, i) => x * b[i]),
        );
      }),
      { numRuns: 200 },
    );
  });

  test("equals the documented stream (BigInt reference) and the JavaScript pass bit for bit, odd sizes", () => {
    fc.assert(
      fc.property(u32, u32, fc.integer({ min: 0, max: 90 }), fc.double({ min: 0, max: 0.95, noNaN: true }), (k0, k1, n, rate) => {
        const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1) * 3);
        const simd = new Float32Array(n).fill(Number.NaN);
        const js = new Float32Array(n).fill(Number.NaN);
        dropoutF32(x, simd, k0, k1, rate);
        dropoutF32(x, js, k0, k1, rate, true);
        const s = Math.fround(1 / (1 - rate));
        const ref = keepRef(k0, k1, n, rate).map((keep, i) => (keep ? Math.fround(x[i] * s) : 0));
        assert.deepEqual(Array.from(simd), ref);
        assert.deepEqual(Array.from(js), ref);
      }),
      { numRuns: 150 },
    );
  });

  test("large input (memory growth) equals the JavaScript pass; the backend kernel with portable kernels forced too", () => {
    const n = 300_007;
    const x = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
    const simd = new Float32Array(n);
    const js = new Float32Array(n);
    dropoutF32(x, simd, 99, 100, 0.1);
    dropoutF32(x, js, 99, 100, 0.1, true);
    assert.deepEqual(simd, js);
    const k = ag.random.key(8);
    const t = ag.tensor(x);
    const fast = ag.dropout(t, 0.1, k).data();
    setPortableForced(true);
    try {
      assert.deepEqual(ag.dropout(t, 0.1, k).data(), fast);
    } finally {
      setPortableForced(false);
    }
  });
});

describe("dropout op", () => {
  const rate = 0.3;

  test("forward: x·s where the stream keeps, 0 elsewhere (float32 and float64)", () => {
    const k = ag.random.key(11);
    const [k0, k1] = k.words;
    const n = 2 * 3 * 7;
    const ref = keepRef(k0, k1, n, rate);
    for (const dtype of ["float32", "float64"] as const) {
      const vals = Array.from({ length: n }, (_, i) => Math.cos(i) * 3);
      const x = ag.tensor(vals, { dtype }).reshape([2, 3, 7]);
      const y = Array.from(ag.dropout(x, rate, k).data());
      const s = dtype === "float32" ? Math.fround(1 / (1 - rate)) : 1 / (1 - rate);
      const r = (v: number) => (dtype === "float32" ? Math.fround(v) : v);
      assert.deepEqual(
        y,
        ref.map((keep, i) => (keep ? r(r(vals[i]) * s) : 0)),
      );
    }
    assert.throws(() => ag.dropout(ag.tensor([1, 2], { dtype: "int32" }), rate, k), /dropout/);
  });

  test("the VJP and JVP use the forward's mask", () => {
    const k = ag.random.key(5);
    const x = ag.random.normal(ag.random.key(1), [5, 9]);
    const w = ag.random.normal(ag.random.key(2), [5, 9]);
    const y = ag.dropout(x, rate, k).data();
    const scaleAt = Array.from(y, (v, i) => (v === 0 ? 0 : v / x.data()[i]));
    const g = ag.grad((a: ag.Tensor) => ag.sum(ag.mul(ag.dropout(a, rate, k), w)))(x);
    const wd = w.data();
    const gd = g.data();
    for (let i = 0; i < 45; i++) assert.ok(Math.abs(gd[i] - scaleAt[i] * wd[i]) < 1e-5, `grad[${i}]`);
    const [, t] = ag.jvp((a: ag.Tensor) => ag.dropout(a, rate, k), [x], [w]) as [ag.Tensor, ag.Tensor];
    const td = t.data();
    for (let i = 0; i < 45; i++) assert.ok(Math.abs(td[i] - scaleAt[i] * wd[i]) < 1e-5, `jvp[${i}]`);
  });

  test("CPU kernel, composite on required primitives, and gpu.js (cpu mode) give the same values", () => {
    const k = ag.random.key(2024);
    const shape = [3, 5, 11];
    const vals = Array.from({ length: 165 }, (_, i) => 3 + Math.sin(i * 0.7) * 2);
    const cpu = Array.from(ag.dropout(ag.tensor(vals).reshape(shape), rate, k).data());
    const x = ag.tensor(vals).reshape(shape);
    const comp = ag
      .getBackend()
      .read({ buf: composite(ag.getBackend(), "dropout", x.info, k.words[0], k.words[1], rate), shape, dtype: "float32" });
    assert.deepEqual(Array.from(comp), cpu);
    for (const be of [new RequiredOnlyBackend("required-only-dropout"), createGpuBackend({ mode: "cpu", name: "gpu-cpu-dropout" })]) {
      ag.setBackend(be);
      try {
        const y = ag.dropout(ag.tensor(vals).reshape(shape), rate, k);
        assert.equal(y._backend, be);
        assert.deepEqual(Array.from(y.data()), cpu, be.constructor.name);
        const g = ag.grad((a: ag.Tensor) => ag.sum(ag.dropout(a, rate, k)))(ag.tensor(vals).reshape(shape));
        assert.deepEqual(
          Array.from(g.data(), (v: number) => v !== 0),
          cpu.map((v) => v !== 0),
        );
      } finally {
        ag.setBackend("cpu");
      }
    }
  });
});
