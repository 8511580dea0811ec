/**
 * Fused vocabulary projection + softmax cross-entropy: per-row NLL of logits = x·wᵀ (x [N, E], w [V, E]) and
 * its gradients, without materialising the [N, V] logits.
 *
 * The rows are processed in chunks (at most CHUNK_ELEMS logits each): a chunk's logits are computed by the GEMM
 * into kernel memory, reduced to loss / log-sum-exp there, and in the backward recomputed, turned in place into
 * dlogits = g·(softmax − onehot), and multiplied into dx (dlogits·w) and dw (+= dlogitsᵀ·x_chunk). The float32
 * path keeps x, w, dx and dw in kernel memory for the whole call (WebAssembly SIMD GEMM and row kernels, split over
 * the worker threads); float64 (and float32 without SIMD) runs the same chunked loop with the portable kernels.
 *
 * Cost against the unfused ops: the backward recomputes the logits GEMM (a third more GEMM flops), and saves
 * allocating, page-faulting and copying the [N, V] logits and their gradient (two 412 MB arrays per training step
 * of the tiny model), and their memory.
 */
import { gemmBatched, gemmInMemory } from "./gemm.js";
import { poolThreads, runParallel, type ParallelTask } from "./pool.js";
import { crossEntropyBackwardRows, crossEntropyRows } from "./rows.js";
import { activeRuntime, f32View, i32View, Workspace, type KernelRuntime } from "./runtime.js";

type FloatArray = Float32Array | Float64Array;

/** Logits per chunk: 32 Mi floats (128 MiB float32), i.e. 667 rows for GPT-2's vocabulary. */
const CHUNK_ELEMS = 1 << 25;
/** Below this many logits per thread the row kernels of a chunk stay on one thread. */
const MIN_ELEMS_PER_THREAD = 1 << 16;

/** Rows per chunk: chunks of equal size, each at most `max` rows (default from CHUNK_ELEMS). */
function chunkRows(n: number, v: number, max?: number): number {
  const cap = Math.max(1, max ?? Math.floor(CHUNK_ELEMS / Math.max(1, v)));
  const chunks = Math.max(1, Math.ceil(n / cap));
  return Math.ceil(n / chunks);
}

function validate(
  fn: string,
  x: FloatArray,
  w: FloatArray,
  targets: Int32Array,
  n: number,
  e: number,
  v: number,
  ignore: number,
  rowArrays: [string, FloatArray][],
): void {
  for (const [name, d] of [
    ["n", n],
    ["e", e],
    ["v", v],
  ] as const) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`${fn}: ${name} must be a non-negative integer, got ${d}`);
  }
  if (n > 0 && v === 0) throw new Error(`${fn}: the vocabulary size v must be positive when n > 0`);
  const need = (name: string, a: ArrayLike<number>, len: number, shape: string) => {
    if (a.length < len) throw new Error(`${fn}: ${name} has ${a.length} elements, expected at least ${len} (${shape})`);
  };
  need("x", x, n * e, `[${n},${e}]`);
  need("w", w, v * e, `[${v},${e}]`);
  need("targets", targets, n, `[${n}]`);
  for (const [name, a] of rowArrays) {
    if (a.constructor !== x.constructor)
      throw new Error(`${fn}: ${name} is a ${a.constructor.name}; expected a ${x.constructor.name} like x`);
  }
  if (w.constructor !== x.constructor) throw new Error(`${fn}: w is a ${w.constructor.name}; expected a ${x.constructor.name} like x`);
  for (let r = 0; r < n; r++) {
    const t = targets[r]!;
    if (t !== ignore && !(t >= 0 && t < v))
      throw new Error(`${fn}: target ${t} at row ${r} is out of range; expected 0 <= target < ${v} or ${ignore} (ignored)`);
  }
}

/** Row kernel tasks over `rows` rows of a chunk, split over the threads. */
function rowTasks(rows: number, v: number, make: (r0: number, nr: number) => ParallelTask): ParallelTask[] {
  const threads = Math.max(1, Math.min(poolThreads(), rows, Math.floor((rows * v) / MIN_ELEMS_PER_THREAD)));
  const per = Math.ceil(rows / threads);
  const tasks: ParallelTask[] = [];
  for (let r0 = 0; r0 < rows; r0 += per) tasks.push(make(r0, Math.min(per, rows - r0)));
  return tasks;
}

function f32Runtime(x: FloatArray): KernelRuntime | null {
  return x instanceof Float32Array ? activeRuntime() : null;
}

/**
 * One chunked pass over the rows. Per chunk: the logits l = x_chunk·wᵀ; with `forward`, loss and lse of the
 * rows (into `loss` / `lse`); with `backward`, dl = g·(softmax − onehot) in place from `lse` (given, or just
 * computed) and g (`null`: 1 for every row), then dx_chunk = dl·w and dw (+)= dlᵀ·x_chunk.
 */
interface ChunkedJob<T extends FloatArray> {
  x: T;
  w: T;
  targets: Int32Array;
  n: number;
  e: number;
  v: number;
  ignore: number;
  rows: number;
  forward: { loss: T } | null;
  lse: T;
  backward: { g: T | null; dx: T; dw: T } | null;
}

function runChunked<T extends FloatArray>(job: ChunkedJob<T>): void {
  const { x, w, targets, n, e, v, ignore, rows: R, forward, lse, backward } = job;
  const rt = f32Runtime(x);
  if (rt) {
    const ws = new Workspace(rt);
    const px = ws.alloc(n * e * 4),
      pw = ws.alloc(v * e * 4),
      pt = ws.alloc(n * 4),
      pl = ws.alloc(n * 4),
      pe = ws.alloc(n * 4);
    const pg = ws.alloc(n * 4),
      pdx = ws.alloc(n * e * 4),
      pdw = ws.alloc(v * e * 4),
      pc = ws.alloc(R * v * 4);
    const view = f32View(rt);
    view.set((x as Float32Array).subarray(0, n * e), px >> 2);
    view.set((w as Float32Array).subarray(0, v * e), pw >> 2);
    i32View(rt).set(targets.subarray(0, n), pt >> 2);
    if (!forward) view.set((lse as Float32Array).subarray(0, n), pe >> 2);
    if (backward?.g) view.set((backward.g as Float32Array).subarray(0, n), pg >> 2);
    else if (backward) view.fill(1, pg >> 2, (pg >> 2) + n);
    for (let r0 = 0; r0 < n; r0 += R) {
      const nr = Math.min(R, n - r0);
      const xc = px + r0 * e * 4;
      gemmInMemory(rt, false, true, nr, v, e, xc, pw, pc, false);
      if (forward) {
        runParallel(
          rowTasks(nr, v, (a, k) => {
            const c = pc + a * v * 4,
              r = (r0 + a) * 4;
            return { fn: "ce_fwd_f32", args: [c, pt + r, k, v, ignore, pl + r, pe + r] };
          }),
        );
      }
      if (backward) {
        runParallel(
          rowTasks(nr, v, (a, k) => {
            const c = pc + a * v * 4,
              r = (r0 + a) * 4;
            return { fn: "ce_bwd_f32", args: [c, pt + r, pe + r, pg + r, c, k, v, ignore] };
          }),
        );
        gemmInMemory(rt, false, false, nr, e, v, pc, pw, pdx + r0 * e * 4, false);
        gemmInMemory(rt, true, false, v, e, nr, pc, xc, pdw, r0 > 0);
      }
    }
    const out = f32View(rt);
    const copyOut = (dst: T, addr: number, count: number) => (dst as Float32Array).set(out.subarray(addr >> 2, (addr >> 2) + count));
    if (forward) {
      copyOut(forward.loss, pl, n);
      copyOut(lse, pe, n);
    }
    if (backward) {
      copyOut(backward.dx, pdx, n * e);
      copyOut(backward.dw, pdw, v * e);
    }
    return;
  }
  const chunk = new (x.constructor as new (len: number) => T)(R * v);
  const ones = backward && !backward.g ? (new (x.constructor as new (len: number) => T)(n).fill(1) as T) : null;
  for (let r0 = 0; r0 < n; r0 += R) {
    const nr = Math.min(R, n - r0);
    const part = (a: T) => a.subarray(r0, r0 + nr) as T;
    const t = targets.subarray(r0, r0 + nr);
    gemmBatched({ transA: false, transB: true, m: nr, n: v, k: e, a: x, aOffset: r0 * e, b: w, c: chunk });
    if (forward) crossEntropyRows(chunk, t, nr, v, ignore, part(forward.loss), part(lse));
    if (backward) {
      crossEntropyBackwardRows(chunk, t, part(lse), part((backward.g ?? ones)!), chunk, nr, v, ignore);
      gemmBatched({ transA: false, transB: false, m: nr, n: e, k: v, a: chunk, b: w, c: backward.dx, cOffset: r0 * e });
      gemmBatched({ transA: true, transB: false, m: v, n: e, k: nr, a: chunk, b: x, bOffset: r0 * e, c: backward.dw, accumulate: r0 > 0 });
    }
  }
}

/**
 * Per-row loss[r] = logsumexp(l[r,:]) − l[r, targets[r]] (0 for ignored rows) and lse[r] of l = x·wᵀ.
 * `maxChunkRows` overrides the chunk size (tests).
 */
export function linearCrossEntropyRows<T extends FloatArray>(
  x: T,
  w: T,
  targets: Int32Array,
  n: number,
  e: number,
  v: number,
  ignoreIndex: number,
  loss: T,
  lse: T,
  maxChunkRows?: number,
): void {
  const fn = "linearCrossEntropyRows";
  validate(fn, x, w, targets, n, e, v, ignoreIndex, [
    ["loss", loss],
    ["lse", lse],
  ]);
  if (loss.length < n || lse.length < n) throw new Error(`${fn}: loss and lse need ${n} elements each`);
  if (n === 0) return;
  runChunked({ x, w, targets, n, e, v, ignore: ignoreIndex, rows: chunkRows(n, v, maxChunkRows), forward: { loss }, lse, backward: null });
}

/**
 * Backward from the saved lse: with dl = g[:,None]·(softmax(x·wᵀ) − onehot(targets)) (zero rows for ignored
 * targets), writes dx = dl·w [N, E] and dw = dlᵀ·x [V, E] (both overwritten).
 */
export function linearCrossEntropyBackwardRows<T extends FloatArray>(
  x: T,
  w: T,
  targets: Int32Array,
  lse: T,
  g: T,
  dx: T,
  dw: T,
  n: number,
  e: number,
  v: number,
  ignoreIndex: number,
  maxChunkRows?: number,
): void {
  const fn = "linearCrossEntropyBackwardRows";
  validate(fn, x, w, targets, n, e, v, ignoreIndex, [
    ["lse", lse],
    ["g", g],
    ["dx", dx],
    ["dw", dw],
  ]);
  if (lse.length < n || g.length < n) throw new Error(`${fn}: lse and g need ${n} elements each`);
  if (dx.length < n * e || dw.length < v * e) throw new Error(`${fn}: dx needs ${n * e} and dw ${v * e} elements`);
  if (n === 0 || e === 0) {
    dw.fill(0, 0, v * e);
    return;
  }
  runChunked({
    x,
    w,
    targets,
    n,
    e,
    v,
    ignore: ignoreIndex,
    rows: chunkRows(n, v, maxChunkRows),
    forward: null,
    lse,
    backward: { g, dx, dw },
  });
}

/**
 * Forward and backward in one pass, for a loss that sums (or averages) the rows: loss / lse as in
 * linearCrossEntropyRows, and dx, dw (overwritten) = the gradients of Σ_r loss[r] (every non-ignored row with
 * weight 1). Three GEMMs per chunk instead of the four of a forward followed by a backward.
 */
export function linearCrossEntropyWithGradRows<T extends FloatArray>(
  x: T,
  w: T,
  targets: Int32Array,
  n: number,
  e: number,
  v: number,
  ignoreIndex: number,
  loss: T,
  lse: T,
  dx: T,
  dw: T,
  maxChunkRows?: number,
): void {
  const fn = "linearCrossEntropyWithGradRows";
  validate(fn, x, w, targets, n, e, v, ignoreIndex, [
    ["loss", loss],
    ["lse", lse],
    ["dx", dx],
    ["dw", dw],
  ]);
  if (loss.length < n || lse.length < n) throw new Error(`${fn}: loss and lse need ${n} elements each`);
  if (dx.length < n * e || dw.length < v * e) throw new Error(`${fn}: dx needs ${n * e} and dw ${v * e} elements`);
  dw.fill(0, 0, v * e);
  if (n === 0) return;
  runChunked({
    x,
    w,
    targets,
    n,
    e,
    v,
    ignore: ignoreIndex,
    rows: chunkRows(n, v, maxChunkRows),
    forward: { loss },
    lse,
    backward: { g: null, dx, dw },
  });
}
