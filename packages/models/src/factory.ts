/**
 * Building models from configurations.
 */
import type { Key } from "@qkvflow/autograd";
import { validateConfig, type ModelConfig, type ModelConfigInput } from "./config.js";
import { DiffEqFormer } from "./diffeqformer.js";
import { DiscretizedModel } from "./discretized.js";
import { Gpt2Model } from "./gpt2.js";
import type { TransformerLM } from "./language-model.js";
import { attach } from "./lora.js";

/** Any model built here. */
export type AnyModel = Gpt2Model | DiffEqFormer | DiscretizedModel;

function build(input: ModelConfig | ModelConfigInput, key: Key | null): AnyModel {
  const config = validateConfig(input);
  const lora = config.lora;
  const base: ModelConfig = { ...config };
  delete base.lora;
  let model: AnyModel;
  if (base.kind === "gpt2") model = new Gpt2Model(base, key);
  else if (base.kind === "diffeqformer") model = new DiffEqFormer(base, key);
  else model = new DiscretizedModel(base, key);
  if (lora) attach(model as TransformerLM, lora, key);
  return model;
}

/** A model with deterministic random parameters from `key` (the configuration is validated; defaults filled in). */
export function createModel(config: ModelConfig | ModelConfigInput, key: Key): AnyModel {
  if (!key) throw new Error("createModel: no RNG key given; expected a key from random.key(seed)");
  return build(config, key);
}

/** A model with zero parameters, to be filled by loadStateDict (avoids drawing random numbers). */
export function createEmptyModel(config: ModelConfig | ModelConfigInput): AnyModel {
  return build(config, null);
}
