/**
 * AdamW with global-norm gradient clipping and a weight-decay mask, as the paper's Levanter / optax chain
 * `clip_by_global_norm(c) → scale_by_adam(β1, β2, ε) → add_decayed_weights(λ, mask) → scale(−lr_t)`:
 *
 *   n   = ‖g‖₂ over all trainable tensors;   g ← g · c / n   when n ≥ c (else unchanged)
 *   t   = count + 1
 *   m   ← β1 m + (1 − β1) g;      v ← β2 v + (1 − β2) g²
 *   m̂   = m / (1 − β1ᵗ);          v̂ = v / (1 − β2ᵗ)
 *   p   ← p − lr_t · ( m̂ / (√v̂ + ε) + λ · [p decays] · p )
 *
 * The decay is decoupled from the gradient (it never enters m or v) and scaled by the scheduled learning
 * rate, as in optax.adamw. Which parameters decay is decided by a list of regular expressions, each
 * matched against the whole dotted parameter name (e.g. `wte\.weight`, `.*attn.*weight`).
 *
 * The update runs on the host in float64 arithmetic and rounds the results to the parameters' dtype, so it
 * is deterministic: the same state, gradients and learning rate always give bit-identical parameters.
 * Moments have the dtype of their parameter; `exportState` / `importState` move them through safetensors.
 */
import { tensor, type Tensor } from '@qkvflow/autograd';
import type { RawTensor, SafetensorsContents } from '@qkvflow/autograd';

/** Hyper-parameters of AdamW. */
export interface AdamWOptions {
  /** First-moment decay β1 (default 0.9). */
  beta1?: number;
  /** Second-moment decay β2 (default 0.999). */
  beta2?: number;
  /** ε added to √v̂ (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay λ (default 0). */
  weightDecay?: number;
  /** Regular expressions (full-name match) selecting the parameters that decay (default: every parameter). */
  decayPatterns?: readonly string[];
  /** Clip the global gradient norm to this value; null or 0 disables clipping (default null). */
  maxGradNorm?: number | null;
}

/** Resolved hyper-parameters (recorded in the optimiser state). */
export interface AdamWHyper {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decayPatterns: string[];
  maxGradNorm: number | null;
}

/** What one optimiser step did. */
export interface AdamWStepInfo {
  /** The new parameters (only the trainable ones, by name). */
  params: Record<string, Tensor>;
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
  /** Factor the gradients were multiplied by (1 when not clipped). */
  clipScale: number;
  /** Learning rate used. */
  lr: number;
}

type Float = Float32Array | Float64Array;

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function floatData(fn: string, what: string, t: Tensor): Float {
  if (t.dtype !== 'float32' && t.dtype !== 'float64') throw new Error(`${fn}: ${what} is ${t.dtype}; expected float32 or float64`);
  return t.data() as Float;
}

/** Compiles decay patterns into anchored regular expressions (throws on invalid syntax). */
export function compileDecayPatterns(patterns: readonly string[]): RegExp[] {
  return patterns.map((p) => {
    if (typeof p !== 'string' || p.length === 0) throw new Error(`compileDecayPatterns: pattern ${JSON.stringify(p)} is invalid; expected a non-empty regular expression string`);
    try {
      return new RegExp(`^(?:${p})$`);
    } catch (err) {
      throw new Error(`compileDecayPatterns: pattern '${p}' is not a valid regular expression (${(err as Error).message})`);
    }
  });
}

/** Names among `names` whose whole name matches one of the decay patterns. */
export function decayedNames(names: readonly string[], patterns: readonly string[]): string[] {
  const res = compileDecayPatterns(patterns);
  return names.filter((n) => res.some((r) => r.test(n)));
}

/** Global L2 norm of a set of gradients (accumulated in float64). */
export function globalNorm(grads: Record<string, Tensor>): number {
  let s = 0;
  for (const [n, g] of Object.entries(grads)) {
    const d = floatData('globalNorm', `gradient '${n}'`, g);
    for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  }
  return Math.sqrt(s);
}

/** Scale applied by optax.clip_by_global_norm: 1 when norm < maxNorm, else maxNorm / norm. */
export function clipScale(norm: number, maxNorm: number | null): number {
  if (maxNorm === null || maxNorm === 0) return 1;
  if (!(maxNorm > 0)) throw new Error(`clipScale: maxNorm must be positive (or null / 0 to disable), got ${maxNorm}`);
  return norm < maxNorm ? 1 : maxNorm / norm;
}

/** Gradients rescaled so their global norm is at most `maxNorm`; returns the gradients, the norm and the scale. */
export function clipByGlobalNorm(grads: Record<string, Tensor>, maxNorm: number): { grads: Record<string, Tensor>; norm: number; scale: number } {
  const norm = globalNorm(grads);
  const scale = clipScale(norm, maxNorm);
  if (scale === 1) return { grads, norm, scale };
  const out: Record<string, Tensor> = {};
  for (const [n, g] of Object.entries(grads)) {
    const d = g.data() as Float;
    const r = g.dtype === 'float64' ? new Float64Array(d.length) : new Float32Array(d.length);
    for (let i = 0; i < d.length; i++) r[i] = d[i]! * scale;
    out[n] = tensor(r, { shape: [...g.shape], dtype: g.dtype });
  }
  return { grads: out, norm, scale };
}

function checkBeta(name: string, v: number): number {
  if (!(v >= 0 && v < 1)) throw new Error(`AdamW: ${name} must be in [0, 1), got ${v}`);
  return v;
}

/** The AdamW optimiser over named parameters (see the module comment for the exact update). */
export class AdamW {
  readonly hyper: AdamWHyper;
  /** Number of updates applied so far. */
  count = 0;
  private readonly decayRes: RegExp[];
  private readonly m = new Map<string, Float>();
  private readonly v = new Map<string, Float>();
  private readonly shapes = new Map<string, readonly number[]>();

  /** Creates the optimiser; moments are created lazily (zeros) or by `init`. */
  constructor(opts: AdamWOptions = {}) {
    const eps = opts.eps ?? 1e-8;
    const wd = opts.weightDecay ?? 0;
    const clip = opts.maxGradNorm ?? null;
    if (!(eps >= 0 && Number.isFinite(eps))) throw new Error(`AdamW: eps must be a finite number >= 0, got ${eps}`);
    if (!(wd >= 0 && Number.isFinite(wd))) throw new Error(`AdamW: weightDecay must be a finite number >= 0, got ${wd}`);
    if (clip !== null && !(clip >= 0 && Number.isFinite(clip))) throw new Error(`AdamW: maxGradNorm must be a finite number >= 0 or null, got ${clip}`);
    this.hyper = {
      beta1: checkBeta('beta1', opts.beta1 ?? 0.9),
      beta2: checkBeta('beta2', opts.beta2 ?? 0.999),
      eps,
      weightDecay: wd,
      decayPatterns: [...(opts.decayPatterns ?? ['.*'])],
      maxGradNorm: clip === 0 ? null : clip,
    };
    this.decayRes = compileDecayPatterns(this.hyper.decayPatterns);
  }

  /** Whether parameter `name` receives weight decay. */
  decays(name: string): boolean {
    return this.decayRes.some((r) => r.test(name));
  }

  /** Allocates zero moments for every parameter given (the trainable set). */
  init(params: Record<string, Tensor>): void {
    for (const [n, p] of Object.entries(params)) this.ensure(n, p);
  }

  private ensure(name: string, p: Tensor): void {
    const have = this.shapes.get(name);
    if (have !== undefined) {
      if (have.length !== p.shape.length || have.some((d, i) => d !== p.shape[i])) {
        throw new Error(`AdamW: parameter '${name}' has shape ${fmt(p.shape)} but its optimiser state has ${fmt(have)}`);
      }
      return;
    }
    floatData('AdamW', `parameter '${name}'`, p);
    const mk = (): Float => (p.dtype === 'float64' ? new Float64Array(p.size) : new Float32Array(p.size));
    this.m.set(name, mk());
    this.v.set(name, mk());
    this.shapes.set(name, [...p.shape]);
  }

  /** Names with optimiser state, in insertion order. */
  stateNames(): string[] {
    return [...this.shapes.keys()];
  }

  /** One update of every parameter in `grads` (clip → Adam → decay → scale by −lr); returns the new parameters. */
  step(params: Record<string, Tensor>, grads: Record<string, Tensor>, lr: number): AdamWStepInfo {
    const fn = 'AdamW.step';
    if (!Number.isFinite(lr)) throw new Error(`${fn}: learning rate must be finite, got ${lr}`);
    for (const [n, g] of Object.entries(grads)) {
      const p = params[n];
      if (p === undefined) throw new Error(`${fn}: gradient '${n}' has no parameter; parameters are ${Object.keys(params).join(', ')}`);
      if (p.shape.length !== g.shape.length || p.shape.some((d, i) => d !== g.shape[i]) || p.dtype !== g.dtype) {
        throw new Error(`${fn}: gradient '${n}' is ${g.dtype} ${fmt(g.shape)} but the parameter is ${p.dtype} ${fmt(p.shape)}`);
      }
      this.ensure(n, p);
    }
    const gradNorm = globalNorm(grads);
    const scale = clipScale(gradNorm, this.hyper.maxGradNorm);
    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = this.hyper;
    const t = this.count + 1;
    const bc1 = 1 - Math.pow(b1, t);
    const bc2 = 1 - Math.pow(b2, t);
    const out: Record<string, Tensor> = {};
    for (const [n, gT] of Object.entries(grads)) {
      const pT = params[n]!;
      const g = gT.data() as Float;
      const p = pT.data() as Float;
      const m = this.m.get(n)!;
      const v = this.v.get(n)!;
      const lam = this.decays(n) ? wd : 0;
      const next: Float = pT.dtype === 'float64' ? new Float64Array(p.length) : new Float32Array(p.length);
      for (let i = 0; i < p.length; i++) {
        const gi = scale === 1 ? g[i]! : g[i]! * scale;
        const mi = b1 * m[i]! + (1 - b1) * gi;
        const vi = b2 * v[i]! + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const mh = mi / bc1;
        const vh = vi / bc2;
        next[i] = p[i]! - lr * (mh / (Math.sqrt(vh) + eps) + lam * p[i]!);
      }
      out[n] = tensor(next, { shape: [...pT.shape], dtype: pT.dtype });
    }
    this.count = t;
    return { params: out, gradNorm, clipScale: scale, lr };
  }

  /** The state as safetensors tensors (`m.<name>`, `v.<name>`) plus metadata (count, hyper-parameters). */
  exportState(): SafetensorsContents {
    const tensors: Record<string, RawTensor> = {};
    for (const [n, shape] of this.shapes) {
      const m = this.m.get(n)!;
      const v = this.v.get(n)!;
      const dtype = m instanceof Float64Array ? 'F64' : 'F32';
      tensors[`m.${n}`] = { dtype, shape: [...shape], data: m.slice() };
      tensors[`v.${n}`] = { dtype, shape: [...shape], data: v.slice() };
    }
    return {
      tensors,
      metadata: { format: 'qkvflow-adamw-v1', count: String(this.count), hyper: JSON.stringify(this.hyper), names: JSON.stringify(this.stateNames()) },
    };
  }

  /** Restores a state written by `exportState`; checks it against the trainable parameters when given. */
  importState(state: SafetensorsContents, params?: Record<string, Tensor>): void {
    const fn = 'AdamW.importState';
    const md = state.metadata;
    if (md.format !== 'qkvflow-adamw-v1') throw new Error(`${fn}: metadata format is ${JSON.stringify(md.format)}; expected 'qkvflow-adamw-v1'`);
    const count = Number(md.count);
    if (!Number.isInteger(count) || count < 0) throw new Error(`${fn}: metadata count is ${JSON.stringify(md.count)}; expected a non-negative integer`);
    let names: unknown;
    try {
      names = JSON.parse(md.names ?? 'null');
    } catch {
      names = null;
    }
    if (!Array.isArray(names) || names.some((x) => typeof x !== 'string')) throw new Error(`${fn}: metadata names is missing or not a JSON list of strings`);
    const list = names as string[];
    if (params !== undefined) {
      const want = Object.keys(params);
      const missing = want.filter((n) => !list.includes(n));
      const extra = list.filter((n) => !(n in params));
      if (missing.length > 0 || extra.length > 0) {
        throw new Error(`${fn}: state is for a different parameter set (missing: ${missing.join(', ') || 'none'}; unexpected: ${extra.join(', ') || 'none'})`);
      }
    }
    this.m.clear();
    this.v.clear();
    this.shapes.clear();
    for (const n of list) {
      const m = state.tensors[`m.${n}`];
      const v = state.tensors[`v.${n}`];
      if (m === undefined || v === undefined) throw new Error(`${fn}: state lacks m.${n} or v.${n}`);
      for (const [k, r] of [['m', m], ['v', v]] as const) {
        if (r.dtype !== 'F32' && r.dtype !== 'F64') throw new Error(`${fn}: ${k}.${n} has dtype ${r.dtype}; expected F32 or F64`);
      }
      if (m.shape.join(',') !== v.shape.join(',')) throw new Error(`${fn}: m.${n} ${fmt(m.shape)} and v.${n} ${fmt(v.shape)} differ in shape`);
      const p = params?.[n];
      if (p !== undefined) {
        if (p.shape.join(',') !== m.shape.join(',')) throw new Error(`${fn}: m.${n} has shape ${fmt(m.shape)}; the parameter has ${fmt(p.shape)}`);
        const want = p.dtype === 'float64' ? 'F64' : 'F32';
        if (m.dtype !== want) throw new Error(`${fn}: m.${n} is ${m.dtype}; the parameter is ${p.dtype}`);
      }
      const copy = (r: RawTensor): Float => (r.dtype === 'F64' ? Float64Array.from(r.data as Float64Array) : Float32Array.from(r.data as Float32Array));
      this.m.set(n, copy(m));
      this.v.set(n, copy(v));
      this.shapes.set(n, [...m.shape]);
    }
    this.count = count;
  }
}
