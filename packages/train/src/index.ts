/**
 * @qkvflow/train — data pipeline, AdamW with warmup + cosine schedule, the trainer with exact resume,
 * atomic checkpoints, evaluation, sampling, adaptive-depth fine-tuning and the `qkvflow` CLI's building blocks.
 */
export * from "./data/index.js";
export {
  CONFIG_SCHEMA,
  applyOverrides,
  configKeysMarkdown,
  defaultConfig,
  parseOverride,
  parseOverrideValue,
  validateTrainConfig,
  type DataConfig,
  type FieldSpec,
  type FinetuneConfig,
  type JsonValue,
  type OptimizerConfig,
  type SectionName,
  type TrainConfig,
  type TrainLoopConfig,
} from "./config.js";
export { configSearchPath, listConfigs, loadConfig, type ConfigFile } from "./config-files.js";
export { SCHEDULE_KINDS, makeSchedule, warmupSteps, type Schedule, type ScheduleKind, type ScheduleOptions } from "./optim/schedule.js";
export {
  AdamW,
  adamwUpdate,
  backendHasFloat64,
  clipByGlobalNorm,
  clipScale,
  compileDecayPatterns,
  decayedNames,
  globalNorm,
  globalNormTensor,
  updateDType,
  type AdamConstants,
  type AdamWHyper,
  type AdamWOptions,
  type AdamWStepInfo,
  type NormOptions,
  type OptimizerKernel,
  type UpdatePrecision,
} from "./optim/adamw.js";
export { adamwUpdateHost, hostMemoryBackend, sumOfSquaresHost } from "./optim/host-kernels.js";
export { GradientAccumulator } from "./optim/accumulate.js";
export {
  checkpointDirName,
  decodeModelFile,
  encodeModelFile,
  checkTrainerCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  resolveCheckpointDir,
  saveCheckpoint,
  writeFileAtomicSync,
  type CheckpointContents,
  type LoadedCheckpoint,
} from "./checkpoint.js";
export { MetricsLog, Progress, formatSeconds, readMetrics, type MetricRecord, type ProgressMode, type ProgressValues } from "./metrics.js";
export { evaluatePerplexity, type EvalOptions, type EvalResult } from "./evaluate.js";
export { IGNORE_INDEX, type ForwardOptions, type TrainableModel } from "./model-types.js";
export { NonFiniteLossError, Trainer, type StepInfo, type TrainResult, type TrainerOptions } from "./trainer.js";
export {
  defaultDecayPatterns,
  qkvflowModels,
  resolveModelSection,
  type LoRASettings,
  type ModelBackend,
  type ModelConfigLike,
} from "./model-backend.js";
export { loadRunData, type RunData } from "./run-data.js";
export { TOKEN_FILES_FORMAT, TOKEN_FILES_HEADER, readTokenFiles, writeTokenFiles, type TokenFilesHeader } from "./token-files.js";
export { loadModelFrom, runDirOf, runEval, runFinetune, runTrain, type EvalPlan, type RunOptions, type RunResult } from "./run.js";
export { drawIndex, nextTokenProbs, sampleTokens, type SampleOptions } from "./generate.js";
export {
  checkScheduleChange,
  findResumeCheckpoint,
  pickResumeCheckpoint,
  type DamagedCheckpoint,
  type ResumeSearch,
} from "./resume-checks.js";
export { ensureOutDir } from "./out-dir.js";
