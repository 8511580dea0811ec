/**
 * @qkvflow/analysis — eigenvalue spectra of attention / MLP weights over depth, finite-time Lyapunov token
 * sensitivity along the forward pass, saliency baselines (attention rollout, gradient × input), corpus
 * statistics, and SVG / HTML reports.
 */
export type { BlockArch, BlockWeights, LayerNormWeights } from "@qkvflow/models";
export {
  dynamicsOf,
  logitsOf,
  logitsRow,
  trajectory,
  type AnalyzableModel,
  type DepthStep,
  type DynamicsModel,
  type DynamicsOptions,
} from "./dynamics.js";
export { matmulRaw, productEigvals, qrSquarePositive, toFloat64, type ComplexValues } from "./linalg.js";
export {
  SPECTRUM_KINDS,
  blockSpectra,
  ffnSubset,
  headFactors,
  slope,
  spectraOverDepth,
  spectrumStats,
  type BlockSpectra,
  type SpectraOptions,
  type SpectraPoint,
  type SpectraResult,
  type SpectrumKind,
  type SpectrumStats,
  type SpectrumTrend,
} from "./spectra.js";
export {
  fieldJacobianBlocks,
  kaplanYorke,
  modelFieldSteps,
  sentenceLyapunov,
  tokenLyapunov,
  type FieldStep,
  type LyapunovOptions,
  type RunningExponent,
  type TokenLyapunov,
} from "./lyapunov.js";
export {
  attentionRollout,
  gradTimesInput,
  headAveragedAttention,
  rolloutAlpha,
  rolloutSaliency,
  type GradInputSaliency,
} from "./saliency.js";
export {
  RunningStat,
  aggregateCorpus,
  analyzeSentence,
  ranks,
  spearman,
  type CorpusStats,
  type SentenceAnalysis,
  type SentenceOptions,
  type Stat,
  type TokenStat,
} from "./corpus.js";
export { analyzeModel, splitSentences, type AnalysisResult, type AnalyzeOptions, type TextCodec } from "./analyze.js";
export {
  barPlot,
  complexPlanePlot,
  escapeXml,
  fmtNum,
  linePlot,
  niceTicks,
  rampColor,
  seriesColor,
  PALETTE,
  type LineSeries,
  type PlotOptions,
  type ScatterPoint,
} from "./svg.js";
export {
  HEAT_COLORS,
  HEAT_LEVELS,
  RUNNING_TOKENS,
  analysisPlots,
  comparisonPlots,
  heatColor,
  heatLevel,
  renderReport,
  runningChange,
  runningTokens,
  tokenText,
  writeAnalysis,
} from "./report.js";
export {
  ANALYZE_USAGE,
  AnalyzeUsageError,
  analyzeCommand,
  loadAnalyzableModel,
  parseAnalyzeArgs,
  resolveModelFile,
  type AnalyzeArgs,
  type AnalyzeCliDeps,
} from "./cli.js";
