/**
 * The AdamW update of one parameter over plain arrays, for optimisers whose state lives in host memory (the CPU
 * backend's tensors): the moments are updated in place and the new parameter written to `out`.
 *
 * Every element is computed in float64 in one fixed order (below) and each stored value rounded once to the
 * arrays' type, so a step is a pure function of (p, g, m, v, constants): bit-identical between the JavaScript
 * loop and the WebAssembly SIMD kernel (adamw-wasm.ts), for any number of threads. Float32 arrays of at least
 * `ADAMW_KERNEL_MIN` elements run the kernel where WebAssembly SIMD is available, streamed in chunks over the
 * kernel threads (the calling thread copies chunks in and out while the others compute); float64 arrays, small
 * ones and runtimes without SIMD run the loop.
 *
 *   g' = g·scale;  m ← m·β1 + g'·(1 − β1);  v ← v·β2 + (g'·(1 − β2))·g'
 *   u  = (m / bc1) / (√(v / bc2) + ε);  when λ ≠ 0, u ← u + p·λ;  out = p − u·lr
 *
 * (m and v in the update are the float64 values before their rounding to the arrays' type.)
 */
import { ADAMW_CONSTANTS_BYTES } from "./adamw-wasm.js";
import { MAX_STREAM_CHUNKS, poolThreads, runStreamed } from "./pool.js";
import { activeRuntime, f32View, Workspace } from "./runtime.js";

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

function checkConstants(c: AdamWUpdateConstants): void {
  for (const k of ["beta1", "beta2", "eps", "scale", "bc1", "bc2", "decay", "lr"] as const) {
    if (typeof c[k] !== "number" || !Number.isFinite(c[k]))
      throw new Error(`adamwUpdateArrays: constant ${k} is ${String(c[k])}; expected a finite number`);
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

/**
 * One AdamW update of a parameter `p` with gradient `g`: the moments `m` and `v` are updated in place and the new
 * parameter is written to `out` (which may be `p` itself). All five arrays have the same type (Float32Array or
 * Float64Array) and length. See the module comment for the arithmetic.
 */
export function adamwUpdateArrays(p: Float, g: Float, m: Float, v: Float, out: Float, c: AdamWUpdateConstants): void {
  const fn = "adamwUpdateArrays";
  if (!(p instanceof Float32Array) && !(p instanceof Float64Array)) throw new Error(`${fn}: p must be a Float32Array or Float64Array`);
  const n = p.length;
  for (const [name, a] of [
    ["g", g],
    ["m", m],
    ["v", v],
    ["out", out],
  ] as const) {
    if (a.constructor !== p.constructor)
      throw new Error(`${fn}: ${name} is a ${a.constructor.name}; expected a ${p.constructor.name} like p`);
    if (a.length !== n) throw new Error(`${fn}: ${name} has ${a.length} elements; expected ${n} like p`);
  }
  checkConstants(c);
  const rt = p instanceof Float32Array && n >= ADAMW_KERNEL_MIN ? activeRuntime() : null;
  if (!rt) {
    adamwLoop(p, g, m, v, out, c, 0, n);
    return;
  }
  const ws = new Workspace(rt);
  const pc = ws.alloc(ADAMW_CONSTANTS_BYTES);
  const addr = [ws.alloc(4 * n), ws.alloc(4 * n), ws.alloc(4 * n), ws.alloc(4 * n)] as const;
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
  const ins = [p, g, m, v] as Float32Array[];
  const w = addr.map((a) => a >> 2);
  const threads = poolThreads();
  let per = n <= 2 * CHUNK ? n : Math.min(CHUNK, Math.ceil(n / (4 * threads)));
  per = Math.max(per, Math.ceil(n / MAX_STREAM_CHUNKS));
  per += per & 1; // even, so that only the last chunk can end on a single element
  runStreamed({
    fn: "adamw_f32",
    total: n,
    per: Math.min(per, n),
    rowsArg: 4,
    base: [...addr, 0, pc, c.decay !== 0 ? 1 : 0],
    perRow: [4, 4, 4, 4, 0, 0, 0],
    copyIn: (r0, k) => {
      for (let j = 0; j < 4; j++) view.set(ins[j]!.subarray(r0, r0 + k), w[j]! + r0);
    },
    copyOut: (r0, k) => {
      (out as Float32Array).set(view.subarray(w[0]! + r0, w[0]! + r0 + k), r0);
      (m as Float32Array).set(view.subarray(w[2]! + r0, w[2]! + r0 + k), r0);
      (v as Float32Array).set(view.subarray(w[3]! + r0, w[3]! + r0 + k), r0);
    },
  });
}
