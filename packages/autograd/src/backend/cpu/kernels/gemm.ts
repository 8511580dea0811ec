/**
 * Matrix multiplication for the CPU backend.
 *
 * - `sgemm` (float32): WebAssembly SIMD kernel generated at run time (see gemm-wasm.ts), split over
 *   worker threads for large problems; pure TypeScript fallback where SIMD is unavailable or forced.
 * - `dgemm` (float64): plain TypeScript, accumulating in double precision; meant for correctness
 *   (gradient checks, ODE accuracy tests), not speed.
 *
 * All matrices are row-major and contiguous. op(X) is X or Xᵀ; C = op(A)·op(B) (or C += ... with
 * `accumulate`). The caller's arrays are ordinary typed arrays: operands are copied into the kernel's
 * linear memory (packing is a copy anyway) and C is copied back. C must not overlap A or B.
 */
import { DEFAULT_GEMM_BLOCKING } from "./gemm-wasm.js";
import { poolThreads, runParallel, setPoolThreads, type ParallelTask } from "./pool.js";
import { activeRuntime, f32View, getRuntime, scratchAddress, setPortableForced, Workspace, type KernelRuntime } from "./runtime.js";

/** One GEMM: C = op(A)·op(B) (or C += ... with `accumulate`), all matrices row-major and contiguous. */
export interface GemmArgs<T extends Float32Array | Float64Array> {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  /** op(A) is m×k; A stored row-major contiguous as [m,k] (or [k,m] if transA) */
  a: T;
  aOffset?: number;
  /** op(B) is k×n; B stored as [k,n] (or [n,k] if transB) */
  b: T;
  bOffset?: number;
  /** C is [m,n] row-major contiguous */
  c: T;
  cOffset?: number;
  /** C += op(A)op(B) instead of C = ... */
  accumulate?: boolean;
}

/** Extra fields of a batched GEMM: strides in elements between consecutive batch entries. */
export interface GemmBatch {
  batch: number;
  strideA: number;
  strideB: number;
  strideC: number;
}

/** Below this many flops per thread a GEMM stays on one thread (waking a worker costs ~2–40 µs). */
const MIN_FLOPS_PER_THREAD = 1 << 21;

interface Plan {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  aOff: number;
  bOff: number;
  cOff: number;
  accumulate: boolean;
  batch: number;
  sA: number;
  sB: number;
  sC: number;
}

function isNonNegInt(x: number): boolean {
  return Number.isInteger(x) && x >= 0;
}

function validate<T extends Float32Array | Float64Array>(
  fn: string,
  args: GemmArgs<T>,
  batch: GemmBatch,
  ctor: typeof Float32Array | typeof Float64Array | null,
): Plan {
  const { m, n, k, a, b, c } = args;
  for (const [name, v] of [
    ["m", m],
    ["n", n],
    ["k", k],
  ] as const) {
    if (!isNonNegInt(v)) throw new Error(`${fn}: ${name} must be a non-negative integer, got ${v}`);
  }
  const aOff = args.aOffset ?? 0;
  const bOff = args.bOffset ?? 0;
  const cOff = args.cOffset ?? 0;
  for (const [name, v] of [
    ["aOffset", aOff],
    ["bOffset", bOff],
    ["cOffset", cOff],
  ] as const) {
    if (!isNonNegInt(v)) throw new Error(`${fn}: ${name} must be a non-negative integer, got ${v}`);
  }
  for (const [name, v] of Object.entries(batch)) {
    if (!isNonNegInt(v)) throw new Error(`${fn}: ${name} must be a non-negative integer, got ${v}`);
  }
  const want = ctor ?? (a instanceof Float64Array ? Float64Array : Float32Array);
  for (const [name, arr] of [
    ["a", a],
    ["b", b],
    ["c", c],
  ] as const) {
    if (!(arr instanceof want)) {
      throw new Error(`${fn}: ${name} must be a ${want.name}, got ${Object.prototype.toString.call(arr).slice(8, -1)}`);
    }
  }
  const need = (off: number, stride: number, size: number): number =>
    size === 0 || batch.batch === 0 ? 0 : off + (batch.batch - 1) * stride + size;
  const checks: [string, T, number, number, number, string][] = [
    ["a", a, aOff, batch.strideA, m * k, args.transA ? `[${k},${m}]` : `[${m},${k}]`],
    ["b", b, bOff, batch.strideB, k * n, args.transB ? `[${n},${k}]` : `[${k},${n}]`],
    ["c", c, cOff, batch.strideC, m * n, `[${m},${n}]`],
  ];
  for (const [name, arr, off, stride, size, shape] of checks) {
    const len = need(off, stride, size);
    if (arr.length < len) {
      throw new Error(
        `${fn}: ${name} has ${arr.length} elements but ${shape} at offset ${off}` +
          (batch.batch > 1 ? ` with batch ${batch.batch} and stride ${stride}` : "") +
          ` needs ${len}`,
      );
    }
  }
  // C must not overlap A or B (the portable path reads A/B while writing C)
  const cLen = need(cOff, batch.strideC, m * n);
  for (const [name, arr, off, stride, size] of checks.slice(0, 2)) {
    const len = need(off, stride, size);
    if (arr.buffer === c.buffer && len > 0 && cLen > 0) {
      const s1 = arr.byteOffset + off * arr.BYTES_PER_ELEMENT;
      const e1 = arr.byteOffset + len * arr.BYTES_PER_ELEMENT;
      const s2 = c.byteOffset + cOff * c.BYTES_PER_ELEMENT;
      const e2 = c.byteOffset + cLen * c.BYTES_PER_ELEMENT;
      if (s1 < e2 && s2 < e1) throw new Error(`${fn}: c overlaps ${name}; the output must not alias an input`);
    }
  }
  return {
    transA: !!args.transA,
    transB: !!args.transB,
    m,
    n,
    k,
    aOff,
    bOff,
    cOff,
    accumulate: !!args.accumulate,
    batch: batch.batch,
    sA: batch.strideA,
    sB: batch.strideB,
    sC: batch.strideC,
  };
}

// ---------------------------------------------------------------------------------------------
// portable TypeScript GEMM (float32 and float64; accumulates in double precision)

function portableOne<T extends Float32Array | Float64Array>(
  p: Plan,
  a: T,
  aOff: number,
  b: T,
  bOff: number,
  c: T,
  cOff: number,
  accumulate: boolean,
  row: Float64Array,
  bT: Float64Array | null,
): void {
  const { m, n, k, transA } = p;
  // op(B) row-major [k, n]: B itself, or the transpose packed into bT
  let bb: Float32Array | Float64Array = b;
  let bo = bOff;
  if (bT) {
    for (let j = 0; j < n; j++) {
      const src = bOff + j * k;
      for (let q = 0; q < k; q++) bT[q * n + j] = b[src + q]!;
    }
    bb = bT;
    bo = 0;
  }
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let q = 0; q < k; q++) {
      const aiq = transA ? a[aOff + q * m + i]! : a[aOff + i * k + q]!;
      if (aiq === 0) continue;
      const base = bo + q * n;
      for (let j = 0; j < n; j++) row[j]! += aiq * bb[base + j]!;
    }
    const ci = cOff + i * n;
    if (accumulate) for (let j = 0; j < n; j++) c[ci + j] = c[ci + j]! + row[j]!;
    else for (let j = 0; j < n; j++) c[ci + j] = row[j]!;
  }
}

function portableGemm<T extends Float32Array | Float64Array>(p: Plan, a: T, b: T, c: T): void {
  const row = new Float64Array(p.n);
  const bT = p.transB ? new Float64Array(p.k * p.n) : null;
  for (let t = 0; t < p.batch; t++) {
    const acc = p.accumulate || (p.sC === 0 && t > 0);
    portableOne(p, a, p.aOff + t * p.sA, b, p.bOff + t * p.sB, c, p.cOff + t * p.sC, acc, row, bT);
  }
}

// ---------------------------------------------------------------------------------------------
// WebAssembly SIMD path

function copyIn(view: Float32Array, addr: number, src: Float32Array, off: number, size: number, count: number, stride: number): void {
  const dst = addr >> 2;
  if (count === 1 || stride === size) {
    view.set(src.subarray(off, off + count * size), dst);
  } else {
    for (let t = 0; t < count; t++) view.set(src.subarray(off + t * stride, off + t * stride + size), dst + t * size);
  }
}

function planTasks(rt: KernelRuntime, p: Plan, aPtr: number, bPtr: number, cPtr: number): ParallelTask[] {
  const { transA, transB, m, n, k, batch } = p;
  const { mr: MR, nr: NR } = DEFAULT_GEMM_BLOCKING;
  const lda = transA ? m : k;
  const ldb = transB ? k : n;
  const sA = p.sA === 0 ? 0 : m * k;
  const sB = p.sB === 0 ? 0 : k * n;
  const sC = p.sC === 0 ? 0 : m * n;
  const beta = p.accumulate ? 1 : 0;
  const flops = 2 * m * n * k * batch;
  const threads = Math.max(1, Math.min(poolThreads(), Math.floor(flops / MIN_FLOPS_PER_THREAD)));
  const task = (t: number, mm: number, nn: number, a: number, b: number, c: number, nb: number): ParallelTask => ({
    fn: "gemm_f32",
    args: [+transA, +transB, mm, nn, k, a, lda, b, ldb, c, n, beta, scratchAddress(rt, t), nb, sA, sB, sC],
  });
  if (threads === 1) return [task(0, m, n, aPtr, bPtr, cPtr, batch)];
  const tasks: ParallelTask[] = [];
  if (sC !== 0 && batch >= threads && (batch % threads === 0 || batch >= 4 * threads)) {
    // whole batch entries per thread
    const per = Math.ceil(batch / threads);
    for (let t = 0, b0 = 0; b0 < batch; t++, b0 += per) {
      const nb = Math.min(per, batch - b0);
      tasks.push(task(t, m, n, aPtr + b0 * sA * 4, bPtr + b0 * sB * 4, cPtr + b0 * sC * 4, nb));
    }
  } else if (n >= m) {
    // column ranges of C (each thread packs its own B columns; A packing is repeated)
    const chunk = Math.ceil(n / threads / NR) * NR;
    for (let t = 0, j0 = 0; j0 < n; t++, j0 += chunk) {
      const nn = Math.min(chunk, n - j0);
      const b = transB ? bPtr + j0 * ldb * 4 : bPtr + j0 * 4;
      tasks.push(task(t, m, nn, aPtr, b, cPtr + j0 * 4, batch));
    }
  } else {
    // row ranges of C
    const chunk = Math.ceil(m / threads / MR) * MR;
    for (let t = 0, i0 = 0; i0 < m; t++, i0 += chunk) {
      const mm = Math.min(chunk, m - i0);
      const a = transA ? aPtr + i0 * 4 : aPtr + i0 * lda * 4;
      tasks.push(task(t, mm, n, a, bPtr, cPtr + i0 * n * 4, batch));
    }
  }
  return tasks;
}

/**
 * Internal: float32 C = op(A)·op(B) (or C += ...) on matrices already in kernel memory at byte addresses
 * aPtr, bPtr, cPtr (row-major, contiguous), split over the worker threads like sgemm. For kernels that keep
 * their operands in kernel memory between GEMMs (the fused projection + cross-entropy).
 */
export function gemmInMemory(
  rt: KernelRuntime,
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  aPtr: number,
  bPtr: number,
  cPtr: number,
  accumulate: boolean,
): void {
  if (m === 0 || n === 0) return;
  if (k === 0) {
    if (!accumulate) f32View(rt).fill(0, cPtr >> 2, (cPtr >> 2) + m * n);
    return;
  }
  const p: Plan = { transA, transB, m, n, k, aOff: 0, bOff: 0, cOff: 0, accumulate, batch: 1, sA: 0, sB: 0, sC: 0 };
  runParallel(planTasks(rt, p, aPtr, bPtr, cPtr));
}

function wasmGemm(rt: KernelRuntime, p: Plan, a: Float32Array, b: Float32Array, c: Float32Array): void {
  const { m, n, k, batch } = p;
  const aSize = m * k;
  const bSize = k * n;
  const cSize = m * n;
  const aCount = p.sA === 0 ? 1 : batch;
  const bCount = p.sB === 0 ? 1 : batch;
  const cCount = p.sC === 0 ? 1 : batch;
  const ws = new Workspace(rt);
  const aPtr = ws.alloc(aCount * aSize * 4);
  const bPtr = ws.alloc(bCount * bSize * 4);
  const cPtr = ws.alloc(cCount * cSize * 4);
  const view = f32View(rt);
  copyIn(view, aPtr, a, p.aOff, aSize, aCount, p.sA);
  copyIn(view, bPtr, b, p.bOff, bSize, bCount, p.sB);
  if (p.accumulate) copyIn(view, cPtr, c, p.cOff, cSize, cCount, p.sC);
  runParallel(planTasks(rt, p, aPtr, bPtr, cPtr));
  const out = f32View(rt);
  const src = cPtr >> 2;
  if (cCount === 1 || p.sC === cSize) {
    c.set(out.subarray(src, src + cCount * cSize), p.cOff);
  } else {
    for (let t = 0; t < cCount; t++) c.set(out.subarray(src + t * cSize, src + (t + 1) * cSize), p.cOff + t * p.sC);
  }
}

function zeroOrKeep<T extends Float32Array | Float64Array>(p: Plan, c: T): void {
  // k = 0: op(A)op(B) is the zero matrix
  if (p.accumulate) return;
  const cCount = p.sC === 0 ? 1 : p.batch;
  for (let t = 0; t < cCount; t++) c.fill(0, p.cOff + t * p.sC, p.cOff + t * p.sC + p.m * p.n);
}

function run<T extends Float32Array | Float64Array>(fn: string, args: GemmArgs<T>, batch: GemmBatch): void {
  const p = validate(fn, args, batch, null);
  if (p.batch === 0 || p.m === 0 || p.n === 0) return;
  if (p.k === 0) {
    zeroOrKeep(p, args.c);
    return;
  }
  const rt = args.a instanceof Float32Array ? activeRuntime() : null;
  if (rt) wasmGemm(rt, p, args.a as Float32Array, args.b as Float32Array, args.c as Float32Array);
  else portableGemm(p, args.a, args.b, args.c);
}

const SINGLE: GemmBatch = { batch: 1, strideA: 0, strideB: 0, strideC: 0 };

/** Float32 C = op(A)·op(B) (or C += ...), WebAssembly SIMD and multi-threaded where available. */
export function sgemm(args: GemmArgs<Float32Array>): void {
  if (!(args.a instanceof Float32Array)) throw new Error("sgemm: a must be a Float32Array");
  run("sgemm", args, SINGLE);
}

/** Float64 C = op(A)·op(B) (or C += ...) in plain TypeScript. */
export function dgemm(args: GemmArgs<Float64Array>): void {
  if (!(args.a instanceof Float64Array)) throw new Error("dgemm: a must be a Float64Array");
  run("dgemm", args, SINGLE);
}

/**
 * Batch of independent GEMMs of either float type (the CPU backend's entry point); strides in elements
 * (0 means broadcast that operand; a stride-0 C sums the batch). Without batch fields: one GEMM.
 */
export function gemmBatched<T extends Float32Array | Float64Array>(args: GemmArgs<T> & Partial<GemmBatch>): void {
  const batch = { batch: args.batch ?? 1, strideA: args.strideA ?? 0, strideB: args.strideB ?? 0, strideC: args.strideC ?? 0 };
  run("gemmBatched", args, batch);
}

/** Set the number of threads used by the kernels: 1..os.availableParallelism(). */
export function setNumThreads(n: number): void {
  setPoolThreads(n);
}

/** Number of threads the kernels use (1 where workers or shared memory are unavailable). */
export function getNumThreads(): number {
  return poolThreads();
}

/** Whether the WebAssembly SIMD kernels are in use, and with how many threads. */
export function kernelInfo(): { simd: boolean; threads: number } {
  const simd = activeRuntime() !== null;
  return { simd, threads: simd ? poolThreads() : 1 };
}

/** Testing: use the pure-TypeScript kernels even where WebAssembly SIMD is available. */
export function forcePortableKernels(on: boolean): void {
  setPortableForced(on);
}

/** Whether this environment supports the WebAssembly SIMD kernels (regardless of forcing). */
export function simdKernelsAvailable(): boolean {
  return getRuntime() !== null;
}
