/**
 * The full analysis of one model: spectra over depth, and per-sentence token sensitivity (Lyapunov, attention
 * rollout, gradient × input) aggregated over a corpus.
 */
import { isPaperEuler } from "@qkvflow/models";
import { aggregateCorpus, analyzeSentence, type CorpusStats, type SentenceAnalysis } from "./corpus.js";
import { dynamicsOf, type AnalyzableModel, type DepthStep, type DynamicsModel } from "./dynamics.js";
import { spectraOverDepth, type SpectraResult } from "./spectra.js";

/** Text ↔ token ids (structurally compatible with the tokenizers of @qkvflow/train). */
export interface TextCodec {
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
}

/** Options of `analyzeModel`. */
export interface AnalyzeOptions {
  /** Name of the model in reports (default: its kind). */
  label?: string;
  /** Input texts (need `tokenizer`). */
  texts?: readonly string[];
  /** Input token-id sequences (used as given, after the texts). */
  sequences?: readonly (readonly number[])[];
  /** Tokenizer for `texts` and token labels. */
  tokenizer?: TextCodec;
  /** Longest sequence analysed; longer inputs keep their first tokens (default min(32, blockSize)). */
  maxTokens?: number;
  /** DiffEqFormer: times for the spectra (default: the forward grid). */
  times?: readonly number[];
  /** DiffEqFormer: Euler steps of the analysed grid (default: the model's). */
  steps?: number;
  /** FFN spectra over a random subset of this many hidden units (default: all). */
  ffnUnits?: number;
  /** Seed of the FFN subset. */
  seed?: number;
  /** Keep every token's full Lyapunov spectrum in the result. */
  keepSpectra?: boolean;
  /** Jacobian rows per backward pass. */
  chunk?: number;
  /** Called after each sentence (for progress output). */
  onSentence?: (done: number, total: number) => void;
}

/** Everything `analyzeModel` computes; JSON-serialisable. */
export interface AnalysisResult {
  label: string;
  model: { kind: string; arch: string; nEmbd: number; nHead: number; vocabSize: number; steps: DepthStep[] };
  spectra: SpectraResult;
  sentences: SentenceAnalysis[];
  corpus: CorpusStats;
  /** Caveats a reader of the report should know (e.g. a different solver than the analysed Euler grid). */
  notes: string[];
}

function isDynamics(m: AnalyzableModel | DynamicsModel): m is DynamicsModel {
  return typeof (m as DynamicsModel).stepWeights === "function";
}

/** Splits text into sentence-like chunks (line breaks and . ! ? followed by a space), trimmed, non-empty. */
export function splitSentences(text: string): string[] {
  return text
    .split(/\r?\n+/)
    .flatMap((line) => line.split(/(?<=[.!?])\s+(?=\S)/))
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Spectra over depth and token-sensitivity analysis of every input sequence. */
export function analyzeModel(model: AnalyzableModel | DynamicsModel, opts: AnalyzeOptions = {}): AnalysisResult {
  const dm = isDynamics(model) ? model : dynamicsOf(model, opts.steps !== undefined ? { steps: opts.steps } : {});
  const maxTokens = opts.maxTokens ?? Math.min(32, dm.blockSize);
  if (!Number.isInteger(maxTokens) || maxTokens < 2 || maxTokens > dm.blockSize) {
    throw new Error(`analyzeModel: maxTokens = ${maxTokens}; expected an integer in 2..${dm.blockSize} (the model's blockSize)`);
  }
  const seqs: number[][] = [];
  if (opts.texts && opts.texts.length) {
    if (!opts.tokenizer)
      throw new Error("analyzeModel: texts were given without a tokenizer; expected opts.tokenizer (or token ids in opts.sequences)");
    for (const t of opts.texts) seqs.push(opts.tokenizer.encode(t));
  }
  for (const s of opts.sequences ?? []) seqs.push([...s]);
  const inputs = seqs.map((s) => s.slice(0, maxTokens)).filter((s) => s.length >= 2);
  const notes: string[] = [];
  if (seqs.length > inputs.length) notes.push(`${seqs.length - inputs.length} input(s) with fewer than 2 tokens were skipped`);
  if (seqs.some((s) => s.length > maxTokens))
    notes.push(`inputs longer than ${maxTokens} tokens were cut to their first ${maxTokens} tokens`);
  if (!isDynamics(model) && model.config.kind === "diffeqformer" && !isPaperEuler(model.config.solver.method)) {
    notes.push(
      `the model's own forward pass uses the '${model.config.solver.method}' solver; this analysis uses the paper's Euler grid with ${dm.steps.length} steps`,
    );
  }
  const tok = opts.tokenizer;
  const decode = tok ? (id: number) => tok.decode([id]) : undefined;
  const sentences: SentenceAnalysis[] = [];
  inputs.forEach((ids, i) => {
    sentences.push(analyzeSentence(dm, ids, { decode, keepSpectra: opts.keepSpectra, chunk: opts.chunk }));
    opts.onSentence?.(i + 1, inputs.length);
  });
  const spectra = spectraOverDepth(dm, {
    ...(opts.times ? { times: opts.times } : {}),
    ...(opts.ffnUnits !== undefined ? { ffnUnits: opts.ffnUnits } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  });
  return {
    label: opts.label ?? dm.kind,
    model: {
      kind: dm.kind,
      arch: dm.arch,
      nEmbd: dm.nEmbd,
      nHead: dm.nHead,
      vocabSize: dm.vocabSize,
      steps: dm.steps.map((s) => ({ ...s })),
    },
    spectra,
    sentences,
    corpus: aggregateCorpus(sentences),
    notes,
  };
}
