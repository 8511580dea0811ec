/**
 * Arithmetic on flat states (lists of tensor leaves) with autograd ops, and host-side helpers for the
 * step-size controller (tolerances, error norms, finiteness). Host helpers read values only; they never
 * take part in differentiation.
 */
import { add, mul, Tensor, tensor, type TypedArray } from "@qkvflow/autograd";
import type { Tolerance } from "./types.js";

/** y + h·Σ_j coeffs[j]·k_j per leaf (terms with a zero coefficient are skipped). Differentiable. */
export function combine(y: readonly Tensor[], h: number, coeffs: readonly number[], ks: readonly (readonly Tensor[])[]): Tensor[] {
  const out: Tensor[] = [];
  for (let l = 0; l < y.length; l++) {
    let acc = y[l];
    for (let j = 0; j < coeffs.length; j++) {
      const cj = coeffs[j];
      if (cj !== 0) acc = add(acc, mul(ks[j][l], h * cj));
    }
    out.push(acc);
  }
  return out;
}

/** h·Σ_j coeffs[j]·k_j per leaf (an increment without the base state). Differentiable. */
export function increment(h: number, coeffs: readonly number[], ks: readonly (readonly Tensor[])[]): Tensor[] {
  const n = ks[0].length;
  const out: Tensor[] = [];
  for (let l = 0; l < n; l++) {
    let acc: Tensor | null = null;
    for (let j = 0; j < coeffs.length; j++) {
      const cj = coeffs[j];
      if (cj === 0) continue;
      const term = mul(ks[j][l], h * cj);
      acc = acc ? add(acc, term) : term;
    }
    out.push(acc ?? mul(ks[0][l], 0));
  }
  return out;
}

/**
 * h·Σ_j coeffs[j]·k_j per leaf computed from the values on the host (one fused loop, no autodiff graph);
 * for quantities that only steer the step-size controller.
 */
export function hostIncrement(h: number, coeffs: readonly number[], ks: readonly (readonly Tensor[])[]): Tensor[] {
  return ks[0].map((leaf, l) => {
    const out = new Float64Array(leaf.size);
    for (let j = 0; j < coeffs.length; j++) {
      const w = h * coeffs[j];
      if (w === 0) continue;
      const d = hostValues(ks[j][l]);
      for (let i = 0; i < out.length; i++) out[i] += w * d[i];
    }
    return tensorLike(out, leaf);
  });
}

/**
 * Cubic Hermite interpolation on a step of size h at θ ∈ [0, 1] through (y0, f0) and (y1, f1); third order,
 * used for methods without their own continuous extension. Differentiable.
 */
export function hermite(
  y0: readonly Tensor[],
  f0: readonly Tensor[],
  y1: readonly Tensor[],
  f1: readonly Tensor[],
  h: number,
  theta: number,
): Tensor[] {
  const t = theta,
    t2 = t * t,
    t3 = t2 * t;
  const h00 = 2 * t3 - 3 * t2 + 1;
  const h10 = t3 - 2 * t2 + t;
  const h01 = -2 * t3 + 3 * t2;
  const h11 = t3 - t2;
  const out: Tensor[] = [];
  for (let l = 0; l < y0.length; l++) {
    let acc = mul(y0[l], h00);
    acc = add(acc, mul(y1[l], h01));
    acc = add(acc, mul(f0[l], h * h10));
    acc = add(acc, mul(f1[l], h * h11));
    out.push(acc);
  }
  return out;
}

/**
 * Flattens a tolerance (a number, or a tree of numbers matching the state's structure, where a number at
 * any node applies to all leaves below it) into one number per tensor leaf, in `treeFlatten` order.
 */
export function flattenTolerance(fn: string, what: string, tol: Tolerance | undefined, fallback: number, state: unknown): number[] {
  const out: number[] = [];
  const check = (v: number, path: string): number => {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
      throw new Error(`${fn}: ${what}${path} is ${String(v)}; expected a finite number >= 0`);
    return v;
  };
  const countLeaves = (x: unknown): number => {
    if (x instanceof Tensor) return 1;
    if (Array.isArray(x)) return x.reduce((s: number, v) => s + countLeaves(v), 0);
    if (isPlainObject(x)) return Object.keys(x).reduce((s, k) => s + countLeaves(x[k]), 0);
    return 0;
  };
  const walk = (t: unknown, y: unknown, path: string): void => {
    if (typeof t === "number") {
      const v = check(t, path);
      for (let i = countLeaves(y); i > 0; i--) out.push(v);
      return;
    }
    if (y instanceof Tensor) throw new Error(`${fn}: ${what}${path} is ${describe(t)}; expected a number for this tensor leaf`);
    if (Array.isArray(y)) {
      if (!Array.isArray(t) || t.length !== y.length)
        throw new Error(`${fn}: ${what}${path} is ${describe(t)}; expected a number or an array of ${y.length} entries matching the state`);
      y.forEach((v, i) => walk(t[i], v, `${path}[${i}]`));
      return;
    }
    if (isPlainObject(y)) {
      if (!isPlainObject(t))
        throw new Error(`${fn}: ${what}${path} is ${describe(t)}; expected a number or an object with keys ${Object.keys(y).join(", ")}`);
      for (const k of Object.keys(y)) {
        if (countLeaves(y[k]) === 0) continue;
        if (!(k in t)) throw new Error(`${fn}: ${what}${path} has no key '${k}'; expected a tolerance for every state leaf`);
        walk(t[k], y[k], `${path}.${k}`);
      }
      return;
    }
  };
  walk(tol ?? fallback, state, "");
  return out;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype;
}

function describe(x: unknown): string {
  if (Array.isArray(x)) return `an array of ${x.length}`;
  if (x === null) return "null";
  return typeof x;
}

/** Host values of a tensor as a typed array (for the controller only). */
export function hostValues(x: Tensor): TypedArray {
  return x.data();
}

/**
 * RMS over all elements of err / (atol + rtol·max(|y0|, |y1|)), the scaled error norm of Hairer–Nørsett–Wanner.
 * Returns NaN when any involved value is not finite.
 */
export function errorRatio(
  err: readonly Tensor[],
  y0: readonly Tensor[],
  y1: readonly Tensor[],
  rtol: readonly number[],
  atol: readonly number[],
): number {
  let acc = 0;
  let n = 0;
  for (let l = 0; l < err.length; l++) {
    const e = hostValues(err[l]),
      a = hostValues(y0[l]),
      b = hostValues(y1[l]);
    const rt = rtol[l],
      at = atol[l];
    for (let i = 0; i < e.length; i++) {
      const sc = at + rt * Math.max(Math.abs(a[i]), Math.abs(b[i]));
      const r = e[i] / sc;
      acc += r * r;
      if (!Number.isFinite(b[i])) acc = NaN;
    }
    n += e.length;
  }
  if (n === 0) return 0;
  return Math.sqrt(acc / n);
}

/** Index of the first leaf with a non-finite value and the element index, or null when all are finite. */
export function firstNonFinite(y: readonly Tensor[]): { leaf: number; index: number; value: number } | null {
  for (let l = 0; l < y.length; l++) {
    const d = hostValues(y[l]);
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i])) return { leaf: l, index: i, value: d[i] };
  }
  return null;
}

/** A new tensor with the given host values and the shape/dtype of `like` (no autodiff information). */
export function tensorLike(values: ArrayLike<number>, like: Tensor): Tensor {
  const arr = like.dtype === "float64" ? Float64Array.from(values) : Float32Array.from(values);
  return tensor(arr, { dtype: like.dtype, shape: like.shape });
}
