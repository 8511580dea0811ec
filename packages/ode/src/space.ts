/**
 * The two vector spaces the solver cores run on: `tensorSpace` (a list of tensor leaves; the arithmetic is
 * autograd ops, so solves are differentiable; Jacobians by forward-mode autodiff) and `arraySpace` (one
 * Float64Array; plain loops, no autodiff; Jacobians from the user or by finite differences). Both do the
 * same arithmetic in the same order, so on float64 data a method gives the same numbers on either.
 */
import { concat, customVjp, eye, jacobian, noGrad, reshape, split, sub, mul, tensor, type Tensor } from "@qkvflow/autograd";
import { luFactor, luSolve, luSolveTransposed, type LU } from "./lu.js";
import { combine, errorRatio, firstNonFinite, hermite, hostIncrement, hostValues, increment, tensorLike } from "./state.js";
import type { ArrayJacobian, VectorSpace } from "./types.js";

/** Sum of |x|-scaled squares over a list of leaves: RMS of x / (atol + rtol·|y|), tolerances per leaf. */
function scaledRmsLeaves(x: readonly Tensor[], y: readonly Tensor[], rtol: readonly number[], atol: readonly number[]): number {
  let acc = 0,
    n = 0;
  for (let l = 0; l < x.length; l++) {
    const v = hostValues(x[l]),
      yv = hostValues(y[l]);
    for (let i = 0; i < v.length; i++) {
      const r = v[i] / (atol[l] + rtol[l] * Math.abs(yv[i]));
      acc += r * r;
    }
    n += v.length;
  }
  return n === 0 ? 0 : Math.sqrt(acc / n);
}

/** The state as one vector [n] (differentiable), and back. */
function flatVector(y: readonly Tensor[], where: string): Tensor {
  const dt = y[0].dtype;
  for (const l of y) {
    if (l.dtype !== dt)
      throw new Error(
        `${where}: the state mixes ${dt} and ${l.dtype} leaves; expected one dtype for an implicit method (one linear system)`,
      );
  }
  return y.length === 1 ? reshape(y[0], [y[0].size]) : concat(y.map((l) => reshape(l, [l.size])));
}
function unflatVector(v: Tensor, like: readonly Tensor[]): Tensor[] {
  if (like.length === 1) return [reshape(v, like[0].shape)];
  return split(
    v,
    like.map((l) => l.size),
  ).map((p, i) => reshape(p, like[i].shape));
}

/** A tensor-space Jacobian: J as an [n, n] tensor (in the autodiff graph when recording) and its leaves' layout. */
interface TensorJacobian {
  J: Tensor;
  like: readonly Tensor[];
}

/** The vector space of flat tensor leaves (what odeint solves on for tensor trees). */
export const tensorSpace: VectorSpace<Tensor[]> = {
  kind: "tensor",
  combine: (y, h, c, ks) => combine(y, h, c, ks),
  increment: (h, c, ks) => increment(h, c, ks),
  hostIncrement: (h, c, ks) => hostIncrement(h, c, ks),
  hermite: (y0, f0, y1, f1, h, th) => hermite(y0, f0, y1, f1, h, th),
  axpyHost: (y, a, x) =>
    y.map((leaf, l) => {
      const yv = hostValues(leaf),
        xv = hostValues(x[l]);
      const v = new Float64Array(yv.length);
      for (let i = 0; i < v.length; i++) v[i] = yv[i] + a * xv[i];
      return tensorLike(v, leaf);
    }),
  errorRatio: (err, y0, y1, rtol, atol) => errorRatio(err, y0, y1, rtol, atol),
  scaledRms: (x, y, rtol, atol) => scaledRmsLeaves(x, y, rtol, atol),
  firstNonFinite: (y) => firstNonFinite(y),
  size: (y) => y.reduce((s, l) => s + l.size, 0),
  jacobian(f, t, y, _fy) {
    const v = flatVector(y, "jacobian");
    const g = (u: Tensor) => flatVector(f(t, unflatVector(u, y)), "jacobian");
    const J = jacobian(g, { mode: "fwd" })(v);
    const out: TensorJacobian = { J, like: y };
    return { J: out, nfev: 0 };
  },
  factor(Jh, shift) {
    const { J, like } = Jh as TensorJacobian;
    const n = J.shape[0];
    const W = sub(mul(eye(n, n, J.dtype), shift), J);
    const lu = luFactor(hostValues(W), n, "implicit step");
    const solve = linearSolveOp(lu, J.dtype);
    return (b) => unflatVector(solve(W, flatVector(b, "implicit step")), like);
  },
  noGrad: (fn) => noGrad(fn),
};

/** x = W⁻¹b with W's LU given; reverse mode: b̄ = W⁻ᵀx̄, W̄ = −b̄ xᵀ. */
function linearSolveOp(lu: LU, dtype: Tensor["dtype"]): (W: Tensor, b: Tensor) => Tensor {
  const n = lu.n;
  const mk = (v: ArrayLike<number>, shape: number[]) =>
    tensor(dtype === "float64" ? Float64Array.from(v) : Float32Array.from(v), { dtype, shape });
  return customVjp(
    (_W: Tensor, b: Tensor) => mk(luSolve(lu, hostValues(b)), [n]),
    (ct: Tensor, _args: [Tensor, Tensor], x: Tensor) => {
      const gb = luSolveTransposed(lu, hostValues(ct));
      const xv = hostValues(x);
      const gW = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) gW[i * n + j] = -gb[i] * xv[j];
      return [mk(gW, [n, n]), mk(gb, [n])];
    },
    "implicit linear solve",
  );
}

/**
 * The vector space of one Float64Array of n elements (plain-array states). Tolerances are per element
 * (arrays of n). `jac`: the user's ∂f/∂y; without it, forward differences with the increment
 * δⱼ = √u·max(|yⱼ|, scaleⱼ) (u = 2⁻⁵², scale = the absolute tolerances, 1e-5 without them): the relative error
 * of a column is O(√u) ≈ 1.5e-8 times the size of f's second derivatives there, plus rounding of f / δⱼ.
 * A class, so every solve calls the same (prototype) methods and the step's call sites stay monomorphic.
 */
export function arraySpace(n: number, jac?: ArrayJacobian, fn = "odeint", scale?: readonly number[]): ArraySpace {
  return new ArraySpace(n, jac, fn, scale);
}

const U = Number.EPSILON;
/** Buffers an ArraySpace keeps for reuse. */
const POOL_SIZE = 64;

/** Whether some listed coefficient's weight h·c[j] underflows to 0 (then the sum skips that term, as the tensor space). */
function anyZeroWeight(h: number, c: readonly number[], nonzero: Int32Array): boolean {
  for (let j = 0; j < nonzero.length; j++) if (h * c[nonzero[j]] === 0) return true;
  return false;
}

/** The plain-array vector space (see `arraySpace`). */
export class ArraySpace implements VectorSpace<Float64Array> {
  readonly kind = "array";
  // the argument of one f evaluation at a time (stage), overwritten by the next
  private readonly scratch: Float64Array;
  // buffers the driver handed back (release): reused for new values, so a long solve allocates little; a
  // fixed-size stack (push/pop on a growing array would resize its backing store back and forth)
  private readonly pool: (Float64Array | undefined)[] = new Array<Float64Array | undefined>(POOL_SIZE).fill(undefined);
  private top = 0;
  // indices of the terms of the sum being formed (sumInto)
  private idx = new Int32Array(16);
  // n zeros (the base of hostIncrement's sums; never written)
  private readonly zeros: Float64Array;

  constructor(
    readonly n: number,
    private readonly jac: ArrayJacobian | undefined,
    private readonly fn: string,
    private readonly scale: readonly number[] | undefined,
  ) {
    this.scratch = new Float64Array(n);
    this.zeros = new Float64Array(n);
  }

  alloc(): Float64Array {
    if (this.top === 0) return new Float64Array(this.n);
    const b = this.pool[--this.top]!;
    this.pool[this.top] = undefined;
    // (a loop: on the small states of plain-array problems it is cheaper than the fill builtin)
    for (let i = 0; i < b.length; i++) b[i] = 0;
    return b;
  }

  /** A buffer for a value its taker overwrites completely (so not zeroed, unlike `alloc`). */
  private take(): Float64Array {
    if (this.top === 0) return new Float64Array(this.n);
    const b = this.pool[--this.top]!;
    this.pool[this.top] = undefined;
    return b;
  }

  release(v: Float64Array): void {
    if (this.top < POOL_SIZE) this.pool[this.top++] = v;
  }

  /**
   * out = ((base + k_j₀·w_j₀) + k_j₁·w_j₁) + … with w_j = h·c[j], over the j with c[j] ≠ 0 (`skipZeroWeight`: with
   * w_j ≠ 0), in increasing j: per element the operations, in the order, of the tensor space's sums. Up to 9 terms
   * in one pass over the elements with the terms' arrays and weights in locals (on the small states of plain-array
   * problems, a loop over the terms costs more than the arithmetic); more terms, in passes of up to 9.
   */
  private sumInto(
    out: Float64Array,
    base: Float64Array,
    h: number,
    c: readonly number[],
    ks: readonly Float64Array[],
    skipZeroWeight: boolean,
    nonzero: Int32Array | undefined,
  ): Float64Array {
    let idx: Int32Array;
    let count = 0;
    if (nonzero !== undefined && !(skipZeroWeight && anyZeroWeight(h, c, nonzero))) {
      // the caller's list of the nonzero coefficients (a tableau row's, computed once)
      idx = nonzero;
      count = nonzero.length;
    } else {
      const m = c.length;
      if (m > this.idx.length) this.idx = new Int32Array(m);
      idx = this.idx;
      for (let j = 0; j < m; j++) {
        const cj = c[j];
        if (cj === 0 || (skipZeroWeight && h * cj === 0)) continue;
        idx[count++] = j;
      }
    }
    // more than 9 terms (DOP853's longest rows): passes of up to 9, each continuing from the last (the same order per element)
    if (count <= 9) return this.fusedPass(out, base, h, c, ks, idx, 0, count);
    this.fusedPass(out, base, h, c, ks, idx, 0, 9);
    for (let o = 9; o < count; o += 9) this.fusedPass(out, out, h, c, ks, idx, o, Math.min(9, count - o));
    return out;
  }

  /** out = base + terms idx[o … o + count) of the sum, count ≤ 9, in one pass (see sumInto). */
  private fusedPass(
    out: Float64Array,
    base: Float64Array,
    h: number,
    c: readonly number[],
    ks: readonly Float64Array[],
    idx: Int32Array,
    o: number,
    count: number,
  ): Float64Array {
    const n = this.n;
    switch (count) {
      case 0:
        for (let i = 0; i < n; i++) out[i] = base[i];
        return out;
      case 1: {
        const k0 = ks[idx[o + 0]];
        const w0 = h * c[idx[o + 0]];
        for (let i = 0; i < n; i++) out[i] = base[i] + k0[i] * w0;
        return out;
      }
      case 2: {
        const k0 = ks[idx[o + 0]],
          k1 = ks[idx[o + 1]];
        const w0 = h * c[idx[o + 0]],
          w1 = h * c[idx[o + 1]];
        for (let i = 0; i < n; i++) out[i] = base[i] + k0[i] * w0 + k1[i] * w1;
        return out;
      }
      case 3: {
        const k0 = ks[idx[o + 0]],
          k1 = ks[idx[o + 1]],
          k2 = ks[idx[o + 2]];
        const w0 = h * c[idx[o + 0]],
          w1 = h * c[idx[o + 1]],
          w2 = h * c[idx[o + 2]];
        for (let i = 0; i < n; i++) out[i] = base[i] + k0[i] * w0 + k1[i] * w1 + k2[i] * w2;
        return out;
      }
      case 4: {
        const k0 = ks[idx[o + 0]],
          k1 = ks[idx[o + 1]],
          k2 = ks[idx[o + 2]],
          k3 = ks[idx[o + 3]];
        const w0 = h * c[idx[o + 0]],
          w1 = h * c[idx[o + 1]],
          w2 = h * c[idx[o + 2]],
          w3 = h * c[idx[o + 3]];
        for (let i = 0; i < n; i++) out[i] = base[i] + k0[i] * w0 + k1[i] * w1 + k2[i] * w2 + k3[i] * w3;
        return out;
      }
      case 5: {
        const k0 = ks[idx[o + 0]],
          k1 = ks[idx[o + 1]],
          k2 = ks[idx[o + 2]],
          k3 = ks[idx[o + 3]],
          k4 = ks[idx[o + 4]];
        const w0 = h * c[idx[o + 0]],
          w1 = h * c[idx[o + 1]],
          w2 = h * c[idx[o + 2]],
          w3 = h * c[idx[o + 3]],
          w4 = h * c[idx[o + 4]];
        for (let i = 0; i < n; i++) out[i] = base[i] + k0[i] * w0 + k1[i] * w1 + k2[i] * w2 + k3[i] * w3 + k4[i] * w4;
        return out;
      }
      case 6: {
        const k0 = ks[idx[o + 0]],
          k1 = ks[idx[o + 1]],
          k2 = ks[idx[o + 2]],
          k3 = ks[idx[o + 3]],
          k4 = ks[idx[o + 4]],
          k5 = ks[idx[o + 5]];
        const w0 = h * c[idx[o + 0]],
          w1 = h * c[idx[o + 1]],
          w2 = h * c[idx[o + 2]],
          w3 = h * c[idx[o + 3]],
          w4 = h * c[idx[o + 4]],
          w5 = h * c[idx[o + 5]];
        for (let i = 0; i < n; i++) out[i] = base[i] + k0[i] * w0 + k1[i] * w1 + k2[i] * w2 + k3[i] * w3 + k4[i] * w4 + k5[i] * w5;
        return out;
      }
      case 7: {
        const k0 = ks[idx[o + 0]],
          k1 = ks[idx[o + 1]],
          k2 = ks[idx[o + 2]],
          k3 = ks[idx[o + 3]],
          k4 = ks[idx[o + 4]],
          k5 = ks[idx[o + 5]],
          k6 = ks[idx[o + 6]];
        const w0 = h * c[idx[o + 0]],
          w1 = h * c[idx[o + 1]],
          w2 = h * c[idx[o + 2]],
          w3 = h * c[idx[o + 3]],
          w4 = h * c[idx[o + 4]],
          w5 = h * c[idx[o + 5]],
          w6 = h * c[idx[o + 6]];
        for (let i = 0; i < n; i++)
          out[i] = base[i] + k0[i] * w0 + k1[i] * w1 + k2[i] * w2 + k3[i] * w3 + k4[i] * w4 + k5[i] * w5 + k6[i] * w6;
        return out;
      }
      case 8: {
        const k0 = ks[idx[o + 0]],
          k1 = ks[idx[o + 1]],
          k2 = ks[idx[o + 2]],
          k3 = ks[idx[o + 3]],
          k4 = ks[idx[o + 4]],
          k5 = ks[idx[o + 5]],
          k6 = ks[idx[o + 6]],
          k7 = ks[idx[o + 7]];
        const w0 = h * c[idx[o + 0]],
          w1 = h * c[idx[o + 1]],
          w2 = h * c[idx[o + 2]],
          w3 = h * c[idx[o + 3]],
          w4 = h * c[idx[o + 4]],
          w5 = h * c[idx[o + 5]],
          w6 = h * c[idx[o + 6]],
          w7 = h * c[idx[o + 7]];
        for (let i = 0; i < n; i++)
          out[i] = base[i] + k0[i] * w0 + k1[i] * w1 + k2[i] * w2 + k3[i] * w3 + k4[i] * w4 + k5[i] * w5 + k6[i] * w6 + k7[i] * w7;
        return out;
      }
      case 9: {
        const k0 = ks[idx[o + 0]],
          k1 = ks[idx[o + 1]],
          k2 = ks[idx[o + 2]],
          k3 = ks[idx[o + 3]],
          k4 = ks[idx[o + 4]],
          k5 = ks[idx[o + 5]],
          k6 = ks[idx[o + 6]],
          k7 = ks[idx[o + 7]],
          k8 = ks[idx[o + 8]];
        const w0 = h * c[idx[o + 0]],
          w1 = h * c[idx[o + 1]],
          w2 = h * c[idx[o + 2]],
          w3 = h * c[idx[o + 3]],
          w4 = h * c[idx[o + 4]],
          w5 = h * c[idx[o + 5]],
          w6 = h * c[idx[o + 6]],
          w7 = h * c[idx[o + 7]],
          w8 = h * c[idx[o + 8]];
        for (let i = 0; i < n; i++)
          out[i] =
            base[i] + k0[i] * w0 + k1[i] * w1 + k2[i] * w2 + k3[i] * w3 + k4[i] * w4 + k5[i] * w5 + k6[i] * w6 + k7[i] * w7 + k8[i] * w8;
        return out;
      }
    }
    throw new Error(`fusedPass: ${count} terms; expected at most 9`);
  }

  combine(y: Float64Array, h: number, c: readonly number[], ks: readonly Float64Array[], nonzero?: Int32Array): Float64Array {
    return this.sumInto(this.take(), y, h, c, ks, false, nonzero);
  }

  stage(y: Float64Array, h: number, c: readonly number[], ks: readonly Float64Array[], nonzero?: Int32Array): Float64Array {
    return this.sumInto(this.scratch, y, h, c, ks, false, nonzero);
  }

  increment(h: number, c: readonly number[], ks: readonly Float64Array[]): Float64Array {
    const n = this.n;
    const out = new Float64Array(n);
    let first = true;
    for (let j = 0; j < c.length; j++) {
      const cj = c[j];
      if (cj === 0) continue;
      const w = h * cj,
        k = ks[j];
      if (first) for (let i = 0; i < n; i++) out[i] = k[i] * w;
      else for (let i = 0; i < n; i++) out[i] = out[i] + k[i] * w;
      first = false;
    }
    return out;
  }

  /** ((0 + k_j₀·w_j₀) + k_j₁·w_j₁) + … over the terms with w_j = h·c[j] ≠ 0, as the tensor space's hostIncrement. */
  hostIncrement(h: number, c: readonly number[], ks: readonly Float64Array[], nonzero?: Int32Array): Float64Array {
    return this.sumInto(this.take(), this.zeros, h, c, ks, true, nonzero);
  }

  hermite(y0: Float64Array, f0: Float64Array, y1: Float64Array, f1: Float64Array, h: number, theta: number): Float64Array {
    const t = theta,
      t2 = t * t,
      t3 = t2 * t;
    const h00 = 2 * t3 - 3 * t2 + 1,
      h10 = t3 - 2 * t2 + t,
      h01 = -2 * t3 + 3 * t2,
      h11 = t3 - t2;
    const a = h * h10,
      b = h * h11;
    const n = this.n;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = y0[i] * h00 + y1[i] * h01 + f0[i] * a + f1[i] * b;
    return out;
  }

  axpyHost(y: Float64Array, a: number, x: Float64Array): Float64Array {
    const n = this.n;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = y[i] + a * x[i];
    return out;
  }

  errorRatio(err: Float64Array, y0: Float64Array, y1: Float64Array, rtol: readonly number[], atol: readonly number[]): number {
    const n = this.n;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const sc = atol[i] + rtol[i] * Math.max(Math.abs(y0[i]), Math.abs(y1[i]));
      const r = err[i] / sc;
      acc += r * r;
      if (!Number.isFinite(y1[i])) acc = NaN;
    }
    return n === 0 ? 0 : Math.sqrt(acc / n);
  }

  scaledRms(x: Float64Array, y: Float64Array, rtol: readonly number[], atol: readonly number[]): number {
    const n = this.n;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const r = x[i] / (atol[i] + rtol[i] * Math.abs(y[i]));
      acc += r * r;
    }
    return n === 0 ? 0 : Math.sqrt(acc / n);
  }

  firstNonFinite(y: Float64Array): { leaf: number; index: number; value: number } | null {
    for (let i = 0; i < this.n; i++) if (!Number.isFinite(y[i])) return { leaf: 0, index: i, value: y[i] };
    return null;
  }

  size(): number {
    return this.n;
  }

  private readJac(t: number, y: Float64Array): Float64Array {
    const { n, fn } = this;
    const J = new Float64Array(n * n);
    const r = this.jac!(t, y, J);
    if (r === undefined || r === null) return J;
    if (typeof r !== "object" || typeof (r as ArrayLike<unknown>).length !== "number")
      throw new Error(
        `${fn}: jac returned ${typeof r}; expected nothing (J filled in) or ${n}×${n} numbers (flat row-major, or ${n} rows)`,
      );
    const rows = r as ArrayLike<number | ArrayLike<number>>;
    if (rows.length === n && n > 0 && typeof rows[0] === "object") {
      for (let i = 0; i < n; i++) {
        const row = rows[i] as ArrayLike<number>;
        if (!row || row.length !== n) throw new Error(`${fn}: jac returned row ${i} with ${row?.length} entries; expected ${n}`);
        for (let j = 0; j < n; j++) J[i * n + j] = row[j];
      }
      return J;
    }
    if (rows.length !== n * n)
      throw new Error(`${fn}: jac returned ${rows.length} numbers; expected ${n * n} (an ${n}×${n} matrix, row-major)`);
    for (let k = 0; k < n * n; k++) J[k] = rows[k] as number;
    return J;
  }

  jacobian(f: (t: number, y: Float64Array) => Float64Array, t: number, y: Float64Array, fy: Float64Array): { J: unknown; nfev: number } {
    if (this.jac) return { J: this.readJac(t, y), nfev: 0 };
    const { n, scale } = this;
    const J = new Float64Array(n * n);
    const yp = Float64Array.from(y);
    for (let j = 0; j < n; j++) {
      const d = Math.sqrt(U) * Math.max(Math.abs(y[j]), scale ? scale[j] : 1e-5);
      yp[j] = y[j] + d;
      const fp = f(t, yp);
      const dj = yp[j] - y[j];
      for (let i = 0; i < n; i++) J[i * n + j] = (fp[i] - fy[i]) / dj;
      yp[j] = y[j];
    }
    return { J, nfev: n };
  }

  factor(Jh: unknown, shift: number): (b: Float64Array) => Float64Array {
    const n = this.n;
    const J = Jh as Float64Array;
    const W = new Float64Array(n * n);
    for (let k = 0; k < n * n; k++) W[k] = -J[k];
    for (let i = 0; i < n; i++) W[i * n + i] += shift;
    const lu = luFactor(W, n, `${this.fn} (implicit step)`);
    return (b) => luSolve(lu, b);
  }

  noGrad<R>(fn: () => R): R {
    return fn();
  }
}
