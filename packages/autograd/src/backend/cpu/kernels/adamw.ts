/**
 * The AdamW update of one parameter over plain arrays, for optimisers whose state lives in host memory (the CPU
 * backend's tensors): the moments are updated in place and the new parameter written to `out`.
 *
 * Every element is computed in float64 in one fixed order (below) and each stored value rounded once to the
 * arrays' type, so a step is a pure function of (p, g, m, v, constants): bit-identical between the JavaScript
 * loop and the WebAssembly SIMD kernel (adamw-wasm.ts), for any number of threads. Float32 arrays of at least
 * `ADAMW_KERNEL_MIN` elements run the kernel where WebAssembly SIMD is available, streamed in chunks over the
 * kernel threads (the calling thread copies chunks in and out while the others compute); float64 arrays, small
 * ones and runtimes without SIMD run the loop. `adamwUpdateMany` updates a whole parameter set with one kernel call
 * per distinct decay λ (the parameters laid end to end), so the threads synchronise once or twice per optimiser step
 * instead of once per parameter.
 *
 *   g' = g·scale;  m ← m·β1 + g'·(1 − β1);  v ← v·β2 + (g'·(1 − β2))·g'
 *   u  = (m / bc1) / (√(v / bc2) + ε);  when λ ≠ 0, u ← u + p·λ;  out = p − u·lr
 *
 * (m and v in the update are the float64 values before their rounding to the arrays' type.)
 */
import { ADAMW_CONSTANTS_BYTES } from "./adamw-wasm.js";
import { MAX_STREAM_CHUNKS, poolThreads, runStreamed } from "./pool.js";
import { activeRuntime, f32View, type KernelRuntime, Workspace } from "./runtime.js";

/** Per-step constants of one parameter's AdamW update (host numbers). */
export interface AdamWUpdateConstants {
  beta1: number;
  beta2: number;
  eps: number;
  /** Clip factor applied to the gradient (1: none). */
  scale: number;
  /** Bias corrections 1 − β1ᵗ and 1 − β2ᵗ. */
  bc1: number;
  bc2: number;
  /** Decoupled decay λ of this parameter (0: none). */
  decay: number;
  lr: number;
}

type Float = Float32Array | Float64Array;

/** Float32 arrays shorter than this run the JavaScript loop (the kernel call and copies would cost more). */
export const ADAMW_KERNEL_MIN = 4096;
/** Elements per streamed chunk: 4 arrays × 4 bytes × 32 Ki = 512 KiB, half an L2. */
const CHUNK = 1 << 15;

function checkConstants(fn: string, c: AdamWUpdateConstants): void {
  for (const k of ["beta1", "beta2", "eps", "scale", "bc1", "bc2", "decay", "lr"] as const) {
    if (typeof c[k] !== "number" || !Number.isFinite(c[k]))
      throw new Error(`${fn}: constant ${k} is ${String(c[k])}; expected a finite number`);
  }
}

/** The update of elements [from, to) as a JavaScript float64 loop. */
function adamwLoop(p: Float, g: Float, m: Float, v: Float, out: Float, c: AdamWUpdateConstants, from: number, to: number): void {
  const { beta1: b1, beta2: b2, eps, scale, bc1, bc2, decay: lam, lr } = c;
  const a1 = 1 - b1,
    a2 = 1 - b2;
  for (let i = from; i < to; i++) {
    const gi = g[i]! * scale;
    const mi = m[i]! * b1 + gi * a1;
    const vi = v[i]! * b2 + gi * a2 * gi;
    m[i] = mi;
    v[i] = vi;
    const pi = p[i]!;
    const u = mi / bc1 / (Math.sqrt(vi / bc2) + eps);
    out[i] = pi - (lam !== 0 ? u + pi * lam : u) * lr;
  }
}

/** One parameter of a multi-parameter update: its arrays (see `adamwUpdateArrays`) and its decay λ. */
export interface AdamWUpdateItem {
  p: Float;
  g: Float;
  m: Float;
  v: Float;
  out: Float;
  /** Decoupled decay λ of this parameter (0: none). */
  decay: number;
}

function checkItem(fn: string, it: AdamWUpdateItem, where: string): void {
  const { p } = it;
  if (!(p instanceof Float32Array) && !(p instanceof Float64Array))
    throw new Error(`${fn}: ${where}p must be a Float32Array or Float64Array`);
  const n = p.length;
  for (const name of ["g", "m", "v", "out"] as const) {
    const a = it[name];
    if (a === null || typeof a !== "object" || a.constructor !== p.constructor)
      throw new Error(`${fn}: ${where}${name} is a ${a?.constructor?.name ?? String(a)}; expected a ${p.constructor.name} like p`);
    if (a.length !== n) throw new Error(`${fn}: ${where}${name} has ${a.length} elements; expected ${n} like p`);
  }
  if (typeof it.decay !== "number" || !Number.isFinite(it.decay))
    throw new Error(`${fn}: ${where}decay is ${String(it.decay)}; expected a finite number`);
}

/**
 * One AdamW update of a parameter `p` with gradient `g`: the moments `m` and `v` are updated in place and the new
 * parameter is written to `out` (which may be `p` itself). All five arrays have the same type (Float32Array or
 * Float64Array) and length. See the module comment for the arithmetic.
 */
export function adamwUpdateArrays(p: Float, g: Float, m: Float, v: Float, out: Float, c: AdamWUpdateConstants): void {
  const fn = "adamwUpdateArrays";
  checkItem(fn, { p, g, m, v, out, decay: c.decay }, "");
  checkConstants(fn, c);
  run([{ p, g, m, v, out, decay: c.decay }], c, ADAMW_KERNEL_MIN);
}

/**
 * The AdamW update of several parameters with shared constants (`c` without the decay) and each item's own decay λ:
 * exactly `adamwUpdateArrays` on each item, but the float32 parameters run as one streamed kernel call per distinct λ
 * (laid end to end in kernel memory), so a model's update is one or two calls rather than one per parameter.
 */
export function adamwUpdateMany(items: readonly AdamWUpdateItem[], c: Omit<AdamWUpdateConstants, "decay">): void {
  const fn = "adamwUpdateMany";
  if (!Array.isArray(items)) throw new Error(`${fn}: items must be an array of { p, g, m, v, out, decay }`);
  items.forEach((it, i) => checkItem(fn, it, `item ${i}: `));
  checkConstants(fn, { ...c, decay: 0 });
  run(items, c, 2 * ADAMW_KERNEL_MIN);
}

/** Float64 items, and float32 groups below `minKernel` elements in all (or without SIMD), run the loop; the rest the kernel. */
function run(items: readonly AdamWUpdateItem[], c: Omit<AdamWUpdateConstants, "decay">, minKernel: number): void {
  const groups = new Map<number, AdamWUpdateItem[]>();
  for (const it of items) {
    if (it.p instanceof Float64Array) adamwLoop(it.p, it.g, it.m, it.v, it.out, { ...c, decay: it.decay }, 0, it.p.length);
    else {
      const list = groups.get(it.decay);
      if (list === undefined) groups.set(it.decay, [it]);
      else list.push(it);
    }
  }
  for (const [decay, list] of groups) {
    const total = list.reduce((s, it) => s + it.p.length, 0);
    const rt = total >= minKernel ? activeRuntime() : null;
    if (rt) kernelGroup(rt, list as F32Item[], total, { ...c, decay });
    else for (const it of list) adamwLoop(it.p, it.g, it.m, it.v, it.out, { ...c, decay }, 0, it.p.length);
  }
}

type F32Item = { p: Float32Array; g: Float32Array; m: Float32Array; v: Float32Array; out: Float32Array };

/** One streamed kernel call over float32 items laid end to end (`total` elements) with one decay λ. */
function kernelGroup(rt: KernelRuntime, list: F32Item[], total: number, c: AdamWUpdateConstants): void {
  const ws = new Workspace(rt);
  const pc = ws.alloc(ADAMW_CONSTANTS_BYTES);
  const addr = [ws.alloc(4 * total), ws.alloc(4 * total), ws.alloc(4 * total), ws.alloc(4 * total)] as const;
  new Float64Array(rt.memory.buffer, pc, ADAMW_CONSTANTS_BYTES / 8).set([
    c.beta1,
    1 - c.beta1,
    c.beta2,
    1 - c.beta2,
    c.scale,
    c.bc1,
    c.bc2,
    c.eps,
    c.decay,
    c.lr,
  ]);
  const view = f32View(rt);
  const w = addr.map((a) => a >> 2);
  const starts: number[] = [];
  let at = 0;
  for (const it of list) {
    starts.push(at);
    at += it.p.length;
  }
  /** Calls f(item, from, to, offset) for the parts of items inside elements [r0, r0 + k) of the concatenation. */
  const parts = (r0: number, k: number, f: (it: F32Item, from: number, to: number, off: number) => void): void => {
    for (let j = 0; j < list.length; j++) {
      const s0 = starts[j]!,
        it = list[j]!;
      const from = Math.max(r0, s0) - s0,
        to = Math.min(r0 + k, s0 + it.p.length) - s0;
      if (from < to) f(it, from, to, s0);
    }
  };
  const threads = poolThreads();
  let per = total <= 2 * CHUNK ? total : Math.min(CHUNK, Math.ceil(total / (4 * threads)));
  per = Math.max(per, Math.ceil(total / MAX_STREAM_CHUNKS));
  per += per & 1; // even: the kernel works on pairs, and only the last chunk can end on a single element
  runStreamed({
    fn: "adamw_f32",
    total,
    per: Math.min(per, total),
    rowsArg: 4,
    base: [...addr, 0, pc, c.decay !== 0 ? 1 : 0],
    perRow: [4, 4, 4, 4, 0, 0, 0],
    copyIn: (r0, k) =>
      parts(r0, k, (it, from, to, off) => {
        view.set(it.p.subarray(from, to), w[0]! + off + from);
        view.set(it.g.subarray(from, to), w[1]! + off + from);
        view.set(it.m.subarray(from, to), w[2]! + off + from);
        view.set(it.v.subarray(from, to), w[3]! + off + from);
      }),
    copyOut: (r0, k) =>
      parts(r0, k, (it, from, to, off) => {
        it.out.set(view.subarray(w[0]! + off + from, w[0]! + off + to), from);
        it.m.set(view.subarray(w[2]! + off + from, w[2]! + off + to), from);
        it.v.set(view.subarray(w[3]! + off + from, w[3]! + off + to), from);
      }),
  });
}
