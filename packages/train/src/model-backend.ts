/**
 * The bridge from training configurations to @qkvflow/models: building, rebuilding from checkpoints,
 * discretising and LoRA. The trainer itself never imports the models package; everything model-specific
 * goes through a `ModelBackend`, so tests and other model families can plug in their own.
 */
import type { Key, Tensor } from "@qkvflow/autograd";
import {
  DiffEqFormer,
  TransformerLM,
  applyLoRA,
  createEmptyModel,
  createModel,
  discretize,
  preset,
  presets,
  validateConfig,
  type ModelConfig,
} from "@qkvflow/models";
import type { JsonValue } from "./config.js";
import type { TrainableModel } from "./model-types.js";

/** The fields of a model configuration the training code reads. */
export interface ModelConfigLike {
  kind: string;
  vocabSize: number;
  blockSize: number;
  nLayer: number;
}

/** LoRA settings handed to a backend. */
export interface LoRASettings {
  rank: number;
  alpha: number;
  initStd: number;
  targets: string[];
  trainable: string[];
  key: Key;
}

/** What the run functions need from a model family. */
export interface ModelBackend {
  /** Validates a configuration's `model` section (preset + overrides, or a full configuration) and fills defaults. */
  resolveConfig(section: Record<string, JsonValue>): ModelConfigLike;
  /** A freshly initialised model. */
  create(config: ModelConfigLike, key: Key): TrainableModel;
  /** A model rebuilt from a checkpoint's configuration and state dict. */
  fromState(config: unknown, state: Record<string, Tensor>): TrainableModel;
  /** The M-layer discretisation of a continuous-depth model (throws for other kinds). */
  discretize(model: TrainableModel, layers: number): TrainableModel;
  /** Attaches LoRA adapters in place (the model's trainableNames() then lists the adapters). */
  applyLoRA(model: TrainableModel, lora: LoRASettings): void;
}

/** Default weight-decay patterns per model kind (paper §5; fine-tuning decays everything). */
export function defaultDecayPatterns(kind: string): string[] {
  switch (kind) {
    case "diffeqformer":
      return ["wte\\.weight", "wpe\\.weight"];
    case "gpt2":
      return [".*attn.*weight", ".*mlp.*weight", "wte\\.weight", "wpe\\.weight"];
    default:
      return [".*"];
  }
}

/** Model configuration of the @qkvflow/models families from a `model` section. */
export function resolveModelSection(section: Record<string, JsonValue>): ModelConfig {
  const { preset: name, ...rest } = section;
  if (name !== undefined) {
    if (typeof name !== "string" || presets[name] === undefined) {
      throw new Error(`config: model.preset is ${JSON.stringify(name)}; expected one of ${Object.keys(presets).join(", ")}`);
    }
    return preset(name, rest);
  }
  return validateConfig(rest);
}

function asLM(fn: string, m: TrainableModel): TransformerLM {
  if (!(m instanceof TransformerLM)) throw new Error(`${fn}: the model is not a @qkvflow/models language model`);
  return m;
}

/** The backend over @qkvflow/models (GPT-2, DiffEqFormer, discretised models, LoRA). */
export const qkvflowModels: ModelBackend = {
  resolveConfig: (section) => resolveModelSection(section),
  create: (config, key) => createModel(config as ModelConfig, key),
  fromState: (config, state) => {
    const m = createEmptyModel(validateConfig(config));
    m.loadStateDict(state, { strict: true });
    return m;
  },
  discretize: (model, layers) => {
    if (!(model instanceof DiffEqFormer)) {
      const kind = (model.config as { kind?: string }).kind;
      throw new Error(
        `discretize: the model is a '${kind}' model; only a DiffEqFormer (kind 'diffeqformer') can be discretised to another depth`,
      );
    }
    return discretize(model, layers);
  },
  applyLoRA: (model, lora) => {
    applyLoRA(asLM("applyLoRA", model), lora);
  },
};
