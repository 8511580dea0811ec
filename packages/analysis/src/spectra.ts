/**
 * Eigenvalue spectra of the attention and MLP weights over depth (paper §3.1, with the reference code's
 * problems fixed: complex eigenvalues are kept, the DiffEqFormer weights are the ones its forward pass uses at
 * t_i = (i+1)/L, and the optional FFN subset is drawn from all 4E hidden units).
 *
 * Per head h (D = E/H, weights stored [in, out]):
 *   QK_h = W_Q^h (W_K^h)ᵀ   (E×E, rank ≤ D)  — the bilinear form of the attention scores;
 *   OV_h = W_V^h W_O^h       (E×E, rank ≤ D)  — what head h writes for the value it reads;
 * and FFN = W_fc W_proj (E×E, the nonlinearity ignored), optionally over a random subset of r hidden units.
 */
import { random, type Key } from "@qkvflow/autograd";
import type { BlockWeights } from "@qkvflow/models";
import type { DepthStep, DynamicsModel } from "./dynamics.js";
import { productEigvals, toFloat64, type ComplexValues } from "./linalg.js";

/** The three matrix families whose spectra are analysed. */
export type SpectrumKind = "qk" | "ov" | "ffn";

/** All spectrum kinds, in display order. */
export const SPECTRUM_KINDS: readonly SpectrumKind[] = ["qk", "ov", "ffn"];

/** Spectra of one block (one GPT-2 layer or one time t). */
export interface BlockSpectra {
  /** Per head: the D eigenvalues of largest modulus of QK_h (the other E − D are exactly zero). */
  qk: ComplexValues[];
  /** Per head: the D eigenvalues of largest modulus of OV_h. */
  ov: ComplexValues[];
  /** The min(E, r) eigenvalues of largest modulus of the FFN product (r hidden units used). */
  ffn: ComplexValues;
}

/** Options of the spectra computations. */
export interface SpectraOptions {
  /** Use r hidden units drawn at random (without replacement) from all hidden units for the FFN product. */
  ffnUnits?: number;
  /** Seed of that draw (default 0); the same subset is used at every t. */
  seed?: number;
  /** Solve the full E×E problems instead of the equivalent D×D ones (slower; for checks). */
  full?: boolean;
}

/** Spectra of a block at one depth point. */
export interface SpectraPoint extends BlockSpectra {
  /** Step index (GPT-2 layer) or −1 for a time that is not on the forward grid. */
  index: number;
  /** Time / normalised depth of the point. */
  t: number;
}

/** Summary statistics of one family at one point, over heads. */
export interface SpectrumStats {
  /** Spectral radius max|λ| of each head (one entry for the FFN). */
  radius: number[];
  /** Largest |λ| over all heads. */
  maxAbs: number;
  /** Mean |λ| over all eigenvalues kept. */
  meanAbs: number;
  /** Mean Re λ over all eigenvalues kept. */
  meanRe: number;
  /** Fraction of the kept eigenvalues with Re λ > 0 (eigenvalues with |λ| ≤ 1e-12·maxAbs are not counted). */
  fracPositiveRe: number;
}

/** Least-squares slopes over t of the summary statistics of one family. */
export interface SpectrumTrend {
  maxAbs: number;
  meanAbs: number;
  meanRe: number;
  fracPositiveRe: number;
  /** Slope of each head's spectral radius. */
  radius: number[];
}

/** The spectra over depth of one model, with summaries and trends. */
export interface SpectraResult {
  kind: string;
  nEmbd: number;
  nHead: number;
  headDim: number;
  /** FFN hidden units used (the subset, or null for all). */
  ffnSubset: number[] | null;
  points: SpectraPoint[];
  /** stats[kind][p] summarises points[p]. */
  stats: Record<SpectrumKind, SpectrumStats[]>;
  /** Slopes of the stats over t. */
  trend: Record<SpectrumKind, SpectrumTrend>;
}

function columns(w: Float64Array, rows: number, cols: number, c0: number, c1: number): Float64Array {
  const n = c1 - c0;
  const out = new Float64Array(rows * n);
  for (let i = 0; i < rows; i++) for (let j = 0; j < n; j++) out[i * n + j] = w[i * cols + c0 + j];
  return out;
}

function rowsOf(w: Float64Array, cols: number, r0: number, r1: number): Float64Array {
  return w.slice(r0 * cols, r1 * cols);
}

function transposeRaw(a: Float64Array, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}

/** The per-head factors: QK_h = qk[h].left · qk[h].right, OV_h = ov[h].left · ov[h].right (left E×D, right D×E). */
export function headFactors(
  w: BlockWeights,
  nHead: number,
): { qk: { left: Float64Array; right: Float64Array }[]; ov: { left: Float64Array; right: Float64Array }[] } {
  const E = w.qkvW.shape[0];
  if (E % nHead !== 0) throw new Error(`headFactors: width ${E} is not divisible by ${nHead} heads`);
  const D = E / nHead;
  const qkv = toFloat64(w.qkvW);
  const proj = toFloat64(w.attnProjW);
  const qk = [],
    ov = [];
  for (let h = 0; h < nHead; h++) {
    const wq = columns(qkv, E, 3 * E, h * D, (h + 1) * D);
    const wk = columns(qkv, E, 3 * E, E + h * D, E + (h + 1) * D);
    const wv = columns(qkv, E, 3 * E, 2 * E + h * D, 2 * E + (h + 1) * D);
    const wo = rowsOf(proj, E, h * D, (h + 1) * D);
    qk.push({ left: wq, right: transposeRaw(wk, E, D) });
    ov.push({ left: wv, right: wo });
  }
  return { qk, ov };
}

/** Draws r distinct hidden units from 0..hidden−1 (sorted), reproducibly from `seed`. */
export function ffnSubset(hidden: number, r: number, seed = 0): number[] {
  if (!Number.isInteger(r) || r <= 0 || r > hidden)
    throw new Error(`ffnSubset: r = ${r}; expected an integer in 1..${hidden} (the number of hidden units)`);
  const key: Key = random.foldIn(random.key(seed), 0x3ff);
  const perm = Array.from(random.permutation(key, hidden).data() as ArrayLike<number>);
  return perm.slice(0, r).sort((a, b) => a - b);
}

/** Eigenvalues of QK_h and OV_h per head and of the FFN product for one block. */
export function blockSpectra(
  w: BlockWeights,
  nHead: number,
  opts: { subset?: readonly number[] | null; full?: boolean } = {},
): BlockSpectra {
  const E = w.qkvW.shape[0];
  const D = E / nHead;
  const { qk, ov } = headFactors(w, nHead);
  const full = opts.full ?? false;
  const hidden = w.fcW.shape[1];
  let fc = toFloat64(w.fcW),
    pr = toFloat64(w.mlpProjW),
    r = hidden;
  const subset = opts.subset ?? null;
  if (subset) {
    for (const u of subset)
      if (!Number.isInteger(u) || u < 0 || u >= hidden) throw new Error(`blockSpectra: FFN unit ${u} is outside 0..${hidden - 1}`);
    const fcS = new Float64Array(E * subset.length);
    for (let i = 0; i < E; i++) subset.forEach((u, j) => (fcS[i * subset.length + j] = fc[i * hidden + u]));
    const prS = new Float64Array(subset.length * E);
    subset.forEach((u, j) => prS.set(pr.subarray(u * E, (u + 1) * E), j * E));
    fc = fcS;
    pr = prS;
    r = subset.length;
  }
  return {
    qk: qk.map((f) => productEigvals(f.left, f.right, E, D, full)),
    ov: ov.map((f) => productEigvals(f.left, f.right, E, D, full)),
    ffn: productEigvals(fc, pr, E, r, full),
  };
}

/** Summary statistics of a list of spectra (the heads of one family at one point). */
export function spectrumStats(specs: readonly ComplexValues[]): SpectrumStats {
  const radius = specs.map((s) => s.re.reduce((m, re, i) => Math.max(m, Math.hypot(re, s.im[i])), 0));
  const maxAbs = radius.reduce((a, b) => Math.max(a, b), 0);
  let n = 0,
    sumAbs = 0,
    sumRe = 0,
    pos = 0;
  for (const s of specs) {
    s.re.forEach((re, i) => {
      const a = Math.hypot(re, s.im[i]);
      if (a <= 1e-12 * maxAbs) return;
      n++;
      sumAbs += a;
      sumRe += re;
      if (re > 0) pos++;
    });
  }
  return { radius, maxAbs, meanAbs: n ? sumAbs / n : 0, meanRe: n ? sumRe / n : 0, fracPositiveRe: n ? pos / n : 0 };
}

/** Least-squares slope of y against x (0 when fewer than two distinct x). */
export function slope(x: readonly number[], y: readonly number[]): number {
  const n = Math.min(x.length, y.length);
  if (n < 2) return 0;
  let mx = 0,
    my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0,
    sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
  }
  return sxx === 0 ? 0 : sxy / sxx;
}

/**
 * Spectra over depth. GPT-2 / discretised models: one point per layer (t = (i+1)/L). DiffEqFormer: the weights
 * generated at `times` (default: the forward grid t_i = (i+1)/n of `dm.steps`).
 */
export function spectraOverDepth(dm: DynamicsModel, opts: SpectraOptions & { times?: readonly number[] } = {}): SpectraResult {
  let points: { step: DepthStep | null; t: number; w: BlockWeights }[];
  if (opts.times) {
    if (!dm.weightsAt)
      throw new Error(
        `spectraOverDepth: times were given but a '${dm.kind}' model has fixed layers; expected a DiffEqFormer (or leave times out)`,
      );
    for (const t of opts.times) if (!Number.isFinite(t)) throw new Error(`spectraOverDepth: time ${t} is not finite`);
    const ws = dm.weightsAt(opts.times);
    points = opts.times.map((t, i) => ({ step: dm.steps.find((s) => Math.abs(s.t - t) < 1e-12) ?? null, t, w: ws[i] }));
  } else {
    const ws = dm.stepWeights();
    points = dm.steps.map((s, i) => ({ step: s, t: s.t, w: ws[i] }));
  }
  const hidden = points.length ? points[0].w.fcW.shape[1] : 4 * dm.nEmbd;
  const subset = opts.ffnUnits !== undefined ? ffnSubset(hidden, opts.ffnUnits, opts.seed ?? 0) : null;
  const pts: SpectraPoint[] = points.map((p) => ({
    index: p.step ? p.step.index : -1,
    t: p.t,
    ...blockSpectra(p.w, dm.nHead, { subset, full: opts.full }),
  }));
  const stats = {} as Record<SpectrumKind, SpectrumStats[]>;
  const trend = {} as Record<SpectrumKind, SpectrumTrend>;
  const ts = pts.map((p) => p.t);
  for (const k of SPECTRUM_KINDS) {
    stats[k] = pts.map((p) => spectrumStats(k === "ffn" ? [p.ffn] : p[k]));
    const s = stats[k];
    const nr = s.length ? s[0].radius.length : 0;
    trend[k] = {
      maxAbs: slope(
        ts,
        s.map((x) => x.maxAbs),
      ),
      meanAbs: slope(
        ts,
        s.map((x) => x.meanAbs),
      ),
      meanRe: slope(
        ts,
        s.map((x) => x.meanRe),
      ),
      fracPositiveRe: slope(
        ts,
        s.map((x) => x.fracPositiveRe),
      ),
      radius: Array.from({ length: nr }, (_, h) =>
        slope(
          ts,
          s.map((x) => x.radius[h]),
        ),
      ),
    };
  }
  return { kind: dm.kind, nEmbd: dm.nEmbd, nHead: dm.nHead, headDim: dm.nEmbd / dm.nHead, ffnSubset: subset, points: pts, stats, trend };
}
