/**
 * @qkvflow/models — module tree, layers, the GPT-2 baseline, DiffEqFormer (neural-ODE transformer), its
 * discretisation, LoRA, presets and parameter counts, safetensors save / load.
 */
export {
  validateConfig,
  validateLoRAConfig,
  presets,
  preset,
  LORA_DEFAULTS,
  PAPER_EULER,
  SOLVER_METHOD_ALIASES,
  canonicalSolverMethod,
  isPaperEuler,
  upgradeModelConfig,
  type ModelKind,
  type ModelDType,
  type SolverConfig,
  type LoRAConfig,
  type BaseModelConfig,
  type Gpt2Config,
  type DiffEqFormerConfig,
  type DiscretizedConfig,
  type ModelConfig,
  type ModelConfigInput,
} from "./config.js";
export { Module, ModuleList, Initializer, hashName, globToRegExp, matchesAny, type InitSpec, type LoadReport } from "./module.js";
export { Linear, Embedding, LayerNorm, linear, maybeDropout } from "./layers.js";
export {
  attentionProbs,
  blockFns,
  blockForward,
  blockUpdate,
  castBlockWeights,
  causalSelfAttention,
  mlpForward,
  type BlockArch,
  type BlockFns,
  type BlockOptions,
  type BlockWeights,
  type LayerNormWeights,
} from "./block.js";
export {
  TransformerLM,
  type LanguageModel,
  type ForwardOptions,
  type ForwardState,
  type DepthStep,
  type DepthDynamics,
  type DynamicsOptions,
} from "./language-model.js";
export { Gpt2Model, Gpt2Block, StaticBlock, Attention, Mlp } from "./gpt2.js";
export { timeEmbedding, eulerGrid, TIME_SCALE, MAX_PERIOD } from "./time-embedding.js";
export { TemporalLinear, TemporalLayerNorm, ParamGroup } from "./temporal.js";
export { DiffEqFormer, DiffEqFormerBlock, TemporalAttention, TemporalMlp } from "./diffeqformer.js";
export { DiscretizedModel, DiscretizedBlock, discretize } from "./discretized.js";
export { applyLoRA, mergeLoRA, unmergeLoRA, linearLayers, type LoRAOptions } from "./lora.js";
export { parameterShapes, countParameters } from "./param-count.js";
export { createModel, createEmptyModel, type AnyModel } from "./factory.js";
export {
  saveModel,
  saveModelSync,
  loadModel,
  loadModelSync,
  modelToSafetensors,
  modelFromSafetensors,
  gpt2FromHuggingFace,
  loadGpt2FromHuggingFace,
  rawToParameter,
  tensorToRaw,
  CONFIG_METADATA_KEY,
  FORMAT_METADATA_KEY,
  FORMAT_TAG,
  type HfGpt2Options,
  encodeModelFile,
  decodeModelFile,
} from "./io.js";
export {
  MODEL_FILE,
  OPTIMIZER_FILE,
  STATE_FILE,
  CONFIG_FILE,
  METRICS_FILE,
  CHECKPOINTS_DIR,
  LATEST_FILE,
  CHECKPOINT_FILES,
  checkpointDirName,
  checkpointStep,
  isCheckpointDir,
  checkpointsRoot,
  listCheckpointDirs,
  latestCheckpointDir,
  resolveCheckpointDir,
  checkpointFallbackNote,
  resolveModelFile,
} from "./checkpoint-layout.js";
