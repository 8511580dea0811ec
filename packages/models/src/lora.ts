/**
 * LoRA: rank-r adapters on chosen Linear layers, y = x·W + b + (alpha/r)·(x·A)·B with A [in, r] small random and
 * B [r, out] zero, so an adapted model starts equal to its base. The base stays frozen: `trainableNames()` then
 * lists only the adapters (plus any `trainable` patterns). Adapters can be merged into W for inference and unmerged.
 */
import { random, type Key } from "@qkvflow/autograd";
import { LORA_DEFAULTS, validateLoRAConfig, type LoRAConfig } from "./config.js";
import { Linear } from "./layers.js";
import type { TransformerLM } from "./language-model.js";
import { Initializer, hashName, matchesAny } from "./module.js";

/** Options of applyLoRA (defaults: rank 8, alpha 16, every Linear layer, A ~ N(0, 0.02²)). */
export interface LoRAOptions {
  rank?: number;
  alpha?: number;
  /** Glob patterns over dotted Linear-module names (`*` matches any run of characters), e.g. `h.*.attn.*`. */
  targets?: string[];
  /** Glob patterns over parameter names that stay trainable besides the adapters (e.g. `wte.weight`). */
  trainable?: string[];
  /** Standard deviation of A's Gaussian init. */
  initStd?: number;
  /** RNG key for A. */
  key: Key;
}

/** The Linear layers of a model with their dotted names. */
export function linearLayers(model: TransformerLM): [string, Linear][] {
  return model.namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear);
}

/** Linear layers carrying an adapter. */
function adapted(model: TransformerLM): Linear[] {
  return linearLayers(model)
    .map(([, l]) => l)
    .filter((l) => l.hasAdapter);
}

/** Attaches adapters in place to every Linear layer matching `targets`; records the settings in `model.config.lora`. */
export function applyLoRA<M extends TransformerLM>(model: M, opts: LoRAOptions): M {
  if (model.config.lora) throw new Error("applyLoRA: the model already has LoRA adapters");
  const { key, ...rest } = opts;
  if (!key) throw new Error("applyLoRA: no RNG key given; expected opts.key (e.g. random.key(seed))");
  const given = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
  const cfg: LoRAConfig = validateLoRAConfig({ ...LORA_DEFAULTS, ...given, merged: false });
  attach(model, cfg, key);
  return model;
}

/** @internal attaches adapters described by a validated LoRA config (used by applyLoRA and createModel). */
export function attach(model: TransformerLM, cfg: LoRAConfig, key: Key | null): void {
  const all = linearLayers(model);
  const chosen = all.filter(([n]) => matchesAny(n, cfg.targets));
  if (chosen.length === 0) {
    throw new Error(
      `applyLoRA: targets ${JSON.stringify(cfg.targets)} match no Linear layer; the Linear layers are ${all.map(([n]) => n).join(", ")}`,
    );
  }
  const init = new Initializer(key ? random.foldIn(key, hashName("lora")) : null, model.config.dtype);
  for (const [n, l] of chosen) {
    l.attachAdapter(init, n, cfg.rank, cfg.alpha, cfg.initStd);
    if (cfg.merged) l.setAdapterMerged(true);
  }
  model._setConfig({ ...model.config, lora: { ...cfg, targets: [...cfg.targets], trainable: [...cfg.trainable] } });
}

function setMerged(model: TransformerLM, merged: boolean): void {
  const lora = model.config.lora;
  if (!lora) throw new Error(`${merged ? "mergeLoRA" : "unmergeLoRA"}: the model has no LoRA adapters; call applyLoRA first`);
  for (const l of adapted(model)) {
    if (merged) l.mergeAdapter();
    else l.unmergeAdapter();
  }
  model._setConfig({ ...model.config, lora: { ...lora, merged } });
}

/** Adds (alpha/r)·A·B into each adapted weight (the forward pass then skips the adapters). */
export function mergeLoRA(model: TransformerLM): void {
  setMerged(model, true);
}

/** Undoes mergeLoRA (exactly, when the merged weights were not changed in between). */
export function unmergeLoRA(model: TransformerLM): void {
  setMerged(model, false);
}
