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
 * State and update are tensors on the parameters' backend (optax's `scale_by_adam` state): the moments m and v
 * (dtype of their parameter) live there, and `adamwUpdate` defines the update as a chain of elementwise tensor
 * ops; only the global norm comes back to the host, as one number (for the clip factor, the non-finite check
 * and the log). The count t and the learning rate are host numbers, so the bias corrections are `Math.pow`.
 * On the CPU backend, whose tensors live in host memory, the same arithmetic runs as one fused pass per
 * parameter (host-kernels.ts → the backend's `adamwUpdateArrays`: a WebAssembly SIMD kernel over the kernel
 * threads for large float32 parameters, a loop otherwise; no transfer, one pass instead of one per op), which
 * updates the moments in place instead of allocating new ones; `kernel: 'ops'` uses the tensor ops there too.
 * All give bit-identical results.
 *
 * Precision: the arithmetic runs in float64 where the backend has it (the CPU backend), with each result rounded
 * to the parameter's dtype at the end — the new moments and parameters are exactly what a float64 loop over
 * the elements would store, so an update is deterministic and bit-identical across runs and resumes. On a
 * backend without float64 (gpu.js computes in single precision) it runs in the parameter's dtype
 * (`precision: 'float32'` asks for that everywhere). The global norm is one float64 sum over the gradients
 * laid end to end, in parameter order. `exportState` / `importState` move the state through safetensors.
 */
import {
  add,
  cast,
  concat,
  div,
  getBackend,
  mul,
  rawToTensor,
  reshape,
  scalar,
  sqrt,
  sub,
  sum,
  tensorToRaw,
  tidy,
  zerosLike,
  type Backend,
  type DType,
  type RawTensor,
  type SafetensorsContents,
  type Tensor,
} from "@qkvflow/autograd";
import { type AdamConstants, adamwUpdateHost, hostMemoryBackend, sumOfSquaresHost } from "./host-kernels.js";

export type { AdamConstants };

/** Arithmetic precision of the optimiser: float64 where the backend has it ('auto'), or always the parameter's dtype. */
export type UpdatePrecision = "auto" | "float32";

/** How updates and norms run: fused loops on the CPU backend and tensor ops elsewhere ('auto'), or tensor ops everywhere ('ops'). */
export type OptimizerKernel = "auto" | "ops";

/** Options of the norm and clipping functions. */
export interface NormOptions {
  /** Arithmetic precision (default 'auto'). */
  precision?: UpdatePrecision;
  /** Fused host loop on the CPU backend or tensor ops (default 'auto'). */
  kernel?: OptimizerKernel;
}

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
  /** Arithmetic precision (default 'auto': float64 where the backend has it; see the module comment). */
  precision?: UpdatePrecision;
  /** Fused loop on the CPU backend or tensor ops everywhere (default 'auto'; see the module comment). */
  kernel?: OptimizerKernel;
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

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function requireFloat(fn: string, what: string, t: Tensor): void {
  if (t.dtype !== "float32" && t.dtype !== "float64") throw new Error(`${fn}: ${what} is ${t.dtype}; expected float32 or float64`);
}

const float64Support = new WeakMap<Backend, boolean>();

/** Whether the current backend stores float64 tensors (probed once per backend: gpu.js refuses them). */
export function backendHasFloat64(): boolean {
  const be = getBackend();
  let ok = float64Support.get(be);
  if (ok === undefined) {
    try {
      scalar(0, "float64");
      ok = true;
    } catch {
      ok = false;
    }
    float64Support.set(be, ok);
  }
  return ok;
}

/** The dtype the optimiser computes in for tensors of `dtype` (float64 params always compute in float64). */
export function updateDType(dtype: DType, precision: UpdatePrecision = "auto"): DType {
  if (dtype === "float64") return "float64";
  return precision === "auto" && backendHasFloat64() ? "float64" : dtype;
}

/**
 * One AdamW update of one parameter, as tensors on its backend: computes in `dt` and returns the new parameter
 * and moments rounded to their own dtypes (see the module comment for the formula and the operation order).
 */
export function adamwUpdate(p: Tensor, g: Tensor, m: Tensor, v: Tensor, c: AdamConstants, dt: DType): { p: Tensor; m: Tensor; v: Tensor } {
  let gw = cast(g, dt);
  if (c.scale !== 1) gw = mul(gw, c.scale);
  const m1 = add(mul(cast(m, dt), c.beta1), mul(gw, 1 - c.beta1));
  const v1 = add(mul(cast(v, dt), c.beta2), mul(mul(gw, 1 - c.beta2), gw));
  const pw = cast(p, dt);
  let u = div(div(m1, c.bc1), add(sqrt(div(v1, c.bc2)), c.eps));
  if (c.decay !== 0) u = add(u, mul(pw, c.decay));
  return { p: cast(sub(pw, mul(u, c.lr)), p.dtype), m: cast(m1, m.dtype), v: cast(v1, v.dtype) };
}

/** Compiles decay patterns into anchored regular expressions (throws on invalid syntax). */
export function compileDecayPatterns(patterns: readonly string[]): RegExp[] {
  return patterns.map((p) => {
    if (typeof p !== "string" || p.length === 0)
      throw new Error(`compileDecayPatterns: pattern ${JSON.stringify(p)} is invalid; expected a non-empty regular expression string`);
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

/**
 * Global L2 norm of a set of gradients as a scalar tensor on their backend: √Σ g² over the gradients laid end to end
 * (in the order given), summed in float64 where the backend has it (see `updateDType`). Zero for no gradients.
 */
export function globalNormTensor(grads: Record<string, Tensor>, precision: UpdatePrecision = "auto"): Tensor {
  const entries = Object.entries(grads);
  for (const [n, g] of entries) requireFloat("globalNorm", `gradient '${n}'`, g);
  const dt = entries.some(([, g]) => g.dtype === "float64") ? "float64" : updateDType("float32", precision);
  if (entries.length === 0) return scalar(0, dt);
  return tidy(() => {
    const squares = entries.map(([, g]) => {
      const x = reshape(cast(g, dt), [g.size]);
      return mul(x, x);
    });
    return sqrt(sum(concat(squares, 0)));
  });
}

/** Whether the fused host loops apply (kernel 'auto' on the CPU backend with float64 precision). */
function useHostKernel(kernel: OptimizerKernel, precision: UpdatePrecision): boolean {
  return kernel === "auto" && precision === "auto" && hostMemoryBackend();
}

/** Global L2 norm of a set of gradients as a number (`globalNormTensor`, or the same sum as one host loop on the CPU backend). */
export function globalNorm(grads: Record<string, Tensor>, opts: NormOptions = {}): number {
  const precision = opts.precision ?? "auto";
  if (!useHostKernel(opts.kernel ?? "auto", precision)) return globalNormTensor(grads, precision).item();
  for (const [n, g] of Object.entries(grads)) requireFloat("globalNorm", `gradient '${n}'`, g);
  return Math.sqrt(sumOfSquaresHost(Object.values(grads)));
}

/** Scale applied by optax.clip_by_global_norm: 1 when norm < maxNorm, else maxNorm / norm. */
export function clipScale(norm: number, maxNorm: number | null): number {
  if (maxNorm === null || maxNorm === 0) return 1;
  if (!(maxNorm > 0)) throw new Error(`clipScale: maxNorm must be positive (or null / 0 to disable), got ${maxNorm}`);
  return norm < maxNorm ? 1 : maxNorm / norm;
}

/** Gradients rescaled so their global norm is at most `maxNorm`; returns the gradients, the norm and the scale. */
export function clipByGlobalNorm(
  grads: Record<string, Tensor>,
  maxNorm: number,
  opts: NormOptions = {},
): { grads: Record<string, Tensor>; norm: number; scale: number } {
  const precision = opts.precision ?? "auto";
  const norm = globalNorm(grads, opts);
  const scale = clipScale(norm, maxNorm);
  if (scale === 1) return { grads, norm, scale };
  const out: Record<string, Tensor> = {};
  for (const [n, g] of Object.entries(grads)) out[n] = tidy(() => cast(mul(cast(g, updateDType(g.dtype, precision)), scale), g.dtype));
  return { grads: out, norm, scale };
}

function checkBeta(name: string, v: number): number {
  if (!(v >= 0 && v < 1)) throw new Error(`AdamW: ${name} must be in [0, 1), got ${v}`);
  return v;
}

const STATE_FORMAT = "qkvflow-adamw-v1";

/** The AdamW optimiser over named parameters (see the module comment for the exact update). */
export class AdamW {
  readonly hyper: AdamWHyper;
  /** Arithmetic precision (see the module comment). */
  readonly precision: UpdatePrecision;
  /** Fused host loop on the CPU backend, or tensor ops (see the module comment). */
  readonly kernel: OptimizerKernel;
  /** Number of updates applied so far. */
  count = 0;
  private readonly decayRes: RegExp[];
  private readonly m = new Map<string, Tensor>();
  private readonly v = new Map<string, Tensor>();

  /** Creates the optimiser; moments are created lazily (zeros) or by `init`. */
  constructor(opts: AdamWOptions = {}) {
    const eps = opts.eps ?? 1e-8;
    const wd = opts.weightDecay ?? 0;
    const clip = opts.maxGradNorm ?? null;
    if (!(eps >= 0 && Number.isFinite(eps))) throw new Error(`AdamW: eps must be a finite number >= 0, got ${eps}`);
    if (!(wd >= 0 && Number.isFinite(wd))) throw new Error(`AdamW: weightDecay must be a finite number >= 0, got ${wd}`);
    if (clip !== null && !(clip >= 0 && Number.isFinite(clip)))
      throw new Error(`AdamW: maxGradNorm must be a finite number >= 0 or null, got ${clip}`);
    const precision = opts.precision ?? "auto";
    if (precision !== "auto" && precision !== "float32")
      throw new Error(`AdamW: precision is ${JSON.stringify(precision)}; expected 'auto' or 'float32'`);
    const kernel = opts.kernel ?? "auto";
    if (kernel !== "auto" && kernel !== "ops") throw new Error(`AdamW: kernel is ${JSON.stringify(kernel)}; expected 'auto' or 'ops'`);
    this.hyper = {
      beta1: checkBeta("beta1", opts.beta1 ?? 0.9),
      beta2: checkBeta("beta2", opts.beta2 ?? 0.999),
      eps,
      weightDecay: wd,
      decayPatterns: [...(opts.decayPatterns ?? [".*"])],
      maxGradNorm: clip === 0 ? null : clip,
    };
    this.precision = precision;
    this.kernel = kernel;
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
    const have = this.m.get(name);
    if (have !== undefined) {
      if (have.shape.length !== p.shape.length || have.shape.some((d, i) => d !== p.shape[i])) {
        throw new Error(`AdamW: parameter '${name}' has shape ${fmt(p.shape)} but its optimiser state has ${fmt(have.shape)}`);
      }
      return;
    }
    requireFloat("AdamW", `parameter '${name}'`, p);
    this.m.set(name, zerosLike(p));
    this.v.set(name, zerosLike(p));
  }

  /** Names with optimiser state, in insertion order. */
  stateNames(): string[] {
    return [...this.m.keys()];
  }

  /**
   * The moments of parameter `name` (the optimiser's own tensors on the backend: the next step replaces them, or on the
   * CPU backend updates them in place), or undefined when it has no state yet.
   */
  moments(name: string): { m: Tensor; v: Tensor } | undefined {
    const m = this.m.get(name);
    return m === undefined ? undefined : { m, v: this.v.get(name)! };
  }

  /**
   * One update of every parameter in `grads` (clip → Adam → decay → scale by −lr); returns the new parameters.
   * `gradNorm`, when the caller has computed it already (`globalNorm` of the same gradients), is not computed again.
   */
  step(params: Record<string, Tensor>, grads: Record<string, Tensor>, lr: number, opts: { gradNorm?: number } = {}): AdamWStepInfo {
    const fn = "AdamW.step";
    if (!Number.isFinite(lr)) throw new Error(`${fn}: learning rate must be finite, got ${lr}`);
    for (const [n, g] of Object.entries(grads)) {
      const p = params[n];
      if (p === undefined) throw new Error(`${fn}: gradient '${n}' has no parameter; parameters are ${Object.keys(params).join(", ")}`);
      if (p.shape.length !== g.shape.length || p.shape.some((d, i) => d !== g.shape[i]) || p.dtype !== g.dtype) {
        throw new Error(`${fn}: gradient '${n}' is ${g.dtype} ${fmt(g.shape)} but the parameter is ${p.dtype} ${fmt(p.shape)}`);
      }
      this.ensure(n, p);
    }
    const gradNorm = opts.gradNorm ?? globalNorm(grads, { precision: this.precision, kernel: this.kernel });
    const scale = clipScale(gradNorm, this.hyper.maxGradNorm);
    const { beta1, beta2, eps, weightDecay } = this.hyper;
    const t = this.count + 1;
    const base = { beta1, beta2, eps, scale, bc1: 1 - Math.pow(beta1, t), bc2: 1 - Math.pow(beta2, t), lr };
    const host = useHostKernel(this.kernel, this.precision);
    const out: Record<string, Tensor> = {};
    if (host) {
      // one fused update of every parameter; the moments are written in place
      const names = Object.keys(grads);
      const updates = names.map((n) => ({
        p: params[n]!,
        g: grads[n]!,
        m: this.m.get(n)!,
        v: this.v.get(n)!,
        decay: this.decays(n) ? weightDecay : 0,
      }));
      const next = adamwUpdateHost(updates, base);
      names.forEach((n, i) => {
        out[n] = next[i]!;
      });
    } else {
      for (const [n, g] of Object.entries(grads)) {
        const p = params[n]!;
        const m = this.m.get(n)!;
        const v = this.v.get(n)!;
        const c = { ...base, decay: this.decays(n) ? weightDecay : 0 };
        const next = tidy(() => adamwUpdate(p, g, m, v, c, updateDType(p.dtype, this.precision)));
        this.m.set(n, next.m);
        this.v.set(n, next.v);
        m.dispose();
        v.dispose();
        out[n] = next.p;
      }
    }
    this.count = t;
    return { params: out, gradNorm, clipScale: scale, lr };
  }

  /** The state as safetensors tensors (`m.<name>`, `v.<name>`, copied to the host) plus metadata (count, hyper-parameters). */
  exportState(): SafetensorsContents {
    const tensors: Record<string, RawTensor> = {};
    const copy = (t: Tensor): RawTensor => {
      const r = tensorToRaw(t);
      return { ...r, data: r.data.slice() };
    };
    for (const [n, m] of this.m) {
      tensors[`m.${n}`] = copy(m);
      tensors[`v.${n}`] = copy(this.v.get(n)!);
    }
    return {
      tensors,
      metadata: {
        format: STATE_FORMAT,
        count: String(this.count),
        hyper: JSON.stringify(this.hyper),
        names: JSON.stringify(this.stateNames()),
      },
    };
  }

  /** Restores a state written by `exportState` onto the current backend; checks it against the trainable parameters when given. */
  importState(state: SafetensorsContents, params?: Record<string, Tensor>): void {
    const fn = "AdamW.importState";
    const md = state.metadata;
    if (md.format !== STATE_FORMAT) throw new Error(`${fn}: metadata format is ${JSON.stringify(md.format)}; expected '${STATE_FORMAT}'`);
    const count = Number(md.count);
    if (!Number.isInteger(count) || count < 0)
      throw new Error(`${fn}: metadata count is ${JSON.stringify(md.count)}; expected a non-negative integer`);
    let names: unknown;
    try {
      names = JSON.parse(md.names ?? "null");
    } catch {
      names = null;
    }
    if (!Array.isArray(names) || names.some((x) => typeof x !== "string"))
      throw new Error(`${fn}: metadata names is missing or not a JSON list of strings`);
    const list = names as string[];
    if (params !== undefined) {
      const want = Object.keys(params);
      const missing = want.filter((n) => !list.includes(n));
      const extra = list.filter((n) => !(n in params));
      if (missing.length > 0 || extra.length > 0) {
        throw new Error(
          `${fn}: state is for a different parameter set (missing: ${missing.join(", ") || "none"}; unexpected: ${extra.join(", ") || "none"})`,
        );
      }
    }
    const m = new Map<string, Tensor>();
    const v = new Map<string, Tensor>();
    for (const n of list) {
      const rm = state.tensors[`m.${n}`];
      const rv = state.tensors[`v.${n}`];
      if (rm === undefined || rv === undefined) throw new Error(`${fn}: state lacks m.${n} or v.${n}`);
      for (const [k, r] of [
        ["m", rm],
        ["v", rv],
      ] as const) {
        if (r.dtype !== "F32" && r.dtype !== "F64") throw new Error(`${fn}: ${k}.${n} has dtype ${r.dtype}; expected F32 or F64`);
      }
      if (rm.shape.join(",") !== rv.shape.join(","))
        throw new Error(`${fn}: m.${n} ${fmt(rm.shape)} and v.${n} ${fmt(rv.shape)} differ in shape`);
      const p = params?.[n];
      if (p !== undefined) {
        if (p.shape.join(",") !== rm.shape.join(","))
          throw new Error(`${fn}: m.${n} has shape ${fmt(rm.shape)}; the parameter has ${fmt(p.shape)}`);
        const want = p.dtype === "float64" ? "F64" : "F32";
        if (rm.dtype !== want) throw new Error(`${fn}: m.${n} is ${rm.dtype}; the parameter is ${p.dtype}`);
      }
      // copies, so that the caller's arrays and the optimiser's state never alias
      m.set(n, rawToTensor(`m.${n}`, { ...rm, data: rm.data.slice() }));
      v.set(n, rawToTensor(`v.${n}`, { ...rv, data: rv.data.slice() }));
    }
    this.m.clear();
    this.v.clear();
    for (const [n, t] of m) {
      this.m.set(n, t);
      this.v.set(n, v.get(n)!);
    }
    this.count = count;
  }
}
