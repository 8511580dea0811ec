/**
 * Model configurations: plain JSON-serialisable objects, validated with errors that name the bad key and list
 * the valid ones.
 */

/** Which architecture a configuration describes. */
export type ModelKind = "gpt2" | "diffeqformer" | "discretized";

/** Floating-point dtype of a model's parameters and activations. */
export type ModelDType = "float32" | "float64";

/**
 * The paper's integration scheme (the DiffEqFormer default): n steps of dt = 1/n on [0, 1], step i taking the state
 * at the LEFT end of the step and the field's time at the RIGHT end, X_{i+1} = X_i + dt·f(X_i, t_{i+1}) with
 * t_{i+1} = (i+1)/n (time grid: `eulerGrid`). Ordinary explicit Euler ('euler' in @qkvflow/ode's registry) uses
 * f(X_i, t_i) at the left end instead.
 */
export const PAPER_EULER = "euler-right-time";

/**
 * Former names of solver methods in model configurations, mapped on validation: configurations and checkpoints
 * written before the rename call the paper's scheme 'euler'.
 */
export const SOLVER_METHOD_ALIASES: ReadonlyMap<string, string> = new Map([["euler", PAPER_EULER]]);

/** The current name of a solver method (former names mapped, others unchanged). */
export function canonicalSolverMethod(method: string): string {
  return SOLVER_METHOD_ALIASES.get(method) ?? method;
}

/**
 * A stored model configuration with former names replaced by the current ones (solver method 'euler' →
 * 'euler-right-time'); nothing else is changed or checked, and anything that is not such a configuration is
 * returned as it is. For comparing a checkpoint's configuration with a model's validated one.
 */
export function upgradeModelConfig(stored: unknown): unknown {
  if (!isPlainObject(stored) || !isPlainObject(stored.solver) || typeof stored.solver.method !== "string") return stored;
  const method = canonicalSolverMethod(stored.solver.method);
  return method === stored.solver.method ? stored : { ...stored, solver: { ...stored.solver, method } };
}

/** Whether a (current or former) solver method name denotes the paper's scheme. */
export function isPaperEuler(method: string): boolean {
  return canonicalSolverMethod(method) === PAPER_EULER;
}

/** How the DiffEqFormer integrates its ODE over [0, 1]. */
export interface SolverConfig {
  /**
   * 'euler-right-time' (`PAPER_EULER`, the default) is the paper's scheme on its grid: `steps` steps of dt = 1/steps,
   * step i evaluating the field at t = (i+1)/steps with the state before the step. The old name 'euler' is read as
   * 'euler-right-time'. Any other name is passed to `odeint` of @qkvflow/ode (e.g. 'rk4', 'midpoint', 'dopri5').
   */
  method: string;
  /**
   * Number of fixed steps. Default: nLayer for 'euler-right-time' and fixed-step methods; adaptive methods choose
   * their own steps unless this is set (then they take this many fixed steps).
   */
  steps?: number;
  /** Relative tolerance for adaptive methods. */
  rtol?: number;
  /** Absolute tolerance for adaptive methods. */
  atol?: number;
  /** Maximum number of steps for adaptive methods. */
  maxSteps?: number;
}

/** Low-rank adapter settings recorded in a model's configuration once LoRA is applied. */
export interface LoRAConfig {
  /** Rank r of each adapter. */
  rank: number;
  /** Scale numerator: the adapter output is multiplied by alpha / rank. */
  alpha: number;
  /** Glob patterns (`*` matches any run of characters) over dotted Linear-module names, e.g. `h.*.attn.c_attn`. */
  targets: string[];
  /** Extra parameters (glob patterns over parameter names) that stay trainable, e.g. `wte.weight`. */
  trainable: string[];
  /** Standard deviation of the Gaussian init of A (B is zero). */
  initStd: number;
  /** Whether the adapters are currently merged into the base weights. */
  merged: boolean;
}

/** Fields shared by every model kind. */
export interface BaseModelConfig {
  kind: ModelKind;
  /** Vocabulary size V. */
  vocabSize: number;
  /** Context length (number of learned positions). */
  blockSize: number;
  /** Embedding width E. */
  nEmbd: number;
  /** Number of attention heads H (E must be divisible by H). */
  nHead: number;
  /** GPT-2: blocks; DiffEqFormer: L, the number of Euler steps of the paper's grid; discretized: layers M. */
  nLayer: number;
  /** Dropout on the embeddings (training only). */
  embdPdrop: number;
  /** Dropout on each residual branch (training only). */
  residPdrop: number;
  /** LayerNorm epsilon. */
  layerNormEps: number;
  /** Standard deviation of the Gaussian weight init (positions use half of it). */
  initStd: number;
  /** Parameter dtype. */
  dtype: ModelDType;
  /** Recompute each block / ODE step in the backward pass instead of storing its intermediates. */
  gradientCheckpointing: boolean;
  /** Present once LoRA adapters are applied. */
  lora?: LoRAConfig;
}

/** The sequential pre-LN GPT-2 baseline. */
export interface Gpt2Config extends BaseModelConfig {
  kind: "gpt2";
}

/** DiffEqFormer: a neural-ODE transformer with hypernetwork-generated, time-dependent weights. */
export interface DiffEqFormerConfig extends BaseModelConfig {
  kind: "diffeqformer";
  /** d: width of each hypernetwork h(t). */
  timeEmbedDim: number;
  /** S: number of sinusoid frequencies; e(t) has 2S+1 entries. */
  sinusoidalDim: number;
  /** ODE solver settings. */
  solver: SolverConfig;
}

/** A plain parallel-block transformer with Euler-scaled residuals, e.g. a discretised DiffEqFormer. */
export interface DiscretizedConfig extends BaseModelConfig {
  kind: "discretized";
  /** Euler factor of every layer: x ← x + dt·(attn(ln_a(x)) + mlp(ln_m(x))). */
  dt: number;
}

/** Any model configuration. */
export type ModelConfig = Gpt2Config | DiffEqFormerConfig | DiscretizedConfig;

/** A configuration where fields with defaults may be left out. */
export type ModelConfigInput =
  | (Partial<Omit<Gpt2Config, "kind">> & { kind: "gpt2" })
  | (Partial<Omit<DiffEqFormerConfig, "kind" | "solver">> & { kind: "diffeqformer"; solver?: Partial<SolverConfig> })
  | (Partial<Omit<DiscretizedConfig, "kind">> & { kind: "discretized" });

const BASE_KEYS = [
  "kind",
  "vocabSize",
  "blockSize",
  "nEmbd",
  "nHead",
  "nLayer",
  "embdPdrop",
  "residPdrop",
  "layerNormEps",
  "initStd",
  "dtype",
  "gradientCheckpointing",
  "lora",
] as const;
const KEYS: Record<ModelKind, readonly string[]> = {
  gpt2: BASE_KEYS,
  diffeqformer: [...BASE_KEYS, "timeEmbedDim", "sinusoidalDim", "solver"],
  discretized: [...BASE_KEYS, "dt"],
};
const SOLVER_KEYS = ["method", "steps", "rtol", "atol", "maxSteps"];
const LORA_KEYS = ["rank", "alpha", "targets", "trainable", "initStd", "merged"];
const KINDS: readonly ModelKind[] = ["gpt2", "diffeqformer", "discretized"];

function fail(what: string, got: unknown, expected: string): never {
  throw new Error(`validateConfig: ${what} is ${JSON.stringify(got)}; expected ${expected}`);
}

function checkKeys(where: string, obj: Record<string, unknown>, valid: readonly string[]): void {
  const unknown = Object.keys(obj).filter((k) => !valid.includes(k));
  if (unknown.length > 0) {
    throw new Error(
      `validateConfig: unknown key${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => `'${k}'`).join(", ")} in ${where}; valid keys are ${valid.join(", ")}`,
    );
  }
}

function posInt(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) fail(name, v, "a positive integer");
  return v;
}

function prob(name: string, v: unknown): number {
  if (typeof v !== "number" || !(v >= 0 && v < 1)) fail(name, v, "a number in [0, 1)");
  return v;
}

function posNum(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) fail(name, v, "a finite positive number");
  return v;
}

function bool(name: string, v: unknown): boolean {
  if (typeof v !== "boolean") fail(name, v, "true or false");
  return v;
}

function stringList(name: string, v: unknown): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string" || s.length === 0)) fail(name, v, "an array of non-empty strings");
  return [...(v as string[])];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Default LoRA settings (rank 8, alpha 16, all Linear layers, B = 0, A ~ N(0, 0.02²)). */
export const LORA_DEFAULTS: LoRAConfig = { rank: 8, alpha: 16, targets: ["*"], trainable: [], initStd: 0.02, merged: false };

/** Validates LoRA settings, filling defaults. */
export function validateLoRAConfig(v: unknown): LoRAConfig {
  if (!isPlainObject(v)) fail("lora", v, "an object");
  checkKeys("lora", v, LORA_KEYS);
  const o = { ...LORA_DEFAULTS, ...v } as Record<string, unknown>;
  return {
    rank: posInt("lora.rank", o.rank),
    alpha: posNum("lora.alpha", o.alpha),
    targets: stringList("lora.targets", o.targets),
    trainable: stringList("lora.trainable", o.trainable),
    initStd: (() => {
      if (typeof o.initStd !== "number" || !(o.initStd >= 0) || !Number.isFinite(o.initStd))
        fail("lora.initStd", o.initStd, "a finite number >= 0");
      return o.initStd;
    })(),
    merged: bool("lora.merged", o.merged),
  };
}

function validateSolver(v: unknown): SolverConfig {
  if (!isPlainObject(v)) fail("solver", v, `an object such as { method: '${PAPER_EULER}' }`);
  checkKeys("solver", v, SOLVER_KEYS);
  const method = v.method ?? PAPER_EULER;
  if (typeof method !== "string" || method.length === 0)
    fail("solver.method", method, `a solver name such as '${PAPER_EULER}', 'rk4' or 'dopri5'`);
  const out: SolverConfig = { method: canonicalSolverMethod(method) };
  if (v.steps !== undefined) out.steps = posInt("solver.steps", v.steps);
  if (v.rtol !== undefined) out.rtol = posNum("solver.rtol", v.rtol);
  if (v.atol !== undefined) out.atol = posNum("solver.atol", v.atol);
  if (v.maxSteps !== undefined) out.maxSteps = posInt("solver.maxSteps", v.maxSteps);
  return out;
}

/**
 * Checks a configuration and fills in defaults (dropout 0, eps 1e-5, init std 0.02, float32, no checkpointing;
 * DiffEqFormer: d 100, S 16 as in the reference code, the paper's scheme with nLayer steps; discretized: dt = 1/nLayer).
 * Throws on unknown keys or bad values, naming them and listing what is valid.
 */
export function validateConfig(input: unknown): ModelConfig {
  if (!isPlainObject(input)) fail("the configuration", input, "an object");
  const kind = input.kind;
  if (typeof kind !== "string" || !KINDS.includes(kind as ModelKind)) fail("kind", kind, `one of ${KINDS.join(", ")}`);
  const k = kind as ModelKind;
  checkKeys(`a '${k}' configuration`, input, KEYS[k]);
  const nEmbd = posInt("nEmbd", input.nEmbd);
  const nHead = posInt("nHead", input.nHead);
  if (nEmbd % nHead !== 0)
    throw new Error(`validateConfig: nEmbd ${nEmbd} is not divisible by nHead ${nHead}; expected nEmbd = nHead · headDim`);
  const nLayer = posInt("nLayer", input.nLayer);
  const dtype = input.dtype ?? "float32";
  if (dtype !== "float32" && dtype !== "float64") fail("dtype", dtype, "'float32' or 'float64'");
  const base: BaseModelConfig = {
    kind: k,
    vocabSize: posInt("vocabSize", input.vocabSize),
    blockSize: posInt("blockSize", input.blockSize),
    nEmbd,
    nHead,
    nLayer,
    embdPdrop: prob("embdPdrop", input.embdPdrop ?? 0),
    residPdrop: prob("residPdrop", input.residPdrop ?? 0),
    layerNormEps: posNum("layerNormEps", input.layerNormEps ?? 1e-5),
    initStd: posNum("initStd", input.initStd ?? 0.02),
    dtype,
    gradientCheckpointing: bool("gradientCheckpointing", input.gradientCheckpointing ?? false),
  };
  if (input.lora !== undefined) base.lora = validateLoRAConfig(input.lora);
  if (k === "gpt2") return { ...base, kind: "gpt2" };
  if (k === "discretized") {
    return { ...base, kind: "discretized", dt: posNum("dt", input.dt ?? 1 / nLayer) };
  }
  return {
    ...base,
    kind: "diffeqformer",
    timeEmbedDim: posInt("timeEmbedDim", input.timeEmbedDim ?? 100),
    sinusoidalDim: posInt("sinusoidalDim", input.sinusoidalDim ?? 16),
    solver: validateSolver(input.solver ?? { method: PAPER_EULER }),
  };
}

const GPT2_VOCAB = 50257;
const GPT2_CONTEXT = 1024;

function gpt2(nEmbd: number, nHead: number, nLayer: number): Gpt2Config {
  return validateConfig({
    kind: "gpt2",
    vocabSize: GPT2_VOCAB,
    blockSize: GPT2_CONTEXT,
    nEmbd,
    nHead,
    nLayer,
    embdPdrop: 0.1,
    residPdrop: 0.1,
  }) as Gpt2Config;
}

function ode(nEmbd: number, nHead: number, nLayer: number, d: number, S: number): DiffEqFormerConfig {
  return validateConfig({
    kind: "diffeqformer",
    vocabSize: GPT2_VOCAB,
    blockSize: GPT2_CONTEXT,
    nEmbd,
    nHead,
    nLayer,
    timeEmbedDim: d,
    sinusoidalDim: S,
    embdPdrop: 0.1,
    residPdrop: 0.1,
  }) as DiffEqFormerConfig;
}

/**
 * Named configurations: the paper's GPT-2 and DiffEqFormer sizes (dropout 0.1, GPT-2 vocabulary and context) and
 * tiny CPU configurations. Use `preset(name, overrides)` to derive variants.
 */
export const presets: Record<string, ModelConfig> = {
  "gpt2-small": gpt2(768, 12, 12),
  "gpt2-medium": gpt2(1024, 16, 24),
  "gpt2-large": gpt2(1280, 20, 36),
  "gpt2-xl": gpt2(1600, 25, 48),
  /** OWT/WikiText small: E 768, 12 heads, L 12, d 20, S 128. */
  "diffeqformer-small": ode(768, 12, 12, 20, 128),
  /** OWT medium YAML: d 96. */
  "diffeqformer-medium": ode(1024, 16, 24, 96, 128),
  /** WikiText-103 medium YAML: d 48. */
  "diffeqformer-medium-wiki": ode(1024, 16, 24, 48, 128),
  /** OWT large: d 96 (the paper's ablation also uses 48 and 144). */
  "diffeqformer-large": ode(1280, 20, 36, 96, 128),
  /** Pretraining model of the adaptive fine-tuning experiments (§4): L 18, d 100, S 256. */
  "diffeqformer-finetune": ode(1024, 16, 18, 100, 256),
  /** 18-layer GPT-2 (E 1024) matching the fine-tuning experiments' depth. */
  "gpt2-18": gpt2(1024, 16, 18),
  "gpt2-tiny": validateConfig({
    kind: "gpt2",
    vocabSize: GPT2_VOCAB,
    blockSize: 128,
    nEmbd: 128,
    nHead: 4,
    nLayer: 4,
    embdPdrop: 0.1,
    residPdrop: 0.1,
  }),
  "diffeqformer-tiny": validateConfig({
    kind: "diffeqformer",
    vocabSize: GPT2_VOCAB,
    blockSize: 128,
    nEmbd: 128,
    nHead: 4,
    nLayer: 4,
    timeEmbedDim: 8,
    sinusoidalDim: 16,
    embdPdrop: 0.1,
    residPdrop: 0.1,
  }),
  "gpt2-micro": validateConfig({ kind: "gpt2", vocabSize: 61, blockSize: 16, nEmbd: 16, nHead: 2, nLayer: 2 }),
  "diffeqformer-micro": validateConfig({
    kind: "diffeqformer",
    vocabSize: 61,
    blockSize: 16,
    nEmbd: 16,
    nHead: 2,
    nLayer: 3,
    timeEmbedDim: 4,
    sinusoidalDim: 4,
  }),
};

/** A preset by name, with fields overridden (the result is validated). */
export function preset(name: string, overrides: Record<string, unknown> = {}): ModelConfig {
  const p = presets[name];
  if (!p) throw new Error(`preset: unknown preset '${name}'; valid presets are ${Object.keys(presets).join(", ")}`);
  const merged: Record<string, unknown> = { ...structuredClone(p), ...overrides };
  if (p.kind === "diffeqformer" && isPlainObject(overrides.solver)) merged.solver = { ...p.solver, ...overrides.solver };
  return validateConfig(merged);
}
