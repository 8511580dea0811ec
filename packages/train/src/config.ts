/**
 * Training configuration: a JSON object with sections `model`, `data`, `optimizer`, `train` and
 * (for `finetune`) `finetune`, plus `name`, `seed` and an optional `description`. Every key has a default
 * (see `CONFIG_SCHEMA`); configuration files list only what they change. `--set section.key=value`
 * overrides apply on top. Unknown keys and bad values are rejected with the valid options listed.
 *
 * The `model` section is handed to @qkvflow/models (`preset` plus overrides, or a full configuration
 * with `kind`); it is checked there, so this module keeps it as a plain JSON object.
 */

import { listDatasets } from "./data/index.js";

/** JSON values. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

/** The data section. */
export interface DataConfig {
  dataset: string;
  dataDir: string | null;
  cacheDir: string | null;
  download: boolean;
  trainSplit: string;
  evalSplit: string;
  splitFallback: boolean;
  seqLen: number;
  stride: number | null;
  maxDocuments: number | null;
  heldOutFraction: number;
}

/** The optimizer section. */
export interface OptimizerConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decayPatterns: string[] | null;
  maxGradNorm: number | null;
  warmupRatio: number;
  minLrRatio: number;
  schedule: "cosine" | "linear" | "constant";
}

/** The train section. */
export interface TrainLoopConfig {
  steps: number;
  batchSize: number;
  gradAccum: number;
  evalEvery: number;
  evalBatches: number | null;
  evalBatchSize: number | null;
  checkpointEvery: number;
  keepCheckpoints: number;
  outDir: string | null;
  progress: "auto" | "bar" | "plain" | "none";
}

/** The finetune section (used by `qkvflow finetune`). */
export interface FinetuneConfig {
  checkpoint: string | null;
  layers: number | null;
  mode: "full" | "lora";
  loraRank: number;
  loraAlpha: number;
  loraInitStd: number;
  loraTargets: string[];
  loraTrainable: string[];
}

/** A complete, validated training configuration. */
export interface TrainConfig {
  name: string;
  description: string;
  seed: number;
  model: { [k: string]: JsonValue };
  data: DataConfig;
  optimizer: OptimizerConfig;
  train: TrainLoopConfig;
  finetune: FinetuneConfig;
}

/** Sections with a fixed key set. */
export type SectionName = "data" | "optimizer" | "train" | "finetune";

type FieldType =
  | { t: "int"; min: number; nullable?: boolean }
  | { t: "number"; min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean; nullable?: boolean }
  | { t: "string"; nullable?: boolean }
  | { t: "bool" }
  | { t: "enum"; values: readonly string[] }
  | { t: "strings"; nullable?: boolean };

/** Description of one configuration key. */
export interface FieldSpec {
  type: FieldType;
  default: JsonValue;
  doc: string;
}

/** Every key of every fixed section, with type, default and a one-line description. */
export const CONFIG_SCHEMA: Record<SectionName, Record<string, FieldSpec>> = {
  data: {
    dataset: {
      type: { t: "string" },
      default: "wikitext-103",
      doc: "data set name (wikitext-2, wikitext-103, wikitext-103-detokenized, openwebtext) or 'text' for a plain text file",
    },
    dataDir: {
      type: { t: "string", nullable: true },
      default: null,
      doc: "local folder with the data (for text: the file); null: $QKVFLOW_DATA, then the cache",
    },
    cacheDir: { type: { t: "string", nullable: true }, default: null, doc: "token cache folder; null: $QKVFLOW_CACHE or ~/.cache/qkvflow" },
    download: { type: { t: "bool" }, default: false, doc: "download the data set when it is neither local nor cached" },
    trainSplit: { type: { t: "string" }, default: "train", doc: "split to train on" },
    evalSplit: { type: { t: "string" }, default: "validation", doc: "split to evaluate on" },
    splitFallback: {
      type: { t: "bool" },
      default: true,
      doc: "without a train split, train on evalSplit and evaluate on test (said in the log)",
    },
    seqLen: { type: { t: "int", min: 1 }, default: 1024, doc: "tokens per training / evaluation window" },
    stride: {
      type: { t: "int", min: 1, nullable: true },
      default: null,
      doc: "spacing of training windows; null: seqLen + 1 (disjoint windows)",
    },
    maxDocuments: { type: { t: "int", min: 1, nullable: true }, default: null, doc: "keep only the first N documents of each split" },
    heldOutFraction: {
      type: { t: "number", min: 0, max: 1, minExclusive: true, maxExclusive: true },
      default: 0.1,
      doc: "dataset 'text': the last fraction of the tokens is the test split",
    },
  },
  optimizer: {
    lr: { type: { t: "number", min: 0 }, default: 6e-4, doc: "peak learning rate" },
    beta1: { type: { t: "number", min: 0, max: 1, maxExclusive: true }, default: 0.9, doc: "Adam β1" },
    beta2: { type: { t: "number", min: 0, max: 1, maxExclusive: true }, default: 0.999, doc: "Adam β2" },
    eps: { type: { t: "number", min: 0 }, default: 1e-8, doc: "Adam ε" },
    weightDecay: {
      type: { t: "number", min: 0 },
      default: 0.1,
      doc: "decoupled weight decay (scaled by the scheduled learning rate, as optax.adamw)",
    },
    decayPatterns: {
      type: { t: "strings", nullable: true },
      default: null,
      doc: "regular expressions (whole-name match) of the parameters that decay; null: by model kind (diffeqformer: embeddings; gpt2: attn/mlp weights + embeddings; discretized: all)",
    },
    maxGradNorm: { type: { t: "number", min: 0, nullable: true }, default: 1, doc: "global gradient-norm clip; null or 0: off" },
    warmupRatio: {
      type: { t: "number", min: 0, max: 1 },
      default: 0.01,
      doc: "fraction of the steps with a linear warmup from 0 (1: the whole run); never a step count, unlike Levanter's warmup >= 1",
    },
    minLrRatio: { type: { t: "number", min: 0, max: 1 }, default: 0.1, doc: "final learning rate as a fraction of lr" },
    schedule: { type: { t: "enum", values: ["cosine", "linear", "constant"] }, default: "cosine", doc: "decay after the warmup" },
  },
  train: {
    steps: { type: { t: "int", min: 1 }, default: 10001, doc: "number of optimiser updates" },
    batchSize: { type: { t: "int", min: 1 }, default: 256, doc: "sequences per update" },
    gradAccum: { type: { t: "int", min: 1 }, default: 1, doc: "micro-batches per update (must divide batchSize)" },
    evalEvery: { type: { t: "int", min: 0 }, default: 200, doc: "evaluate every N updates (0: only at the end)" },
    evalBatches: { type: { t: "int", min: 1, nullable: true }, default: null, doc: "cap on evaluation batches; null: the whole split" },
    evalBatchSize: {
      type: { t: "int", min: 1, nullable: true },
      default: null,
      doc: "sequences per evaluation batch; null: the micro-batch size",
    },
    checkpointEvery: { type: { t: "int", min: 0 }, default: 1000, doc: "checkpoint every N updates (0: only at the end)" },
    keepCheckpoints: { type: { t: "int", min: 1 }, default: 2, doc: "number of most recent checkpoints kept" },
    outDir: { type: { t: "string", nullable: true }, default: null, doc: "run folder (metrics.jsonl, checkpoints/); null: runs/<name>" },
    progress: {
      type: { t: "enum", values: ["auto", "bar", "plain", "none"] },
      default: "auto",
      doc: "progress display: bar on a TTY, plain log lines otherwise (auto)",
    },
  },
  finetune: {
    checkpoint: { type: { t: "string", nullable: true }, default: null, doc: "pretrained run folder or checkpoint folder to start from" },
    layers: {
      type: { t: "int", min: 1, nullable: true },
      default: null,
      doc: "discretise the DiffEqFormer to M layers (null: M = the L it was trained with)",
    },
    mode: { type: { t: "enum", values: ["full", "lora"] }, default: "full", doc: "train all weights or LoRA adapters only" },
    loraRank: { type: { t: "int", min: 1 }, default: 8, doc: "LoRA rank r" },
    loraAlpha: { type: { t: "number", min: 0, minExclusive: true }, default: 16, doc: "LoRA scale numerator (scale = alpha / r)" },
    loraInitStd: { type: { t: "number", min: 0 }, default: 0.02, doc: "std of the Gaussian init of A (B starts at 0)" },
    loraTargets: { type: { t: "strings" }, default: ["*"], doc: "glob patterns of the Linear modules that get adapters" },
    loraTrainable: {
      type: { t: "strings" },
      default: ["wte.weight", "wpe.weight"],
      doc: "glob patterns of extra parameters trained with LoRA (the paper: the embeddings)",
    },
  },
};

const TOP_KEYS = ["name", "description", "seed", "model", "data", "optimizer", "train", "finetune"] as const;
const SECTIONS: readonly SectionName[] = ["data", "optimizer", "train", "finetune"];

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function describeType(f: FieldType): string {
  const orNull = "nullable" in f && f.nullable ? " or null" : "";
  switch (f.t) {
    case "int":
      return `an integer >= ${f.min}${orNull}`;
    case "number": {
      const lo = f.min === undefined ? "" : `${f.minExclusive ? ">" : ">="} ${f.min}`;
      const hi = f.max === undefined ? "" : `${f.maxExclusive ? "<" : "<="} ${f.max}`;
      const range = [lo, hi].filter((s) => s).join(" and ");
      return `a finite number${range ? ` ${range}` : ""}${orNull}`;
    }
    case "string":
      return `a string${orNull}`;
    case "bool":
      return "true or false";
    case "enum":
      return `one of ${f.values.map((v) => `'${v}'`).join(", ")}`;
    case "strings":
      return `a list of strings${orNull}`;
  }
}

/** Extra words for errors of keys that are easy to misread. */
const FIELD_HINTS: Record<string, string> = {
  "optimizer.warmupRatio":
    "it is a fraction of train.steps (1 = the whole run), not a step count as Levanter reads warmup values >= 1; for W warmup steps use W / train.steps",
};

function checkField(path: string, f: FieldType, v: unknown): JsonValue {
  const bad = (): never => {
    const hint = FIELD_HINTS[path];
    throw new Error(`config: ${path} is ${JSON.stringify(v)}; expected ${describeType(f)}${hint !== undefined ? ` (${hint})` : ""}`);
  };
  if (v === null) {
    if ("nullable" in f && f.nullable) return null;
    return bad();
  }
  switch (f.t) {
    case "int":
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < f.min) bad();
      return v as number;
    case "number": {
      if (typeof v !== "number" || !Number.isFinite(v)) bad();
      const n = v as number;
      if (f.min !== undefined && (f.minExclusive ? n <= f.min : n < f.min)) bad();
      if (f.max !== undefined && (f.maxExclusive ? n >= f.max : n > f.max)) bad();
      return n;
    }
    case "string":
      if (typeof v !== "string") bad();
      return v as string;
    case "bool":
      if (typeof v !== "boolean") bad();
      return v as boolean;
    case "enum":
      if (typeof v !== "string" || !f.values.includes(v)) bad();
      return v as string;
    case "strings":
      if (!Array.isArray(v) || v.some((s) => typeof s !== "string" || s.length === 0)) bad();
      return [...(v as string[])];
  }
}

function unknownKeyError(where: string, key: string, valid: readonly string[]): Error {
  return new Error(`config: unknown key '${key}' in ${where}; valid keys are ${valid.join(", ")}`);
}

function defaultsOf(section: SectionName): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [k, s] of Object.entries(CONFIG_SCHEMA[section])) out[k] = structuredClone(s.default);
  return out;
}

/** The configuration with every default filled in (model: the tiny DiffEqFormer preset). */
export function defaultConfig(): TrainConfig {
  return validateTrainConfig({});
}

/** Checks a configuration object, fills defaults and returns a new validated object (the input is not modified). */
export function validateTrainConfig(input: unknown): TrainConfig {
  if (!isObject(input))
    throw new Error(`config: the configuration is ${JSON.stringify(input)}; expected a JSON object with sections ${TOP_KEYS.join(", ")}`);
  for (const k of Object.keys(input))
    if (!(TOP_KEYS as readonly string[]).includes(k)) throw unknownKeyError("the configuration", k, TOP_KEYS);
  const name = input.name ?? "run";
  if (typeof name !== "string" || !/^[A-Za-z0-9._-]+$/.test(name)) {
    throw new Error(`config: name is ${JSON.stringify(name)}; expected a non-empty string of letters, digits, '.', '_' or '-'`);
  }
  const description = input.description ?? "";
  if (typeof description !== "string") throw new Error(`config: description is ${JSON.stringify(description)}; expected a string`);
  const seed = input.seed ?? 0;
  if (typeof seed !== "number" || !Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new Error(`config: seed is ${JSON.stringify(seed)}; expected an integer in [0, 4294967295]`);
  }
  const model = input.model ?? { preset: "diffeqformer-tiny" };
  if (!isObject(model))
    throw new Error(
      `config: model is ${JSON.stringify(model)}; expected an object such as { "preset": "diffeqformer-tiny" } or a model configuration with "kind"`,
    );
  if (model.preset === undefined && model.kind === undefined) {
    throw new Error(
      'config: model needs either "preset" (a name from @qkvflow/models presets) or "kind" (gpt2, diffeqformer, discretized)',
    );
  }
  if (model.preset !== undefined && typeof model.preset !== "string")
    throw new Error(`config: model.preset is ${JSON.stringify(model.preset)}; expected a preset name`);
  const out: Record<string, unknown> = { name, description, seed, model: JSON.parse(JSON.stringify(model)) as JsonValue };
  for (const section of SECTIONS) {
    const given = input[section] ?? {};
    if (!isObject(given))
      throw new Error(
        `config: ${section} is ${JSON.stringify(given)}; expected an object with keys ${Object.keys(CONFIG_SCHEMA[section]).join(", ")}`,
      );
    const spec = CONFIG_SCHEMA[section];
    const valid = Object.keys(spec);
    const res = defaultsOf(section);
    for (const [k, v] of Object.entries(given)) {
      const f = spec[k];
      if (f === undefined) throw unknownKeyError(`section '${section}'`, k, valid);
      res[k] = checkField(`${section}.${k}`, f.type, v);
    }
    out[section] = res;
  }
  const cfg = out as unknown as TrainConfig;
  if (cfg.train.batchSize % cfg.train.gradAccum !== 0) {
    throw new Error(
      `config: train.batchSize ${cfg.train.batchSize} is not divisible by train.gradAccum ${cfg.train.gradAccum}; expected batchSize = gradAccum · micro-batch size`,
    );
  }
  const datasets = [...listDatasets(), "text"];
  if (!datasets.includes(cfg.data.dataset))
    throw new Error(`config: data.dataset is '${cfg.data.dataset}'; expected one of ${datasets.join(", ")}`);
  if (cfg.optimizer.decayPatterns !== null) {
    for (const p of cfg.optimizer.decayPatterns) {
      try {
        new RegExp(p);
      } catch (err) {
        throw new Error(`config: optimizer.decayPatterns entry '${p}' is not a valid regular expression (${(err as Error).message})`);
      }
    }
  }
  return cfg;
}

/** Parses the value of a `--set key=value`: JSON when it parses (numbers, true/false, null, lists, quoted strings), else the raw string. */
export function parseOverrideValue(raw: string): JsonValue {
  const s = raw.trim();
  try {
    return JSON.parse(s) as JsonValue;
  } catch {
    return raw;
  }
}

/** Splits `section.key=value` into a path and a parsed value. */
export function parseOverride(arg: string): { path: string[]; value: JsonValue } {
  const eq = arg.indexOf("=");
  if (eq <= 0) throw new Error(`config: override '${arg}' is malformed; expected key=value with a dotted key, e.g. train.steps=100`);
  const key = arg.slice(0, eq).trim();
  const path = key.split(".");
  if (path.some((p) => p.length === 0))
    throw new Error(`config: override key '${key}' is malformed; expected dotted names such as optimizer.lr`);
  return { path, value: parseOverrideValue(arg.slice(eq + 1)) };
}

/**
 * Applies `key=value` overrides to a raw configuration object (returns a copy). Keys of fixed sections
 * must exist (the error lists the valid ones); `model.*` keys may be nested (e.g. model.solver.method).
 */
export function applyOverrides(raw: Record<string, unknown>, overrides: readonly string[]): Record<string, unknown> {
  const out = JSON.parse(JSON.stringify(raw)) as Record<string, unknown>;
  for (const o of overrides) {
    const { path, value } = parseOverride(o);
    const [head, ...rest] = path as [string, ...string[]];
    if (!(TOP_KEYS as readonly string[]).includes(head)) throw unknownKeyError("the configuration", head, TOP_KEYS);
    if (rest.length === 0) {
      if ((SECTIONS as readonly string[]).includes(head) || head === "model") {
        throw new Error(
          `config: override '${o}' replaces the whole '${head}' section; set its keys instead (e.g. ${head}.${head === "model" ? "preset" : Object.keys(CONFIG_SCHEMA[head as SectionName])[0]}=...)`,
        );
      }
      out[head] = value;
      continue;
    }
    if ((SECTIONS as readonly string[]).includes(head)) {
      const valid = Object.keys(CONFIG_SCHEMA[head as SectionName]);
      if (rest.length !== 1 || !valid.includes(rest[0]!)) throw unknownKeyError(`section '${head}'`, rest.join("."), valid);
    } else if (head !== "model") {
      throw new Error(`config: '${head}' is not a section; set it as ${head}=value`);
    }
    let node = (out[head] ??= {}) as Record<string, unknown>;
    if (!isObject(node)) throw new Error(`config: cannot set '${path.join(".")}': '${head}' is not an object`);
    for (let i = 0; i < rest.length - 1; i++) {
      const k = rest[i]!;
      if (node[k] === undefined) node[k] = {};
      if (!isObject(node[k]))
        throw new Error(`config: cannot set '${path.join(".")}': '${[head, ...rest.slice(0, i + 1)].join(".")}' is not an object`);
      node = node[k] as Record<string, unknown>;
    }
    node[rest[rest.length - 1]!] = value;
  }
  return out;
}

/** Markdown table of every fixed-section key (used to keep the README in step with the schema). */
export function configKeysMarkdown(): string {
  const rows = ["| key | type | default | meaning |", "|---|---|---|---|"];
  rows.push("| `name` | string | `run` | run name (default folder `runs/<name>`) |");
  rows.push('| `description` | string | `""` | free text shown by `qkvflow configs` |');
  rows.push("| `seed` | integer | `0` | seeds model init, dropout and data order |");
  rows.push(
    '| `model` | object | `{"preset":"diffeqformer-tiny"}` | `preset` (a @qkvflow/models preset) plus any model keys to override, or a full model configuration with `kind` |',
  );
  for (const s of SECTIONS) {
    for (const [k, f] of Object.entries(CONFIG_SCHEMA[s])) {
      rows.push(
        `| \`${s}.${k}\` | ${describeType(f.type).replace(/^an? /, "")} | \`${JSON.stringify(f.default)}\` | ${f.doc.replace(/\|/g, "\\|")} |`,
      );
    }
  }
  return rows.join("\n");
}
