/**
 * Fused loops for the optimiser on the CPU backend, whose tensors live in host memory (`data()` is the tensor's
 * own array, no transfer). They compute exactly what the tensor-op definitions in adamw.ts compute — float64
 * arithmetic in the same order, each result rounded once to its tensor's dtype — in one pass instead of one pass
 * per op (about ten times less work for the update of a 3.7 M-parameter model). Other backends use the
 * tensor-op definitions; the tests check that both agree bit for bit.
 */
import { CpuBackend, getBackend, tensor, type Tensor } from "@qkvflow/autograd";

/** Per-update constants of the Adam arithmetic (host numbers). */
export interface AdamConstants {
  beta1: number;
  beta2: number;
  eps: number;
  /** Clip factor applied to the gradient (1: none). */
  scale: number;
  /** Bias corrections 1 − β1ᵗ and 1 − β2ᵗ. */
  bc1: number;
  bc2: number;
  /** Decay λ of this parameter (0 when it does not decay). */
  decay: number;
  lr: number;
}

type Float = Float32Array | Float64Array;

/** Whether the current backend keeps tensors in host memory (the CPU backend), where the fused loops apply. */
export function hostMemoryBackend(): boolean {
  return getBackend() instanceof CpuBackend;
}

function floats(t: Tensor): Float {
  return t.data() as Float;
}

function like(t: Tensor, n: number): Float {
  return t.dtype === "float64" ? new Float64Array(n) : new Float32Array(n);
}

/** Σ g² over all gradients, one float64 sum in order (the square of the global norm). */
export function sumOfSquaresHost(grads: readonly Tensor[]): number {
  let s = 0;
  for (const g of grads) {
    const d = floats(g);
    for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  }
  return s;
}

/** One AdamW update of one parameter in a single float64 loop (the formula and order of `adamwUpdate`). */
export function adamwUpdateHost(p: Tensor, g: Tensor, m: Tensor, v: Tensor, c: AdamConstants): { p: Tensor; m: Tensor; v: Tensor } {
  const pd = floats(p),
    gd = floats(g),
    md = floats(m),
    vd = floats(v);
  const n = pd.length;
  const pn = like(p, n),
    mn = like(m, n),
    vn = like(v, n);
  const { beta1: b1, beta2: b2, eps, scale, bc1, bc2, decay: lam, lr } = c;
  const a1 = 1 - b1,
    a2 = 1 - b2;
  for (let i = 0; i < n; i++) {
    const gi = scale === 1 ? gd[i]! : gd[i]! * scale;
    const mi = md[i]! * b1 + gi * a1;
    const vi = vd[i]! * b2 + gi * a2 * gi;
    mn[i] = mi;
    vn[i] = vi;
    const u = mi / bc1 / (Math.sqrt(vi / bc2) + eps);
    pn[i] = pd[i]! - (lam !== 0 ? u + pd[i]! * lam : u) * lr;
  }
  const shape = [...p.shape];
  return { p: tensor(pn, { shape, dtype: p.dtype }), m: tensor(mn, { shape, dtype: m.dtype }), v: tensor(vn, { shape, dtype: v.dtype }) };
}
