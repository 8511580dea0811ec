/**
 * `qkvflow analyze --checkpoint PATH --out DIR [options]`: the command-line front end of the analysis. The
 * `qkvflow` command (@qkvflow/cli) dispatches its `analyze` subcommand here, passing a tokenizer.
 */
import { readFileSync } from "node:fs";
import { decodeSafetensors, type Tensor } from "@qkvflow/autograd";
import {
  CONFIG_METADATA_KEY,
  MODEL_FILE,
  checkpointFallbackNote,
  createEmptyModel,
  modelFromSafetensors,
  rawToParameter,
  resolveModelFile,
  validateConfig,
} from "@qkvflow/models";
import { analyzeModel, splitSentences, type AnalysisResult, type TextCodec } from "./analyze.js";
import type { AnalyzableModel } from "./dynamics.js";
import { writeAnalysis } from "./report.js";

/** Pieces the host CLI may supply. */
export interface AnalyzeCliDeps {
  /** Loads a model from a checkpoint path (default: `loadAnalyzableModel`). */
  loadModel?: (path: string) => AnalyzableModel | Promise<AnalyzableModel>;
  /** Tokenizer for --text / --corpus (chosen per model when a function). */
  tokenizer?: TextCodec | ((model: AnalyzableModel) => TextCodec | undefined);
  /** Progress and result lines (default: stderr / stdout). */
  log?: (line: string) => void;
  /**
   * Inputs used when none of --text / --corpus / --ids is given (e.g. windows of the run's evaluation split);
   * without it such a call is a usage error.
   */
  defaultInputs?: (checkpoint: string, model: AnalyzableModel) => Promise<{ texts?: string[]; ids?: number[][]; note: string }>;
}

/** Parsed options of the analyze command. */
export interface AnalyzeArgs {
  checkpoints: string[];
  labels: string[];
  out: string;
  texts: string[];
  corpus: string | null;
  ids: number[][];
  maxSentences: number;
  maxTokens: number | null;
  times: number[] | null;
  steps: number | null;
  ffnUnits: number | null;
  seed: number;
  title: string | null;
}

/** Usage text of the analyze command. */
export const ANALYZE_USAGE = `qkvflow analyze --checkpoint PATH [--checkpoint PATH2 …] --out DIR [options]

Writes DIR/analysis.json, DIR/*.svg and DIR/report.html: eigenvalue spectra of QK, OV and the FFN over depth,
per-token finite-time Lyapunov spectra, attention rollout and gradient × input, and corpus statistics.

  --checkpoint PATH   a model .safetensors file, a checkpoint folder (model.safetensors inside) or a run
                      folder (its latest checkpoint); repeat to compare models (e.g. GPT-2 and DiffEqFormer)
  --label NAME        name of the matching --checkpoint in the report (repeatable; default: kind)
  --out DIR           output folder (created)
  --text "…"          an input sentence (repeatable)
  --corpus FILE       a text file; every line / sentence is an input
  --ids 1,2,3         an input as token ids (repeatable; for models without a tokenizer)
  --max-sentences N   inputs analysed from --corpus (default 20)
  --max-tokens N      tokens kept per input (default min(32, blockSize))
  --times a,b,…       DiffEqFormer: times of the spectra (default: the forward grid t_i = (i+1)/L);
                      ignored for GPT-2 / discretised models, whose spectra are per layer
  --steps N           DiffEqFormer: Euler steps of the analysed grid (default: the model's; ignored otherwise)
  --ffn-units R       FFN spectra over R random hidden units of all 4E (default: all)
  --seed S            seed of that draw (default 0)
  --title TEXT        report title`;

/** A usage error of the analyze command (the host CLI exits with status 2). */
export class AnalyzeUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

function fail(msg: string): never {
  throw new AnalyzeUsageError(`analyze: ${msg}\n\n${ANALYZE_USAGE}`);
}

function posInt(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) fail(`${flag} is '${v}'; expected a positive integer`);
  return n;
}

/** Parses the analyze command's arguments (without the subcommand name). */
export function parseAnalyzeArgs(argv: readonly string[], opts: { inputsOptional?: boolean } = {}): AnalyzeArgs {
  const a: AnalyzeArgs = {
    checkpoints: [],
    labels: [],
    out: "",
    texts: [],
    corpus: null,
    ids: [],
    maxSentences: 20,
    maxTokens: null,
    times: null,
    steps: null,
    ffnUnits: null,
    seed: 0,
    title: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const eq = flag.indexOf("=");
    const name = eq > 0 && flag.startsWith("--") ? flag.slice(0, eq) : flag;
    const value = (): string => {
      if (eq > 0 && flag.startsWith("--")) return flag.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) fail(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case "--checkpoint":
        a.checkpoints.push(value());
        break;
      case "--label":
        a.labels.push(value());
        break;
      case "--out":
        a.out = value();
        break;
      case "--text":
        a.texts.push(value());
        break;
      case "--corpus":
        a.corpus = value();
        break;
      case "--ids": {
        const v = value();
        const ids = v.split(",").map((s) => Number(s.trim()));
        if (ids.some((x) => !Number.isInteger(x) || x < 0)) fail(`--ids '${v}' is not a comma-separated list of non-negative integers`);
        a.ids.push(ids);
        break;
      }
      case "--max-sentences":
        a.maxSentences = posInt(name, value());
        break;
      case "--max-tokens":
        a.maxTokens = posInt(name, value());
        break;
      case "--steps":
        a.steps = posInt(name, value());
        break;
      case "--ffn-units":
        a.ffnUnits = posInt(name, value());
        break;
      case "--seed": {
        const v = value();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) fail(`--seed is '${v}'; expected a non-negative integer`);
        a.seed = n;
        break;
      }
      case "--times": {
        const v = value();
        const ts = v.split(",").map((s) => Number(s.trim()));
        if (ts.length === 0 || ts.some((t) => !Number.isFinite(t))) fail(`--times '${v}' is not a comma-separated list of numbers`);
        a.times = ts;
        break;
      }
      case "--title":
        a.title = value();
        break;
      default:
        fail(`unknown option '${flag}'`);
    }
  }
  if (a.checkpoints.length === 0) fail("no --checkpoint given");
  if (!a.out) fail("no --out folder given");
  if (a.labels.length > a.checkpoints.length)
    fail(`${a.labels.length} --label values for ${a.checkpoints.length} --checkpoint values; expected at most one label per checkpoint`);
  if (a.texts.length === 0 && a.corpus === null && a.ids.length === 0 && !(opts.inputsOptional ?? false))
    fail("no inputs; give --text, --corpus or --ids");
  return a;
}

/** The model file of a path: a .safetensors file, a folder with model.safetensors, or a run folder's latest checkpoint. */
export { resolveModelFile };

/**
 * Loads a model for analysis from a model file in @qkvflow/models' format (saveModel, trainer checkpoints: metadata
 * 'qkvflow.config') or an older trainer checkpoint's model.safetensors (metadata 'config').
 */
export function loadAnalyzableModel(p: string): AnalyzableModel {
  const file = resolveModelFile(p);
  const buf = readFileSync(file);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const contents = decodeSafetensors(bytes);
  if (contents.metadata[CONFIG_METADATA_KEY] !== undefined) return modelFromSafetensors(bytes);
  const json = contents.metadata.config;
  if (json === undefined)
    throw new Error(
      `loadAnalyzableModel: ${file} has neither '${CONFIG_METADATA_KEY}' nor 'config' metadata; expected a model written by qkvflow`,
    );
  const config = validateConfig(JSON.parse(json));
  const model = createEmptyModel(config);
  const sd: Record<string, Tensor> = {};
  for (const [n, r] of Object.entries(contents.tensors)) sd[n] = rawToParameter(n, r, config.dtype);
  model.loadStateDict(sd);
  return model;
}

/** Runs the analyze command; returns the process exit code (0 on success). */
export async function analyzeCommand(argv: readonly string[], deps: AnalyzeCliDeps = {}): Promise<number> {
  const log = deps.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (argv.includes("--help") || argv.includes("-h")) {
    log(ANALYZE_USAGE);
    return 0;
  }
  const args = parseAnalyzeArgs(argv, { inputsOptional: deps.defaultInputs !== undefined });
  const texts = [...args.texts];
  const noInputs = texts.length === 0 && args.corpus === null && args.ids.length === 0;
  if (args.corpus) texts.push(...splitSentences(readFileSync(args.corpus, "utf8")).slice(0, args.maxSentences));
  const results: AnalysisResult[] = [];
  for (const [i, ck] of args.checkpoints.entries()) {
    // a run folder whose latest.json names a missing or incomplete checkpoint: an older model is read, and said so
    const fallback = checkpointFallbackNote(ck, [MODEL_FILE]);
    if (fallback !== null) log(`analyze: note: ${fallback}`);
    const model = await (deps.loadModel ?? loadAnalyzableModel)(ck);
    if (noInputs && i === 0 && deps.defaultInputs !== undefined) {
      const d = await deps.defaultInputs(ck, model);
      texts.push(...(d.texts ?? []));
      args.ids.push(...(d.ids ?? []));
      log(`analyze: no --text / --corpus / --ids given; ${d.note}`);
    }
    const tok = typeof deps.tokenizer === "function" ? deps.tokenizer(model) : deps.tokenizer;
    if (texts.length && !tok) throw new Error(`analyze: --text/--corpus need a tokenizer for '${ck}'; give token ids with --ids instead`);
    const label = args.labels[i] ?? (args.checkpoints.length > 1 ? `${model.config.kind}-${i + 1}` : model.config.kind);
    log(`analyze: ${label} (${model.config.kind}, E=${model.config.nEmbd}, ${model.config.nLayer} layers) from ${ck}`);
    const continuous = model.config.kind === "diffeqformer";
    if (!continuous && (args.times !== null || args.steps !== null))
      log("  --times / --steps apply to DiffEqFormer models only; using this model's layers");
    const t0 = Date.now();
    results.push(
      analyzeModel(model, {
        label,
        texts: tok ? texts : [],
        sequences: args.ids,
        ...(tok ? { tokenizer: tok } : {}),
        ...(args.maxTokens !== null ? { maxTokens: args.maxTokens } : {}),
        ...(continuous && args.times !== null ? { times: args.times } : {}),
        ...(continuous && args.steps !== null ? { steps: args.steps } : {}),
        ...(args.ffnUnits !== null ? { ffnUnits: args.ffnUnits } : {}),
        seed: args.seed,
        onSentence: (d, n) => log(`  sequence ${d}/${n}`),
      }),
    );
    log(`  done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  const files = writeAnalysis(args.out, results, args.title ? { title: args.title } : {});
  log(`analyze: wrote ${files.length} files to ${args.out} (open report.html)`);
  return 0;
}
