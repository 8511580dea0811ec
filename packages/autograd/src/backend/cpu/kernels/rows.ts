/**
 * Fused row kernels over the last axis of a row-major [rows, cols] matrix, plus GELU.
 *
 * Float32 inputs run the WebAssembly SIMD kernels of rows-wasm.ts (split over worker threads by rows
 * for large inputs); float64 inputs (and float32 when SIMD is unavailable or portable kernels are
 * forced) run the plain TypeScript versions below. All arrays of one call share the element type,
 * except `targets` (Int32Array). Outputs may alias inputs of the same shape.
 *
 * Accuracy of the float32 SIMD path against a float64 reference (see rows-wasm.ts): exp(a) has a
 * relative error ≤ 2.4e-7 + |a|·5e-8, sums are blocked into float64, log is float64, so softmax /
 * log-softmax / loss / layer-norm results agree to ~1e-6 relative for ordinary inputs (measured ≤ 1.3e-6
 * in the tests) and stay finite for logits of magnitude 1e4 (there the float32 rounding of the saved
 * lse, ~1e-3 absolute, bounds the accuracy of the cross-entropy gradient). exp of arguments below -86
 * returns ~4e-38 instead of underflowing. GELU: ≤ 1e-6 relative for x ≥ -2, ≤ 1e-5 for x ≥ -7 (gelu ≥
 * 1e-11), growing to 2e-5 at x = -9 where exp(-2|u|) amplifies the float32 rounding of u; results
 * below ~1e-36 are 0.
 */
import { GELU_CUBIC, GELU_TANH_SCALE } from "../../../gelu.js";
import { MAX_STREAM_CHUNKS, poolThreads, runParallel, runStreamed, type ParallelTask } from "./pool.js";
import { activeRuntime, f32View, i32View, Workspace, type KernelRuntime } from "./runtime.js";

type FloatArray = Float32Array | Float64Array;

/** Below this many elements per thread a row kernel stays on one thread. */
const MIN_ELEMS_PER_THREAD = 1 << 16;
/** Elements per streamed chunk (512 KiB of float32: half an L2; measured best of 64K–1M on Zen 4). */
const CHUNK_ELEMS = 1 << 17;

// ---------------------------------------------------------------------------------------------
// validation

function checkDims(fn: string, rows: number, cols: number): void {
  if (!Number.isInteger(rows) || rows < 0) throw new Error(`${fn}: rows must be a non-negative integer, got ${rows}`);
  if (!Number.isInteger(cols) || cols < 0) throw new Error(`${fn}: cols must be a non-negative integer, got ${cols}`);
}

function checkLen(fn: string, name: string, arr: ArrayLike<number>, need: number, shape: string): void {
  if (arr.length < need) throw new Error(`${fn}: ${name} has ${arr.length} elements, expected at least ${need} (${shape})`);
}

function checkSameType(fn: string, ref: FloatArray, arrays: [string, FloatArray | null][]): void {
  const want = ref instanceof Float64Array ? Float64Array : Float32Array;
  if (!(ref instanceof Float32Array) && !(ref instanceof Float64Array)) {
    throw new Error(`${fn}: expected a Float32Array or Float64Array input`);
  }
  for (const [name, a] of arrays) {
    if (a !== null && !(a instanceof want)) {
      throw new Error(`${fn}: ${name} must be a ${want.name} like the input, got ${Object.prototype.toString.call(a).slice(8, -1)}`);
    }
  }
}

function checkTargets(fn: string, targets: Int32Array, rows: number, cols: number, ignoreIndex: number): void {
  if (!(targets instanceof Int32Array)) throw new Error(`${fn}: targets must be an Int32Array`);
  checkLen(fn, "targets", targets, rows, `[${rows}]`);
  for (let r = 0; r < rows; r++) {
    const t = targets[r]!;
    if (t !== ignoreIndex && (t < 0 || t >= cols)) {
      throw new Error(`${fn}: targets[${r}] = ${t} is outside [0, ${cols}) and is not ignoreIndex (${ignoreIndex})`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// WebAssembly helpers

function f32Runtime(x: FloatArray): KernelRuntime | null {
  return x instanceof Float32Array ? activeRuntime() : null;
}

function copyTo(rt: KernelRuntime, addr: number, src: Float32Array, count: number): void {
  f32View(rt).set(src.subarray(0, count), addr >> 2);
}

function copyFrom(rt: KernelRuntime, addr: number, dst: Float32Array, count: number): void {
  const v = f32View(rt);
  dst.set(v.subarray(addr >> 2, (addr >> 2) + count));
}

/** Threads for `work` elements split over at most `units` pieces. */
function threadsFor(work: number, units: number): number {
  return Math.max(1, Math.min(poolThreads(), units, Math.floor(work / MIN_ELEMS_PER_THREAD)));
}

/**
 * Rows per streamed chunk: at most about CHUNK_ELEMS elements and at least 4 chunks per thread for
 * load balance; a single chunk for small inputs. With cols = 1 (elementwise) a multiple of 4.
 */
function chunkRows(rows: number, cols: number): number {
  if (rows * cols <= 2 * MIN_ELEMS_PER_THREAD) return Math.max(1, rows);
  let per = Math.max(1, Math.min(Math.floor(CHUNK_ELEMS / Math.max(1, cols)), Math.ceil(rows / (4 * poolThreads()))));
  per = Math.max(per, Math.ceil(rows / MAX_STREAM_CHUNKS));
  if (cols === 1) per = Math.ceil(per / 4) * 4;
  return Math.min(per, rows);
}

/**
 * Run a row kernel over [rows, cols] data at byte address `px` (input) with output rows written in
 * place, streaming chunks: `x` is copied in and `out` (if given) copied back chunk by chunk while the
 * threads compute. `base` are the kernel arguments for row 0 and `perRow` their increments per row.
 */
function streamRows(
  rt: KernelRuntime,
  fn: string,
  rows: number,
  cols: number,
  rowsArg: number,
  base: number[],
  perRow: number[],
  x: Float32Array,
  px: number,
  out: Float32Array | null,
): void {
  const view = f32View(rt);
  const w = px >> 2;
  runStreamed({
    fn,
    total: rows,
    per: chunkRows(rows, cols),
    rowsArg,
    base,
    perRow,
    copyIn: (r0, nr) => view.set(x.subarray(r0 * cols, (r0 + nr) * cols), w + r0 * cols),
    copyOut: out ? (r0, nr) => out.set(view.subarray(w + r0 * cols, w + (r0 + nr) * cols), r0 * cols) : undefined,
  });
}

// ---------------------------------------------------------------------------------------------
// softmax / log-softmax

/**
 * Row-wise softmax over the last axis: out[r,:] = exp(x[r,:] - max) / Σ exp(x[r,:] - max); with `log`,
 * the log-softmax (as `logSoftmaxRows`).
 */
export function softmaxRows<T extends FloatArray>(x: T, out: T, rows: number, cols: number, log = false): void {
  softmaxFamily(log ? "logSoftmaxRows" : "softmaxRows", log, x, out, rows, cols);
}

/** Row-wise log-softmax over the last axis: out = (x - max) - log Σ exp(x - max). */
export function logSoftmaxRows<T extends FloatArray>(x: T, out: T, rows: number, cols: number): void {
  softmaxFamily("logSoftmaxRows", true, x, out, rows, cols);
}

function softmaxFamily<T extends FloatArray>(fn: string, log: boolean, x: T, out: T, rows: number, cols: number): void {
  checkDims(fn, rows, cols);
  checkSameType(fn, x, [["out", out]]);
  const n = rows * cols;
  checkLen(fn, "x", x, n, `[${rows},${cols}]`);
  checkLen(fn, "out", out, n, `[${rows},${cols}]`);
  if (n === 0) return;
  const rt = f32Runtime(x);
  if (rt) {
    const px = new Workspace(rt).alloc(n * 4);
    const c4 = cols * 4;
    const kernel = log ? "logsoftmax_f32" : "softmax_f32";
    streamRows(rt, kernel, rows, cols, 2, [px, px, rows, cols], [c4, c4, 0, 0], x as Float32Array, px, out as Float32Array);
    return;
  }
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let j = 0; j < cols; j++) if (x[o + j]! > m) m = x[o + j]!;
    if (log) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += Math.exp(x[o + j]! - m);
      const ls = Math.log(s);
      for (let j = 0; j < cols; j++) out[o + j] = x[o + j]! - m - ls;
    } else {
      let s = 0;
      for (let j = 0; j < cols; j++) {
        const e = Math.exp(x[o + j]! - m);
        out[o + j] = e;
        s += e;
      }
      const inv = 1 / s;
      for (let j = 0; j < cols; j++) out[o + j] = out[o + j]! * inv;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// cross-entropy

/**
 * Per-row negative log-likelihood: lossOut[r] = logsumexp(logits[r,:]) - logits[r, targets[r]]
 * (0 where targets[r] === ignoreIndex); lseOut[r] = logsumexp(logits[r,:]) for every row.
 */
export function crossEntropyRows<T extends FloatArray>(
  logits: T,
  targets: Int32Array,
  rows: number,
  cols: number,
  ignoreIndex: number,
  lossOut: T,
  lseOut: T,
): void {
  const fn = "crossEntropyRows";
  checkDims(fn, rows, cols);
  checkSameType(fn, logits, [
    ["lossOut", lossOut],
    ["lseOut", lseOut],
  ]);
  const n = rows * cols;
  checkLen(fn, "logits", logits, n, `[${rows},${cols}]`);
  checkLen(fn, "lossOut", lossOut, rows, `[${rows}]`);
  checkLen(fn, "lseOut", lseOut, rows, `[${rows}]`);
  if (rows > 0 && cols === 0) throw new Error(`${fn}: cols must be positive when rows > 0, got ${cols}`);
  checkTargets(fn, targets, rows, cols, ignoreIndex);
  if (rows === 0) return;
  const rt = f32Runtime(logits);
  if (rt) {
    const ws = new Workspace(rt);
    const px = ws.alloc(n * 4);
    const pt = ws.alloc(rows * 4);
    const pl = ws.alloc(rows * 4);
    const pe = ws.alloc(rows * 4);
    i32View(rt).set(targets.subarray(0, rows), pt >> 2);
    streamRows(
      rt,
      "ce_fwd_f32",
      rows,
      cols,
      2,
      [px, pt, rows, cols, ignoreIndex, pl, pe],
      [cols * 4, 4, 0, 0, 0, 4, 4],
      logits as Float32Array,
      px,
      null,
    );
    copyFrom(rt, pl, lossOut as Float32Array, rows);
    copyFrom(rt, pe, lseOut as Float32Array, rows);
    return;
  }
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let j = 0; j < cols; j++) if (logits[o + j]! > m) m = logits[o + j]!;
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(logits[o + j]! - m);
    const ls = Math.log(s);
    lseOut[r] = m + ls;
    const t = targets[r]!;
    lossOut[r] = t === ignoreIndex ? 0 : m - logits[o + t]! + ls;
  }
}

/**
 * Gradient of the per-row NLL: out[r,:] = g[r] * (softmax(logits[r,:]) - onehot(targets[r])), using the
 * saved lse; rows whose target is ignoreIndex get zeros.
 */
export function crossEntropyBackwardRows<T extends FloatArray>(
  logits: T,
  targets: Int32Array,
  lse: T,
  g: T,
  out: T,
  rows: number,
  cols: number,
  ignoreIndex: number,
): void {
  const fn = "crossEntropyBackwardRows";
  checkDims(fn, rows, cols);
  checkSameType(fn, logits, [
    ["lse", lse],
    ["g", g],
    ["out", out],
  ]);
  const n = rows * cols;
  checkLen(fn, "logits", logits, n, `[${rows},${cols}]`);
  checkLen(fn, "out", out, n, `[${rows},${cols}]`);
  checkLen(fn, "lse", lse, rows, `[${rows}]`);
  checkLen(fn, "g", g, rows, `[${rows}]`);
  checkTargets(fn, targets, rows, cols, ignoreIndex);
  if (n === 0) return;
  const rt = f32Runtime(logits);
  if (rt) {
    const ws = new Workspace(rt);
    const px = ws.alloc(n * 4);
    const pt = ws.alloc(rows * 4);
    const pe = ws.alloc(rows * 4);
    const pg = ws.alloc(rows * 4);
    i32View(rt).set(targets.subarray(0, rows), pt >> 2);
    copyTo(rt, pe, lse as Float32Array, rows);
    copyTo(rt, pg, g as Float32Array, rows);
    const c4 = cols * 4;
    streamRows(
      rt,
      "ce_bwd_f32",
      rows,
      cols,
      5,
      [px, pt, pe, pg, px, rows, cols, ignoreIndex],
      [c4, 4, 4, 4, c4, 0, 0, 0],
      logits as Float32Array,
      px,
      out as Float32Array,
    );
    return;
  }
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const t = targets[r]!;
    if (t === ignoreIndex) {
      out.fill(0, o, o + cols);
      continue;
    }
    const gr = g[r]!;
    const l = lse[r]!;
    for (let j = 0; j < cols; j++) out[o + j] = gr * Math.exp(logits[o + j]! - l);
    out[o + t] = out[o + t]! - gr;
  }
}

// ---------------------------------------------------------------------------------------------
// layer norm

/**
 * Layer norm over the last axis: out = (x - mean) * rstd * gamma + beta, rstd = 1/sqrt(var + eps)
 * (biased variance); writes per-row mean and rstd. gamma/beta null mean 1/0.
 */
export function layerNormRows<T extends FloatArray>(
  x: T,
  gamma: T | null,
  beta: T | null,
  out: T,
  mean: T,
  rstd: T,
  rows: number,
  cols: number,
  eps: number,
): void {
  const fn = "layerNormRows";
  checkDims(fn, rows, cols);
  checkSameType(fn, x, [
    ["gamma", gamma],
    ["beta", beta],
    ["out", out],
    ["mean", mean],
    ["rstd", rstd],
  ]);
  const n = rows * cols;
  checkLen(fn, "x", x, n, `[${rows},${cols}]`);
  checkLen(fn, "out", out, n, `[${rows},${cols}]`);
  if (gamma) checkLen(fn, "gamma", gamma, cols, `[${cols}]`);
  if (beta) checkLen(fn, "beta", beta, cols, `[${cols}]`);
  checkLen(fn, "mean", mean, rows, `[${rows}]`);
  checkLen(fn, "rstd", rstd, rows, `[${rows}]`);
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new Error(`${fn}: eps must be a finite non-negative number, got ${eps}`);
  if (rows > 0 && cols === 0) throw new Error(`${fn}: cols must be positive when rows > 0, got ${cols}`);
  if (rows === 0) return;
  const rt = f32Runtime(x);
  if (rt) {
    const ws = new Workspace(rt);
    const px = ws.alloc(n * 4);
    const pg = ws.alloc(cols * 4);
    const pb = ws.alloc(cols * 4);
    const pm = ws.alloc(rows * 4);
    const pr = ws.alloc(rows * 4);
    const v = f32View(rt);
    if (gamma) v.set((gamma as Float32Array).subarray(0, cols), pg >> 2);
    else v.fill(1, pg >> 2, (pg >> 2) + cols);
    if (beta) v.set((beta as Float32Array).subarray(0, cols), pb >> 2);
    else v.fill(0, pb >> 2, (pb >> 2) + cols);
    const c4 = cols * 4;
    streamRows(
      rt,
      "ln_fwd_f32",
      rows,
      cols,
      6,
      [px, pg, pb, px, pm, pr, rows, cols, eps],
      [c4, 0, 0, c4, 4, 4, 0, 0, 0],
      x as Float32Array,
      px,
      out as Float32Array,
    );
    copyFrom(rt, pm, mean as Float32Array, rows);
    copyFrom(rt, pr, rstd as Float32Array, rows);
    return;
  }
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[o + j]!;
    const mu = s / cols;
    let ss = 0;
    for (let j = 0; j < cols; j++) {
      const d = x[o + j]! - mu;
      ss += d * d;
    }
    const rs = 1 / Math.sqrt(ss / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < cols; j++) {
      const xh = (x[o + j]! - mu) * rs;
      out[o + j] = (gamma ? xh * gamma[j]! : xh) + (beta ? beta[j]! : 0);
    }
  }
}

/**
 * Layer-norm backward from the saved mean/rstd: writes dx and accumulates dgamma += Σ_r dy·x̂ and
 * dbeta += Σ_r dy (each may be null).
 */
export function layerNormBackwardRows<T extends FloatArray>(
  x: T,
  gamma: T | null,
  mean: T,
  rstd: T,
  dy: T,
  dx: T,
  dgamma: T | null,
  dbeta: T | null,
  rows: number,
  cols: number,
): void {
  const fn = "layerNormBackwardRows";
  checkDims(fn, rows, cols);
  checkSameType(fn, x, [
    ["gamma", gamma],
    ["mean", mean],
    ["rstd", rstd],
    ["dy", dy],
    ["dx", dx],
    ["dgamma", dgamma],
    ["dbeta", dbeta],
  ]);
  const n = rows * cols;
  checkLen(fn, "x", x, n, `[${rows},${cols}]`);
  checkLen(fn, "dy", dy, n, `[${rows},${cols}]`);
  checkLen(fn, "dx", dx, n, `[${rows},${cols}]`);
  if (gamma) checkLen(fn, "gamma", gamma, cols, `[${cols}]`);
  if (dgamma) checkLen(fn, "dgamma", dgamma, cols, `[${cols}]`);
  if (dbeta) checkLen(fn, "dbeta", dbeta, cols, `[${cols}]`);
  checkLen(fn, "mean", mean, rows, `[${rows}]`);
  checkLen(fn, "rstd", rstd, rows, `[${rows}]`);
  if (n === 0) return;
  const rt = f32Runtime(x);
  if (rt) {
    const threads = threadsFor(n, rows);
    const ws = new Workspace(rt);
    const px = ws.alloc(n * 4);
    const pdy = ws.alloc(n * 4);
    const pg = ws.alloc(cols * 4);
    const pm = ws.alloc(rows * 4);
    const pr = ws.alloc(rows * 4);
    const pacc = ws.alloc(threads * 2 * cols * 8); // per thread: dgamma64[cols], dbeta64[cols]
    copyTo(rt, px, x as Float32Array, n);
    copyTo(rt, pdy, dy as Float32Array, n);
    copyTo(rt, pm, mean as Float32Array, rows);
    copyTo(rt, pr, rstd as Float32Array, rows);
    const v = f32View(rt);
    if (gamma) v.set((gamma as Float32Array).subarray(0, cols), pg >> 2);
    else v.fill(1, pg >> 2, (pg >> 2) + cols);
    const acc64 = new Float64Array(rt.memory.buffer, pacc, threads * 2 * cols);
    acc64.fill(0);
    const per = Math.ceil(rows / threads);
    const tasks: ParallelTask[] = [];
    for (let t = 0, r0 = 0; r0 < rows; t++, r0 += per) {
      const nr = Math.min(per, rows - r0);
      const o = r0 * cols * 4;
      const dg = pacc + t * 2 * cols * 8;
      tasks.push({
        fn: "ln_bwd_f32",
        args: [px + o, pg, pm + r0 * 4, pr + r0 * 4, pdy + o, px + o, dg, dg + cols * 8, nr, cols],
      });
    }
    runParallel(tasks);
    copyFrom(rt, px, dx as Float32Array, n);
    const acc = new Float64Array(rt.memory.buffer, pacc, tasks.length * 2 * cols);
    for (let j = 0; j < cols; j++) {
      let sg = 0;
      let sb = 0;
      for (let t = 0; t < tasks.length; t++) {
        sg += acc[t * 2 * cols + j]!;
        sb += acc[t * 2 * cols + cols + j]!;
      }
      if (dgamma) dgamma[j] = dgamma[j]! + sg;
      if (dbeta) dbeta[j] = dbeta[j]! + sb;
    }
    return;
  }
  const dg = dgamma ? new Float64Array(cols) : null;
  const db = dbeta ? new Float64Array(cols) : null;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const mu = mean[r]!;
    const rs = rstd[r]!;
    let a = 0;
    let b = 0;
    for (let j = 0; j < cols; j++) {
      const xh = (x[o + j]! - mu) * rs;
      const d = dy[o + j]!;
      const gy = gamma ? d * gamma[j]! : d;
      a += gy;
      b += gy * xh;
      if (dg) dg[j]! += d * xh;
      if (db) db[j]! += d;
    }
    const ma = a / cols;
    const mb = b / cols;
    for (let j = 0; j < cols; j++) {
      const xh = (x[o + j]! - mu) * rs;
      const gy = gamma ? dy[o + j]! * gamma[j]! : dy[o + j]!;
      dx[o + j] = rs * (gy - ma - xh * mb);
    }
  }
  if (dgamma && dg) for (let j = 0; j < cols; j++) dgamma[j] = dgamma[j]! + dg[j]!;
  if (dbeta && db) for (let j = 0; j < cols; j++) dbeta[j] = dbeta[j]! + db[j]!;
}

// ---------------------------------------------------------------------------------------------
// GELU (tanh approximation, as in GPT-2)

function geluScalar(x: number): number {
  // 0.5 x (1 + tanh(u)) = x * sigmoid(2u), evaluated without cancellation for either sign of u
  const u = GELU_TANH_SCALE * (x + GELU_CUBIC * x * x * x);
  const t = Math.exp(-2 * Math.abs(u));
  return (x * (u >= 0 ? 1 : t)) / (1 + t);
}

function geluGradScalar(x: number): number {
  const u = GELU_TANH_SCALE * (x + GELU_CUBIC * x * x * x);
  const t = Math.exp(-2 * Math.abs(u));
  const den = 1 + t;
  const sig = (u >= 0 ? 1 : t) / den;
  const du = GELU_TANH_SCALE * (1 + 3 * GELU_CUBIC * x * x);
  return sig + (2 * x * du * t) / (den * den);
}

/** GPT-2 GELU: out = 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))) elementwise over n values. */
export function geluTanh<T extends FloatArray>(x: T, out: T, n: number): void {
  const fn = "geluTanh";
  if (!Number.isInteger(n) || n < 0) throw new Error(`${fn}: n must be a non-negative integer, got ${n}`);
  checkSameType(fn, x, [["out", out]]);
  checkLen(fn, "x", x, n, `[${n}]`);
  checkLen(fn, "out", out, n, `[${n}]`);
  if (n === 0) return;
  const rt = f32Runtime(x);
  if (rt) {
    const px = new Workspace(rt).alloc(n * 4);
    streamRows(rt, "gelu_f32", n, 1, 2, [px, px, n], [4, 4, 0], x as Float32Array, px, out as Float32Array);
    return;
  }
  for (let i = 0; i < n; i++) out[i] = geluScalar(x[i]!);
}

/** Backward of geluTanh: dx = dy · gelu'(x) elementwise over n values. */
export function geluTanhBackward<T extends FloatArray>(x: T, dy: T, dx: T, n: number): void {
  const fn = "geluTanhBackward";
  if (!Number.isInteger(n) || n < 0) throw new Error(`${fn}: n must be a non-negative integer, got ${n}`);
  checkSameType(fn, x, [
    ["dy", dy],
    ["dx", dx],
  ]);
  checkLen(fn, "x", x, n, `[${n}]`);
  checkLen(fn, "dy", dy, n, `[${n}]`);
  checkLen(fn, "dx", dx, n, `[${n}]`);
  if (n === 0) return;
  const rt = f32Runtime(x);
  if (rt) {
    const ws = new Workspace(rt);
    const px = ws.alloc(n * 4);
    const pdy = ws.alloc(n * 4);
    // dy is small next to the work per element: copy it up front, stream x and dx
    copyTo(rt, pdy, dy as Float32Array, n);
    streamRows(rt, "gelu_bwd_f32", n, 1, 3, [px, pdy, px, n], [4, 4, 4, 0], x as Float32Array, px, dx as Float32Array);
    return;
  }
  for (let i = 0; i < n; i++) dx[i] = dy[i]! * geluGradScalar(x[i]!);
}
