/**
 * Butcher tableaux of explicit Runge–Kutta methods, their validation, and small polynomial helpers used to
 * write continuous extensions (dense output) as data.
 */

/** An explicit Runge–Kutta method as data. */
export interface ButcherTableau {
  /** Method name (used by the registry and in messages). */
  readonly name: string;
  /** Order of the solution given by `b`. */
  readonly order: number;
  /** Nodes c_i (c_0 = 0), one per stage. */
  readonly c: readonly number[];
  /**
   * Stage coefficients: row i holds a_i0 … a_i,i−1 (strictly lower triangular; row 0 is empty). Full square
   * rows with zeros on and above the diagonal are accepted too.
   */
  readonly a: readonly (readonly number[])[];
  /** Weights b_i of the solution. */
  readonly b: readonly number[];
  /**
   * Error weights: b_i − b̂_i, the difference between the solution and an embedded lower-order solution, so
   * the local error estimate is h·Σ bErr_i k_i. Present → the method is adaptive.
   */
  readonly bErr?: readonly number[];
  /**
   * A second error estimate h·Σ bErr2_i k_i (from an embedded solution of lower order), combined with the first
   * as in Hairer's DOP853: with ε₁, ε₂ the two scaled RMS norms, the error ratio is ε₁² / √(ε₁² + 0.01·ε₂²), which
   * keeps the estimate of order `errorOrder` from being too optimistic on large steps. Needs bErr.
   */
  readonly bErr2?: readonly number[];
  /** Order of the embedded solution b̂ (default order − 1): the controller's exponent is 1 / (errorOrder + 1). */
  readonly errorOrder?: number;
  /**
   * Continuous extension: interp[i] lists the coefficients of b_i(θ) = Σ_p interp[i][p]·θ^(p+1), so the
   * state at t + θh is y + h·Σ b_i(θ) k_i, with b_i(1) = b_i. With `denseStages`, one polynomial per stage and
   * per extra stage (b_i(1) = 0 for the extra ones).
   */
  readonly interp?: readonly (readonly number[])[];
  /**
   * Extra stages the continuous extension needs (DOP853's three): evaluated only on steps with an output inside,
   * after the step, at t + c[m]·h on y + h·Σ_j a[m][j] k_j over all stages before it (the method's stages, then
   * the extra ones in order). Counted in the step's f evaluations.
   */
  readonly denseStages?: { readonly c: readonly number[]; readonly a: readonly (readonly number[])[] };
}

/** A tableau after validation, with strictly lower-triangular rows and derived flags. */
export interface NormalizedTableau {
  readonly name: string;
  readonly order: number;
  readonly errorOrder: number;
  readonly stages: number;
  readonly c: readonly number[];
  readonly a: readonly (readonly number[])[];
  readonly b: readonly number[];
  readonly bErr: readonly number[] | null;
  /** The second error estimate's weights (DOP853's combination), or null. */
  readonly bErr2: readonly number[] | null;
  /** One polynomial per stage, then per extra dense stage (full coefficient lists start at θ¹), or null. */
  readonly interp: readonly (readonly number[])[] | null;
  /** Extra stages of the continuous extension: rows padded to their full length (stages + m), or null. */
  readonly denseStages: { readonly c: readonly number[]; readonly a: readonly (readonly number[])[] } | null;
  /** The last stage is evaluated at t + h on the solution itself (first same as last). */
  readonly fsal: boolean;
  /** Indices of the nonzero entries of each row of a, of b, bErr and bErr2 (increasing): the sums' terms. */
  readonly nonzero: {
    readonly a: readonly Int32Array[];
    readonly b: Int32Array;
    readonly bErr: Int32Array | null;
    readonly bErr2: Int32Array | null;
  };
}

/** The indices j with row[j] ≠ 0, increasing. */
export function nonzeroIndices(row: readonly number[]): Int32Array {
  const nz: number[] = [];
  for (let j = 0; j < row.length; j++) if (row[j] !== 0) nz.push(j);
  return Int32Array.from(nz);
}

const TOL = 1e-10;

function finiteArray(fn: string, what: string, xs: unknown, n?: number): number[] {
  if (!Array.isArray(xs)) throw new Error(`${fn}: ${what} is ${typeof xs}; expected an array of numbers`);
  if (n !== undefined && xs.length !== n) throw new Error(`${fn}: ${what} has ${xs.length} entries; expected ${n} (one per stage)`);
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`${fn}: ${what}[${i}] is ${String(v)}; expected a finite number`);
  }
  return [...(xs as number[])];
}

/** Checks a tableau (shapes, c_0 = 0, row sums = c, Σb = 1, b(1) = b) and returns its normalized form. */
export function validateTableau(t: ButcherTableau, fn = "explicitRK"): NormalizedTableau {
  if (t === null || typeof t !== "object")
    throw new Error(`${fn}: tableau is ${String(t)}; expected an object {name, order, c, a, b, bErr?}`);
  if (typeof t.name !== "string" || t.name.length === 0)
    throw new Error(`${fn}: tableau name is ${JSON.stringify(t.name)}; expected a non-empty string`);
  const ctx = `${fn} '${t.name}'`;
  if (!Number.isInteger(t.order) || t.order < 1) throw new Error(`${ctx}: order ${t.order} is invalid; expected a positive integer`);
  const c = finiteArray(ctx, "c", t.c);
  const s = c.length;
  if (s === 0) throw new Error(`${ctx}: the tableau has no stages; expected at least one`);
  if (c[0] !== 0) throw new Error(`${ctx}: c[0] is ${c[0]}; expected 0 (explicit methods start with f(t, y))`);
  if (!Array.isArray(t.a) || t.a.length !== s)
    throw new Error(`${ctx}: a has ${Array.isArray(t.a) ? t.a.length : "no"} rows; expected ${s} (one per stage)`);
  const a: number[][] = [];
  for (let i = 0; i < s; i++) {
    const row = finiteArray(ctx, `a[${i}]`, t.a[i]);
    if (row.length === s) {
      for (let j = i; j < s; j++)
        if (row[j] !== 0)
          throw new Error(
            `${ctx}: a[${i}][${j}] = ${row[j]} is on or above the diagonal; expected an explicit (strictly lower-triangular) method`,
          );
      row.length = i;
    } else if (row.length > i) {
      throw new Error(`${ctx}: a[${i}] has ${row.length} entries; expected ${i} (strictly lower triangular) or ${s} (full row)`);
    }
    while (row.length < i) row.push(0);
    const sum = row.reduce((p, v) => p + v, 0);
    if (Math.abs(sum - c[i]) > TOL * Math.max(1, Math.abs(c[i])))
      throw new Error(`${ctx}: row ${i} of a sums to ${sum}; expected c[${i}] = ${c[i]}`);
    a.push(row);
  }
  const b = finiteArray(ctx, "b", t.b, s);
  const bs = b.reduce((p, v) => p + v, 0);
  if (Math.abs(bs - 1) > TOL) throw new Error(`${ctx}: the weights b sum to ${bs}; expected 1 (consistency)`);
  let bErr: number[] | null = null;
  if (t.bErr !== undefined) {
    bErr = finiteArray(ctx, "bErr", t.bErr, s);
    const es = bErr.reduce((p, v) => p + v, 0);
    if (Math.abs(es) > TOL)
      throw new Error(`${ctx}: the error weights bErr sum to ${es}; expected 0 (bErr = b − b̂ with both solutions consistent)`);
  }
  const errorOrder = t.errorOrder ?? t.order - 1;
  if (!Number.isInteger(errorOrder) || errorOrder < 0)
    throw new Error(`${ctx}: errorOrder ${errorOrder} is invalid; expected a non-negative integer`);
  let bErr2: number[] | null = null;
  if (t.bErr2 !== undefined) {
    if (!bErr) throw new Error(`${ctx}: bErr2 is given without bErr; expected the first error estimate too (bErr2 only refines it)`);
    bErr2 = finiteArray(ctx, "bErr2", t.bErr2, s);
    const es = bErr2.reduce((p, v) => p + v, 0);
    if (Math.abs(es) > TOL)
      throw new Error(`${ctx}: the error weights bErr2 sum to ${es}; expected 0 (a difference of two consistent solutions)`);
  }
  let denseStages: { c: number[]; a: number[][] } | null = null;
  if (t.denseStages !== undefined) {
    const ds = t.denseStages;
    if (ds === null || typeof ds !== "object") throw new Error(`${ctx}: denseStages is ${String(ds)}; expected { c, a }`);
    const dc = finiteArray(ctx, "denseStages.c", ds.c);
    if (!Array.isArray(ds.a) || ds.a.length !== dc.length)
      throw new Error(
        `${ctx}: denseStages.a has ${Array.isArray(ds.a) ? ds.a.length : "no"} rows; expected ${dc.length} (one per extra stage)`,
      );
    const da: number[][] = [];
    for (let m = 0; m < dc.length; m++) {
      const row = finiteArray(ctx, `denseStages.a[${m}]`, ds.a[m]);
      if (row.length > s + m)
        throw new Error(`${ctx}: denseStages.a[${m}] has ${row.length} entries; expected at most ${s + m} (the stages before it)`);
      while (row.length < s + m) row.push(0);
      const sum = row.reduce((p, v) => p + v, 0);
      if (Math.abs(sum - dc[m]) > TOL * Math.max(1, Math.abs(dc[m])))
        throw new Error(`${ctx}: row ${m} of denseStages.a sums to ${sum}; expected denseStages.c[${m}] = ${dc[m]}`);
      da.push(row);
    }
    if (t.interp === undefined) throw new Error(`${ctx}: denseStages is given without interp; expected the polynomials that use them`);
    denseStages = { c: dc, a: da };
  }
  const nPoly = s + (denseStages ? denseStages.c.length : 0);
  let interp: number[][] | null = null;
  if (t.interp !== undefined) {
    if (!Array.isArray(t.interp) || t.interp.length !== nPoly)
      throw new Error(
        `${ctx}: interp has ${Array.isArray(t.interp) ? t.interp.length : "no"} polynomials; expected ${nPoly} (one per stage${denseStages ? " and extra dense stage" : ""})`,
      );
    interp = t.interp.map((p, i) => finiteArray(ctx, `interp[${i}]`, p));
    for (let i = 0; i < nPoly; i++) {
      const at1 = interp[i].reduce((p, v) => p + v, 0);
      const want = i < s ? b[i] : 0;
      if (Math.abs(at1 - want) > 1e-9 * Math.max(1, Math.abs(want)))
        throw new Error(
          `${ctx}: interp[${i}] evaluates to ${at1} at θ = 1; expected ${i < s ? `b[${i}] = ${want}` : "0 (an extra dense stage)"}`,
        );
    }
  }
  let fsal = s > 1 && c[s - 1] === 1 && b[s - 1] === 0;
  if (fsal) for (let j = 0; j < s - 1; j++) if (Math.abs(a[s - 1][j] - b[j]) > 1e-15 * Math.max(1, Math.abs(b[j]))) fsal = false;
  const nonzero = {
    a: a.map(nonzeroIndices),
    b: nonzeroIndices(b),
    bErr: bErr ? nonzeroIndices(bErr) : null,
    bErr2: bErr2 ? nonzeroIndices(bErr2) : null,
  };
  return { name: t.name, order: t.order, errorOrder, stages: s, c, a, b, bErr, bErr2, interp, denseStages, fsal, nonzero };
}

/** A polynomial as coefficients in increasing powers: p[0] + p[1]·x + p[2]·x² + … */
export type Poly = number[];

/** Product of polynomials. */
export function polyMul(...ps: readonly Poly[]): Poly {
  let out: Poly = [1];
  for (const p of ps) {
    const r = new Array<number>(out.length + p.length - 1).fill(0);
    for (let i = 0; i < out.length; i++) for (let j = 0; j < p.length; j++) r[i + j] += out[i] * p[j];
    out = r;
  }
  return out;
}

/** Sum of polynomials, each optionally scaled: polyAdd([2, p], [1, q]) = 2p + q. */
export function polyAdd(...terms: readonly (readonly [number, Poly])[]): Poly {
  const n = Math.max(0, ...terms.map(([, p]) => p.length));
  const r = new Array<number>(n).fill(0);
  for (const [s, p] of terms) for (let i = 0; i < p.length; i++) r[i] += s * p[i];
  return r;
}

/** Value of a polynomial at x (Horner). */
export function polyEval(p: readonly number[], x: number): number {
  let v = 0;
  for (let i = p.length - 1; i >= 0; i--) v = v * x + p[i];
  return v;
}

/**
 * Converts b_i(θ) polynomials (full coefficient lists starting at θ⁰, which must be 0) into the `interp`
 * format of a tableau (coefficients of θ¹, θ², …).
 */
export function interpFromPolys(polys: readonly Poly[]): number[][] {
  return polys.map((p, i) => {
    if (Math.abs(p[0] ?? 0) > 1e-14) throw new Error(`interpFromPolys: polynomial ${i} has constant term ${p[0]}; expected 0 (b_i(0) = 0)`);
    return p.slice(1);
  });
}
