import { test } from "node:test";
import assert from "node:assert/strict";
import { HW, withKernelMode } from "./kernel-modes.js";
import { spawnSync } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import fc from "fast-check";
import {
  dgemm,
  forcePortableKernels,
  gemmBatched,
  getNumThreads,
  kernelInfo,
  setNumThreads,
  sgemm,
  simdKernelsAvailable,
} from "../src/backend/cpu/kernels/gemm.js";
import { ModuleBuilder } from "../src/backend/cpu/kernels/wasm-emitter.js";
import { poolStats } from "../src/backend/cpu/kernels/pool.js";

type F = Float32Array | Float64Array;

/** Deterministic pseudo-random values in [-1, 1). */
function rand(n: number, seed: number, ctor: typeof Float32Array | typeof Float64Array = Float32Array): F {
  const out = new ctor(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

interface Case {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
}

/**
 * Naive float64 triple loop: returns op(A)op(B) and Σ|a||b| per entry (for the rounding bound).
 * A is read at aOff (+ t·sA for batch entry t), etc.
 */
function reference(c: Case, a: F, aOff: number, b: F, bOff: number): { val: Float64Array; mag: Float64Array } {
  const { transA, transB, m, n, k } = c;
  const val = new Float64Array(m * n);
  const mag = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let g = 0;
      for (let p = 0; p < k; p++) {
        const x = transA ? a[aOff + p * m + i]! : a[aOff + i * k + p]!;
        const y = transB ? b[bOff + j * k + p]! : b[bOff + p * n + j]!;
        s += x * y;
        g += Math.abs(x * y);
      }
      val[i * n + j] = s;
      mag[i * n + j] = g;
    }
  }
  return { val, mag };
}

/** Rounding bound of a length-k dot product accumulated in precision u, plus the rounding of C itself. */
function assertClose(
  got: F,
  gotOff: number,
  want: Float64Array,
  mag: Float64Array,
  base: Float64Array | null,
  k: number,
  u: number,
  what: string,
): void {
  for (let i = 0; i < want.length; i++) {
    const w = want[i]! + (base ? base[i]! : 0);
    const tol = (k + 2) * u * (mag[i]! + (base ? Math.abs(base[i]!) : 0)) + 1e-300;
    const g = got[gotOff + i]!;
    if (!(Math.abs(g - w) <= tol)) {
      assert.fail(`${what}: entry ${i} = ${g}, expected ${w} (tolerance ${tol})`);
    }
  }
}

const U32 = 2 ** -24;
const U64 = 2 ** -53;

interface Mode {
  name: string;
  portable: boolean;
  threads: number;
}

const MODES: Mode[] = [
  { name: "wasm simd, 1 thread", portable: false, threads: 1 },
  { name: "wasm simd, 2 threads", portable: false, threads: 2 },
  { name: "portable", portable: true, threads: 1 },
];

function runCase(c: Case, opts: { accumulate?: boolean; offsets?: [number, number, number]; f64?: boolean; seed?: number }): void {
  const ctor = opts.f64 ? Float64Array : Float32Array;
  const [ao, bo, co] = opts.offsets ?? [0, 0, 0];
  const seed = opts.seed ?? 1;
  const a = rand(ao + c.m * c.k + 3, seed, ctor);
  const b = rand(bo + c.k * c.n + 3, seed + 17, ctor);
  const cArr = rand(co + c.m * c.n + 3, seed + 31, ctor);
  const before = Float64Array.from(cArr);
  const args = { ...c, a, aOffset: ao, b, bOffset: bo, c: cArr, cOffset: co, accumulate: opts.accumulate };
  if (opts.f64) dgemm(args as Parameters<typeof dgemm>[0]);
  else sgemm(args as Parameters<typeof sgemm>[0]);
  const { val, mag } = reference(c, a, ao, b, bo);
  const base = opts.accumulate ? before.subarray(co, co + c.m * c.n) : null;
  const label = `${opts.f64 ? "dgemm" : "sgemm"} ${c.transA ? "T" : "N"}${c.transB ? "T" : "N"} m=${c.m} n=${c.n} k=${c.k}`;
  assertClose(cArr, co, val, mag, base, c.k, opts.f64 ? U64 : U32, label);
  // entries outside C are untouched
  for (let i = 0; i < co; i++) assert.equal(cArr[i], before[i], `${label}: element ${i} before C was modified`);
  for (let i = co + c.m * c.n; i < cArr.length; i++) assert.equal(cArr[i], before[i], `${label}: element ${i} after C was modified`);
}

const TRANS: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

// odd / edge shapes: 1, 3, 17, 127, 129, 257, k = 1, m = 1, n = 1, more rows than columns, etc.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 3, 3],
  [17, 17, 17],
  [1, 129, 17],
  [127, 1, 3],
  [5, 8, 1],
  [33, 17, 257],
  [129, 127, 3],
  [6, 257, 9],
];

test("wasm emitter: LEB128 encodings and a hand-checked module", () => {
  const mb = new ModuleBuilder();
  mb.func("add", ["i32", "i32"], ["i32"], (f, x, y) => {
    f.get(x!).get(y!).i32Add();
  });
  mb.func("k", [], ["i32"], (f) => {
    f.i32Const(-624485); // signed LEB128 example from the spec literature: 0x9b 0xf1 0x59
  });
  const bytes = mb.toBytes();
  assert.deepEqual([...bytes.subarray(0, 8)], [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const hex = Buffer.from(bytes).toString("hex");
  assert.ok(hex.includes("419bf159"), "i32.const -624485 encodes as 41 9b f1 59");
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
  assert.equal((inst.exports.add as (a: number, b: number) => number)(40, 2), 42);
  assert.equal((inst.exports.k as () => number)(), -624485);
});

test("wasm emitter: labels resolve to the right branch depths", () => {
  const mb = new ModuleBuilder();
  // Σ_{i<n} (i odd ? 3i : i) with a nested block/loop and an if/else
  mb.func("tri", ["i32"], ["i32"], (f, n) => {
    const i = f.local("i32");
    const s = f.local("i32");
    f.block((exit) => {
      f.loop((top) => {
        f.get(i).get(n!).i32GeS().brIf(exit);
        f.get(i)
          .i32Const(1)
          .i32And()
          .if(
            () => f.get(s).get(i).i32Const(3).i32Mul().i32Add().set(s),
            () => f.get(s).get(i).i32Add().set(s),
          );
        f.get(i).i32Const(1).i32Add().set(i);
        f.br(top);
      });
    });
    f.get(s);
  });
  const inst = new WebAssembly.Instance(new WebAssembly.Module(mb.toBytes()), {});
  const tri = inst.exports.tri as (n: number) => number;
  for (const n of [0, 1, 2, 10, 1000]) {
    let want = 0;
    for (let i = 0; i < n; i++) want += i % 2 === 1 ? 3 * i : i;
    assert.equal(tri(n), want);
  }
});

for (const mode of MODES) {
  test(`sgemm (${mode.name}): all transpose variants on odd and edge shapes`, (t) => {
    if (!mode.portable && !simdKernelsAvailable()) return t.skip("WebAssembly SIMD unavailable");
    withKernelMode(mode, () => {
      for (const [transA, transB] of TRANS) {
        for (const [m, n, k] of SHAPES) runCase({ transA, transB, m, n, k }, { seed: m * 7 + n * 3 + k });
      }
    });
  });

  test(`sgemm (${mode.name}): sizes large enough to be split across threads`, (t) => {
    if (!mode.portable && !simdKernelsAvailable()) return t.skip("WebAssembly SIMD unavailable");
    withKernelMode(mode, () => {
      const parallel = !mode.portable && mode.threads > 1 && HW > 1;
      if (parallel) assert.equal(kernelInfo().threads, 2);
      const calls0 = poolStats().parallelCalls;
      // n >= m: split by columns; m > n: split by rows; k > kc exercises the C += block path
      runCase({ transA: false, transB: false, m: 127, n: 257, k: 300 }, { seed: 5 });
      runCase({ transA: true, transB: true, m: 257, n: 129, k: 131 }, { seed: 6 });
      runCase({ transA: false, transB: true, m: 300, n: 31, k: 600 }, { seed: 7, accumulate: true, offsets: [3, 1, 2] });
      runCase({ transA: true, transB: false, m: 45, n: 513, k: 260 }, { seed: 8, offsets: [1, 2, 5] });
      if (parallel) assert.equal(poolStats().parallelCalls - calls0, 4, "each of the four ran on two threads");
    });
  });

  test(`sgemm (${mode.name}): accumulate and offsets`, (t) => {
    if (!mode.portable && !simdKernelsAvailable()) return t.skip("WebAssembly SIMD unavailable");
    withKernelMode(mode, () => {
      for (const [transA, transB] of TRANS) {
        runCase({ transA, transB, m: 19, n: 23, k: 29 }, { accumulate: true, offsets: [5, 7, 11], seed: 3 });
        runCase({ transA, transB, m: 1, n: 1, k: 1 }, { accumulate: true, offsets: [1, 2, 3], seed: 4 });
      }
    });
  });
}

test("dgemm: all variants, accumulate and offsets against the float64 triple loop", () => {
  for (const [transA, transB] of TRANS) {
    for (const [m, n, k] of SHAPES) runCase({ transA, transB, m, n, k }, { f64: true, seed: m + n + k });
    runCase({ transA, transB, m: 13, n: 7, k: 21 }, { f64: true, accumulate: true, offsets: [2, 3, 4], seed: 9 });
  }
});

test("gemm: k = 0 gives zeros (or leaves C unchanged when accumulating)", () => {
  for (const f64 of [false, true]) {
    const ctor = f64 ? Float64Array : Float32Array;
    const c = new ctor([1, 2, 3, 4, 5, 6]);
    const args = { transA: false, transB: false, m: 2, n: 3, k: 0, a: new ctor(0), b: new ctor(0), c };
    if (f64) dgemm(args as Parameters<typeof dgemm>[0]);
    else sgemm(args as Parameters<typeof sgemm>[0]);
    assert.deepEqual([...c], [0, 0, 0, 0, 0, 0]);
    const c2 = new ctor([1, 2, 3, 4, 5, 6]);
    const args2 = { ...args, c: c2, accumulate: true };
    if (f64) dgemm(args2 as Parameters<typeof dgemm>[0]);
    else sgemm(args2 as Parameters<typeof sgemm>[0]);
    assert.deepEqual([...c2], [1, 2, 3, 4, 5, 6]);
  }
});

for (const mode of [...MODES, { name: "float64", portable: true, threads: 1 }]) {
  const f64 = mode.name === "float64";
  test(`gemmBatched (${mode.name}): strides, broadcast operands and a shared C`, (t) => {
    if (!mode.portable && !simdKernelsAvailable()) return t.skip("WebAssembly SIMD unavailable");
    const ctor = f64 ? Float64Array : Float32Array;
    const u = f64 ? U64 : U32;
    withKernelMode(mode, () => {
      const configs = [
        // batch, m, n, k, sA, sB, sC (in elements; sA/sB include gaps between entries)
        { batch: 5, m: 7, n: 9, k: 11, trans: [false, false], sA: 7 * 11 + 2, sB: 11 * 9, sC: 7 * 9 + 1 },
        { batch: 4, m: 3, n: 17, k: 5, trans: [true, false], sA: 0, sB: 5 * 17, sC: 3 * 17 },
        { batch: 3, m: 13, n: 2, k: 33, trans: [false, true], sA: 13 * 33, sB: 0, sC: 13 * 2 + 4 },
        { batch: 6, m: 64, n: 96, k: 80, trans: [true, true], sA: 64 * 80, sB: 96 * 80, sC: 64 * 96 },
        { batch: 2, m: 200, n: 150, k: 90, trans: [false, false], sA: 200 * 90, sB: 90 * 150, sC: 200 * 150 },
      ];
      for (const cfg of configs) {
        const [transA, transB] = cfg.trans as [boolean, boolean];
        const { batch, m, n, k, sA, sB, sC } = cfg;
        const a = rand(2 + (batch - 1) * sA + m * k, batch * 3 + 1, ctor);
        const b = rand(1 + (batch - 1) * sB + k * n, batch * 5 + 2, ctor);
        const c = rand(3 + (batch - 1) * sC + m * n, batch * 7 + 3, ctor);
        const before = Float64Array.from(c);
        gemmBatched({ transA, transB, m, n, k, a, aOffset: 2, b, bOffset: 1, c, cOffset: 3, batch, strideA: sA, strideB: sB, strideC: sC });
        for (let t2 = 0; t2 < batch; t2++) {
          const { val, mag } = reference({ transA, transB, m, n, k }, a, 2 + t2 * sA, b, 1 + t2 * sB);
          assertClose(c, 3 + t2 * sC, val, mag, null, k, u, `batch entry ${t2} of ${JSON.stringify(cfg)}`);
        }
        // gaps between C entries are untouched
        for (let t2 = 0; t2 + 1 < batch; t2++) {
          for (let i = 3 + t2 * sC + m * n; i < 3 + (t2 + 1) * sC; i++) assert.equal(c[i], before[i]);
        }
      }
      // without batch fields: one GEMM
      {
        const a = rand(3 + 19 * 23, 21, ctor);
        const b = rand(23 * 29, 22, ctor);
        const c = rand(19 * 29 + 1, 23, ctor);
        gemmBatched({ transA: false, transB: true, m: 19, n: 29, k: 23, a, aOffset: 3, b, c, cOffset: 1 });
        const { val, mag } = reference({ transA: false, transB: true, m: 19, n: 29, k: 23 }, a, 3, b, 0);
        assertClose(c, 1, val, mag, null, 23, u, "gemmBatched without batch fields");
      }
      // stride-0 C with accumulate: C += Σ_t A_t B_t (large enough to be split by columns on 2 threads)
      const batch = 3;
      const m = 40;
      const n = 120;
      const k = 200;
      const a = rand(batch * m * k, 11, ctor);
      const b = rand(batch * k * n, 12, ctor);
      const c = rand(m * n, 13, ctor);
      const start = Float64Array.from(c);
      gemmBatched({ transA: false, transB: false, m, n, k, a, b, c, batch, strideA: m * k, strideB: k * n, strideC: 0, accumulate: true });
      const total = new Float64Array(m * n);
      const mags = new Float64Array(m * n);
      for (let t2 = 0; t2 < batch; t2++) {
        const { val, mag } = reference({ transA: false, transB: false, m, n, k }, a, t2 * m * k, b, t2 * k * n);
        for (let i = 0; i < m * n; i++) {
          total[i]! += val[i]!;
          mags[i]! += mag[i]!;
        }
      }
      assertClose(c, 0, total, mags, start, batch * k, u, "stride-0 C accumulation");
    });
  });
}

for (const mode of MODES) {
  test(`gemmBatched (${mode.name}): the tiny model's attention and long-K weight-gradient shapes`, (t) => {
    if (!mode.portable && !simdKernelsAvailable()) return t.skip("WebAssembly SIMD unavailable");
    withKernelMode(mode, () => {
      // attention per head (T = 128, head dim 32) with every transpose variant of forward and backward,
      // 8 heads so that 2 threads split the batch; then dW = Xᵀ·dY with a 2048-long reduction
      const cases: { batch: number; c: Case }[] = [];
      for (const [transA, transB] of TRANS) {
        cases.push({ batch: 8, c: { transA, transB, m: 128, n: 128, k: 32 } });
        cases.push({ batch: 8, c: { transA, transB, m: 128, n: 32, k: 128 } });
      }
      cases.push({ batch: 1, c: { transA: true, transB: false, m: 24, n: 136, k: 2048 } });
      cases.push({ batch: 1, c: { transA: true, transB: false, m: 133, n: 20, k: 2048 } });
      cases.push({ batch: 1, c: { transA: false, transB: true, m: 301, n: 20, k: 384 } });
      let seed = 40;
      for (const { batch, c } of cases) {
        const { m, n, k } = c;
        const a = rand(batch * m * k, seed++);
        const b = rand(batch * k * n, seed++);
        const out = rand(batch * m * n, seed++);
        gemmBatched({ ...c, a, b, c: out, batch, strideA: m * k, strideB: k * n, strideC: m * n });
        for (let e = 0; e < batch; e++) {
          const { val, mag } = reference(c, a, e * m * k, b, e * k * n);
          assertClose(out, e * m * n, val, mag, null, k, U32, `entry ${e} of ${batch} × ${JSON.stringify(c)}`);
        }
      }
    });
  });
}

test("sgemm: property test over random small shapes, variants, offsets and batches", (t) => {
  const modes = simdKernelsAvailable() ? MODES : MODES.filter((m) => m.portable);
  if (modes.length === 0) return t.skip("no kernels");
  fc.assert(
    fc.property(
      fc.record({
        m: fc.integer({ min: 1, max: 24 }),
        n: fc.integer({ min: 1, max: 24 }),
        k: fc.integer({ min: 1, max: 40 }),
        transA: fc.boolean(),
        transB: fc.boolean(),
        accumulate: fc.boolean(),
        ao: fc.integer({ min: 0, max: 3 }),
        bo: fc.integer({ min: 0, max: 3 }),
        co: fc.integer({ min: 0, max: 3 }),
        batch: fc.integer({ min: 1, max: 3 }),
        broadcastA: fc.boolean(),
        broadcastB: fc.boolean(),
        mode: fc.integer({ min: 0, max: modes.length - 1 }),
        f64: fc.boolean(),
        seed: fc.integer({ min: 1, max: 1 << 30 }),
      }),
      (p) => {
        const ctor = p.f64 ? Float64Array : Float32Array;
        const sA = p.broadcastA ? 0 : p.m * p.k;
        const sB = p.broadcastB ? 0 : p.k * p.n;
        const sC = p.m * p.n;
        const a = rand(p.ao + p.batch * p.m * p.k, p.seed, ctor);
        const b = rand(p.bo + p.batch * p.k * p.n, p.seed + 1, ctor);
        const c = rand(p.co + p.batch * sC, p.seed + 2, ctor);
        const before = Float64Array.from(c);
        withKernelMode(modes[p.mode]!, () =>
          gemmBatched({
            transA: p.transA,
            transB: p.transB,
            m: p.m,
            n: p.n,
            k: p.k,
            a,
            aOffset: p.ao,
            b,
            bOffset: p.bo,
            c,
            cOffset: p.co,
            accumulate: p.accumulate,
            batch: p.batch,
            strideA: sA,
            strideB: sB,
            strideC: sC,
          }),
        );
        for (let t2 = 0; t2 < p.batch; t2++) {
          const { val, mag } = reference(p, a, p.ao + t2 * sA, b, p.bo + t2 * sB);
          const off = p.co + t2 * sC;
          const base = p.accumulate ? before.subarray(off, off + sC) : null;
          assertClose(c, off, val, mag, base, p.k, p.f64 ? U64 : U32, `property case ${JSON.stringify(p)}`);
        }
      },
    ),
    { numRuns: 150, seed: 20250101 },
  );
});

test("setNumThreads / getNumThreads / kernelInfo", (t) => {
  setNumThreads(1);
  assert.equal(getNumThreads(), 1);
  assert.equal(kernelInfo().threads, 1);
  setNumThreads(HW);
  if (simdKernelsAvailable()) assert.equal(getNumThreads(), HW);
  assert.throws(() => setNumThreads(0), /setNumThreads: expected an integer in 1\.\./);
  assert.throws(() => setNumThreads(HW + 1), /setNumThreads/);
  assert.throws(() => setNumThreads(1.5), /setNumThreads/);
  forcePortableKernels(true);
  assert.deepEqual(kernelInfo(), { simd: false, threads: 1 });
  forcePortableKernels(false);
  if (!simdKernelsAvailable()) return t.skip("WebAssembly SIMD unavailable");
  assert.equal(kernelInfo().simd, true);
});

test("gemm: invalid arguments throw errors that name the function and the problem", () => {
  const a = new Float32Array(6);
  const b = new Float32Array(6);
  const c = new Float32Array(4);
  const ok = { transA: false, transB: false, m: 2, n: 2, k: 3, a, b, c };
  assert.throws(() => sgemm({ ...ok, a: new Float32Array(5) }), /sgemm: a has 5 elements but \[2,3\] at offset 0 needs 6/);
  assert.throws(() => sgemm({ ...ok, cOffset: 1 }), /sgemm: c has 4 elements/);
  assert.throws(() => sgemm({ ...ok, m: -1 }), /sgemm: m must be a non-negative integer, got -1/);
  assert.throws(() => sgemm({ ...ok, k: 2.5 }), /sgemm: k must be a non-negative integer/);
  assert.throws(
    () => sgemm({ ...ok, b: new Float64Array(6) as unknown as Float32Array }),
    /sgemm: b must be a Float32Array, got Float64Array/,
  );
  assert.throws(
    () => dgemm({ ...ok, a: new Float32Array(6) } as unknown as Parameters<typeof dgemm>[0]),
    /dgemm: a must be a Float64Array/,
  );
  const shared = new Float32Array(12);
  assert.throws(() => sgemm({ ...ok, a: shared.subarray(0, 6), c: shared.subarray(4, 8) }), /sgemm: c overlaps a/);
  assert.throws(
    () => gemmBatched({ ...ok, batch: 2, strideA: 6, strideB: 6, strideC: 4 }),
    /gemmBatched: a has 6 elements but \[2,3\] at offset 0 with batch 2 and stride 6 needs 12/,
  );
});

test("a process that used the worker pool exits by itself (workers are unref'd)", (t) => {
  if (!simdKernelsAvailable() || HW < 2) return t.skip("needs WebAssembly SIMD and 2 hardware threads");
  const gemmUrl = pathToFileURL(fileURLToPath(new URL("../src/backend/cpu/kernels/gemm.ts", import.meta.url))).href;
  const poolUrl = pathToFileURL(fileURLToPath(new URL("../src/backend/cpu/kernels/pool.ts", import.meta.url))).href;
  const code = [
    `import { sgemm, setNumThreads } from ${JSON.stringify(gemmUrl)};`,
    `import { poolStats } from ${JSON.stringify(poolUrl)};`,
    "setNumThreads(2);",
    "const n = 200; const a = new Float32Array(n * n).fill(1); const b = new Float32Array(n * n).fill(2); const c = new Float32Array(n * n);",
    "sgemm({ transA: false, transB: false, m: n, n, k: n, a, b, c });",
    "console.log(JSON.stringify({ c0: c[0], cLast: c[n * n - 1], stats: poolStats() }));",
  ].join("\n");
  // the timeout only guards against a hang; a healthy run exits in well under a second
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.signal, null, `child was killed (${r.signal}): the pool kept the process alive`);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as {
    c0: number;
    cLast: number;
    stats: { workers: number; parallelCalls: number };
  };
  assert.equal(out.c0, 400);
  assert.equal(out.cLast, 400);
  assert.equal(out.stats.workers, 1);
  assert.equal(out.stats.parallelCalls, 1);
});
