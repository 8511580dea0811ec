#!/usr/bin/env node
/**
 * The `qkvflow` command line: train | finetune | eval | generate | analyze | configs | tokenize | help. Training, evaluation
 * and sampling come from @qkvflow/train, `analyze` from @qkvflow/analysis; this package is the only one that
 * knows both. Run `qkvflow help` (or `npm run qkvflow -- help` from a source checkout) for usage.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { random } from "@qkvflow/autograd";
import { AnalyzeUsageError, analyzeCommand } from "@qkvflow/analysis";
import { studyCommand } from "./study/command.js";
import { CONFIG_FILE, checkpointFallbackNote } from "@qkvflow/models";
import {
  GPT2_EOS_ID,
  NonFiniteLossError,
  decode,
  encode,
  ensureOutDir,
  formatSeconds,
  gpt2Tokenizer,
  listConfigs as listConfigsIn,
  loadConfig as loadConfigIn,
  loadModelFrom,
  loadRunData,
  runEval,
  runFinetune,
  runTrain,
  sampleTokens,
  writeTokenFiles,
  type ConfigFile,
  type TrainConfig,
} from "@qkvflow/train";

/** A usage error (exit code 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The project's configs/ folder next to this package (source checkout or installed dist). */
function packagedConfigs(): string[] {
  try {
    return [path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "configs")];
  } catch {
    return [];
  }
}

/** Configuration files found by name ($QKVFLOW_CONFIGS, ./configs and parents, the project's configs/). */
export function listConfigs(): ConfigFile[] {
  return listConfigsIn(packagedConfigs());
}

/** Loads a configuration (file path or name) with overrides; configuration problems become UsageErrors. */
export function loadConfig(ref: string, overrides: readonly string[] = []): TrainConfig {
  try {
    return loadConfigIn(ref, overrides, packagedConfigs());
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

type FlagKind = "string" | "strings" | "bool" | "optional";

const COMMON: Record<string, FlagKind> = { config: "string", set: "strings", data: "string", help: "bool" };
const RESUME_EXTRA: Record<string, FlagKind> = { "resume-fallback": "bool", "change-schedule": "bool" };
const FLAGS: Record<string, Record<string, FlagKind>> = {
  train: { ...COMMON, resume: "optional", out: "string", steps: "string", progress: "string", ...RESUME_EXTRA },
  finetune: {
    ...COMMON,
    resume: "optional",
    out: "string",
    steps: "string",
    progress: "string",
    from: "string",
    layers: "string",
    mode: "string",
    ...RESUME_EXTRA,
  },
  eval: { ...COMMON, checkpoint: "string", split: "string", all: "bool" },
  generate: {
    checkpoint: "string",
    prompt: "string",
    "max-tokens": "string",
    temperature: "string",
    "top-k": "string",
    seed: "string",
    help: "bool",
  },
  configs: { help: "bool" },
  help: {},
  tokenize: { config: "string", set: "strings", data: "string", out: "string", help: "bool" },
};

/** Usage text. */
export const USAGE = `qkvflow — train, fine-tune, evaluate and sample DiffEqFormer / GPT-2 language models

Usage:
  qkvflow train    --config NAME|FILE [--set key=value ...] [--data DIR] [--out DIR] [--steps N] [--resume [RUN_DIR]]
                   [--resume-fallback] [--change-schedule]
  qkvflow finetune --config NAME|FILE --from CHECKPOINT [--layers M] [--mode full|lora] [--set ...] [--resume [RUN_DIR]]
  qkvflow eval     --checkpoint PATH [--config NAME|FILE] [--split NAME] [--all] [--data DIR] [--set ...]
  qkvflow generate --checkpoint PATH --prompt TEXT [--max-tokens 50] [--temperature 0.8] [--top-k 40] [--seed 0]
  qkvflow configs  (lists the configuration files)
  qkvflow tokenize --config NAME|FILE --out DIR [--data DIR] [--set ...]
                   writes the configuration's splits as flat uint16 token files + tokens.json, for
                   python/qkvflow_torch (train on a cluster with torchrun, analyse here: docs/cluster.md)

Options:
  --config NAME|FILE   a JSON configuration: a file path, or a name from the configs/ folder
  --set key=value      override a configuration key (dotted, e.g. optimizer.lr=3e-4, model.nLayer=4); repeatable
  --data DIR           local data folder (data.dataDir); default $QKVFLOW_DATA, then the cache
  --out DIR            run folder (train.outDir); default runs/<name>
  --steps N            number of updates (train.steps)
  --progress MODE      auto | bar | plain | none (train.progress)
  --resume [RUN_DIR]   continue the run in RUN_DIR (or the configuration's run folder) from its latest checkpoint;
                       without --config the run folder's config.json is used. A damaged latest checkpoint
                       stops the resume, naming the damaged file and the newest intact checkpoint
  --resume-fallback    with --resume: continue from the newest intact checkpoint when the latest is damaged
                       (the damaged folder is kept as checkpoints/damaged-step-N)
  --change-schedule    with --resume: accept a changed learning-rate schedule (train.steps, optimizer.lr,
                       warmupRatio, minLrRatio, schedule); without it such a resume is refused
  --from PATH          finetune: pretrained run folder, checkpoint folder or model .safetensors (finetune.checkpoint)
  --layers M           finetune: discretise the DiffEqFormer to M layers (finetune.layers)
  --mode full|lora     finetune: train all weights or LoRA adapters (finetune.mode)
  --checkpoint PATH    eval / generate: run folder, checkpoint folder or model .safetensors file (a Hugging Face
                       GPT-2 model.safetensors is read too)
  --all                eval: the whole split (default: the first train.evalBatches batches, as in training)
  --max-tokens N       generate: new tokens, at most the model's context (blockSize) minus the prompt

  qkvflow analyze --checkpoint PATH --out DIR [options]   spectra, Lyapunov exponents, HTML report (see qkvflow analyze --help)
  qkvflow study <main|spectra|lyapunov|depth|beyond|all> [--size smoke|cpu|full] [--seeds N] [--out DIR] [--resume]   the paper's experiments, results page and figures (see qkvflow study --help)

Exit status: 0 done, 1 error, 2 bad usage or configuration, 130 interrupted (a checkpoint was written).`;

/** Parsed command line. */
export interface ParsedArgs {
  command: string;
  flags: Record<string, string | string[] | boolean>;
}

/** Parses `argv` (without node and the script); throws UsageError on unknown commands or flags. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h") return { command: "help", flags: {} };
  const spec = FLAGS[command];
  if (spec === undefined) throw new UsageError(`unknown command '${command}'; expected one of ${Object.keys(FLAGS).join(", ")}`);
  const flags: Record<string, string | string[] | boolean> = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith("--"))
      throw new UsageError(
        `unexpected argument '${a}'; options start with -- (valid for ${command}: ${Object.keys(spec)
          .map((k) => `--${k}`)
          .join(", ")})`,
      );
    let name = a.slice(2);
    let inline: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      inline = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const kind = spec[name];
    if (kind === undefined)
      throw new UsageError(
        `unknown option '--${name}' for ${command}; valid options: ${Object.keys(spec)
          .map((k) => `--${k}`)
          .join(", ")}`,
      );
    if (kind === "bool") {
      flags[name] = true;
      continue;
    }
    if (kind === "optional") {
      const next = rest[i + 1];
      if (inline !== undefined) flags[name] = inline;
      else if (next !== undefined && !next.startsWith("--")) {
        flags[name] = next;
        i++;
      } else flags[name] = true;
      continue;
    }
    const value = inline ?? rest[++i];
    if (value === undefined) throw new UsageError(`option --${name} needs a value`);
    if (kind === "strings") flags[name] = [...((flags[name] as string[] | undefined) ?? []), value];
    else flags[name] = value;
  }
  return { command, flags };
}

function str(flags: ParsedArgs["flags"], k: string): string | undefined {
  const v = flags[k];
  return typeof v === "string" ? v : undefined;
}

function intFlag(flags: ParsedArgs["flags"], k: string, min: number): number | undefined {
  const v = str(flags, k);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${k} is '${v}'; expected an integer >= ${min}`);
  return n;
}

function numFlag(flags: ParsedArgs["flags"], k: string, min: number): number | undefined {
  const v = str(flags, k);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${k} is '${v}'; expected a number >= ${min}`);
  return n;
}

/** The configuration of a train / finetune / eval command, with the shortcut flags applied as overrides. */
function configFor(p: ParsedArgs): TrainConfig {
  const f = p.flags;
  const sets = [...((f.set as string[] | undefined) ?? [])];
  const resumeDir = typeof f.resume === "string" ? f.resume : undefined;
  const out = str(f, "out") ?? resumeDir;
  const shortcut: string[] = [];
  const q = (v: string): string => JSON.stringify(v);
  if (str(f, "data") !== undefined) shortcut.push(`data.dataDir=${q(path.resolve(str(f, "data")!))}`);
  if (out !== undefined) shortcut.push(`train.outDir=${q(path.resolve(out))}`);
  if (str(f, "steps") !== undefined) shortcut.push(`train.steps=${intFlag(f, "steps", 1)}`);
  if (str(f, "progress") !== undefined) shortcut.push(`train.progress=${q(str(f, "progress")!)}`);
  if (str(f, "from") !== undefined) shortcut.push(`finetune.checkpoint=${q(path.resolve(str(f, "from")!))}`);
  if (str(f, "layers") !== undefined) shortcut.push(`finetune.layers=${intFlag(f, "layers", 1)}`);
  if (str(f, "mode") !== undefined) shortcut.push(`finetune.mode=${q(str(f, "mode")!)}`);
  if (f.all === true) shortcut.push("train.evalBatches=null");
  let ref = str(f, "config");
  if (ref === undefined) {
    const candidates = [out, p.command === "eval" ? str(f, "checkpoint") : undefined].filter((x): x is string => x !== undefined);
    for (const c of candidates) {
      for (const file of [path.join(c, CONFIG_FILE), path.join(c, "..", "..", CONFIG_FILE)]) {
        if (fs.existsSync(file)) {
          ref = file;
          break;
        }
      }
      if (ref !== undefined) break;
    }
    if (ref === undefined)
      throw new UsageError(
        `${p.command} needs --config NAME|FILE (or a run folder with config.json via --resume / --out${p.command === "eval" ? " / --checkpoint" : ""})`,
      );
  }
  return loadConfig(ref, [...sets, ...shortcut]);
}

async function cmdTrain(p: ParsedArgs, finetune: boolean): Promise<number> {
  const cfg = configFor(p);
  const resume = p.flags.resume !== undefined;
  if (!resume && (p.flags["resume-fallback"] === true || p.flags["change-schedule"] === true))
    throw new UsageError("--resume-fallback and --change-schedule only apply with --resume");
  const opts = { resume, resumeFallback: p.flags["resume-fallback"] === true, allowScheduleChange: p.flags["change-schedule"] === true };
  const t0 = performance.now();
  const r = finetune ? await runFinetune(cfg, opts) : await runTrain(cfg, opts);
  const secs = (performance.now() - t0) / 1000;
  if (r.interrupted) {
    console.log(`interrupted after ${r.step} updates; resume with: qkvflow ${p.command} --resume ${r.runDir}`);
    return 130;
  }
  const ev = r.lastEval ? `; ${r.evalSplit} perplexity ${r.lastEval.ppl.toFixed(2)}` : "";
  console.log(`done: ${r.step} updates in ${formatSeconds(secs)}${ev}; checkpoint ${r.checkpoint}; metrics ${r.metricsFile}`);
  return 0;
}

async function cmdEval(p: ParsedArgs): Promise<number> {
  const ck = str(p.flags, "checkpoint");
  if (ck === undefined) throw new UsageError("eval needs --checkpoint PATH (a run folder, checkpoint folder or model .safetensors)");
  const cfg = configFor(p);
  const split = str(p.flags, "split");
  const fallback = checkpointFallbackNote(ck);
  if (fallback !== null) console.error(`eval: note: ${fallback}`);
  const bar = evalProgress();
  const r = await runEval(cfg, ck, {
    ...(split !== undefined ? { split } : {}),
    onStart: (plan) => {
      const part =
        plan.batches < plan.allBatches ? `the first ${plan.batches} of ${plan.allBatches} batches` : `all ${plan.batches} batches`;
      console.error(
        `eval: ${part} of ${plan.batchSize} × ${plan.seqLen} tokens of the '${plan.split}' split (${plan.splitTokens.toLocaleString("en-US")} tokens)` +
          (plan.batches < plan.allBatches ? "; --all evaluates the whole split" : ""),
      );
    },
    onBatch: bar,
  });
  const covered =
    r.eval.tokens + 1 >= r.splitTokens
      ? "the whole split"
      : `${Math.round((100 * r.eval.tokens) / r.splitTokens)}% of the split; --all for all of it`;
  console.log(
    `${r.source}: ${r.split} loss ${r.eval.loss.toFixed(4)} perplexity ${r.eval.ppl.toFixed(2)} over ${r.eval.tokens.toLocaleString("en-US")} of ${r.splitTokens.toLocaleString("en-US")} tokens (${covered})` +
      (r.unigram !== null ? ` (unigram baseline ${r.unigram.toFixed(2)})` : ""),
  );
  return 0;
}

async function cmdGenerate(p: ParsedArgs): Promise<number> {
  const ck = str(p.flags, "checkpoint");
  const prompt = str(p.flags, "prompt");
  if (ck === undefined || prompt === undefined) throw new UsageError("generate needs --checkpoint PATH and --prompt TEXT");
  const asked = intFlag(p.flags, "max-tokens", 0);
  const temperature = numFlag(p.flags, "temperature", 0) ?? 0.8;
  const topK = intFlag(p.flags, "top-k", 0) ?? 40;
  const seed = intFlag(p.flags, "seed", 0) ?? 0;
  const { model, fallback } = loadModelFrom(ck);
  if (fallback !== null) console.error(`generate: note: ${fallback}`);
  const ids = encode(prompt);
  if (ids.length === 0) throw new UsageError("--prompt encodes to no tokens; give some text");
  const block = (model.config as { blockSize: number }).blockSize;
  const room = Math.max(0, block - ids.length);
  if (room === 0)
    throw new UsageError(
      `--prompt is ${ids.length} tokens, which fills the model's context of ${block} tokens (blockSize); give a shorter prompt`,
    );
  let maxNewTokens = asked ?? Math.min(50, room);
  if (maxNewTokens > room) {
    console.error(
      `generate: --max-tokens ${maxNewTokens} is more than fits in the model's context (blockSize ${block} − ${ids.length} prompt tokens = ${room}); generating ${room}`,
    );
    maxNewTokens = room;
  }
  const stream = new TokenStream(prompt);
  sampleTokens(model, ids, {
    maxNewTokens,
    temperature,
    topK,
    key: random.key(seed),
    stopId: GPT2_EOS_ID,
    onToken: (t) => stream.push(t),
  });
  stream.end();
  return 0;
}

/**
 * The prompt and its continuation: on a terminal written as tokens arrive (whole characters only), otherwise
 * (a pipe or a file) printed once at the end.
 */
class TokenStream {
  private readonly ids: number[] = [];
  private printed = "";
  constructor(
    private readonly prompt: string,
    private readonly live = process.stdout.isTTY === true,
  ) {
    if (live) process.stdout.write(prompt);
  }
  push(id: number): void {
    if (id === GPT2_EOS_ID) return;
    this.ids.push(id);
    if (!this.live) return;
    const text = decode(this.ids);
    if (text.endsWith("\uFFFD")) return; // a character split across tokens: wait for its rest
    process.stdout.write(text.slice(this.printed.length));
    this.printed = text;
  }
  end(): void {
    const text = decode(this.ids);
    if (this.live) process.stdout.write(`${text.slice(this.printed.length)}\n`);
    else console.log(this.prompt + text);
  }
}

/** Progress of an evaluation on stderr: a redrawn line on a terminal, a line per quarter otherwise. */
function evalProgress(): (done: number, total: number) => void {
  const tty = process.stderr.isTTY === true;
  const t0 = performance.now();
  let lastQuarter = 0;
  return (done, total) => {
    const secs = (performance.now() - t0) / 1000;
    const line = `eval: batch ${done}/${total} (${formatSeconds(secs)})`;
    if (tty) process.stderr.write(`\r${line}${done === total ? "\n" : ""}`);
    else {
      const q = Math.floor((4 * done) / total);
      if (q > lastQuarter) {
        lastQuarter = q;
        console.error(line);
      }
    }
  };
}

/** The run folder's configuration for a checkpoint path (the path itself, or two / three levels up), or null. */
function runConfigOf(ck: string): string | null {
  for (const up of ["", "..", path.join("..", ".."), path.join("..", "..", "..")]) {
    const f = path.resolve(ck, up, CONFIG_FILE);
    if (fs.existsSync(f) && fs.statSync(f).isFile()) return f;
  }
  return null;
}

/** Sentences analysed when a model's run has no readable evaluation split. */
const SAMPLE_SENTENCES = [
  "The history of the city begins with a small settlement on the river.",
  "In 1905 the company built its first factory near the old harbour.",
  "She studied physics at the university and later taught mathematics.",
  "The album was released in the spring and reached the top of the charts.",
];

/**
 * Default inputs of `analyze` when none are given: windows of the run's evaluation split (from the run folder's
 * config.json and its data), or a few built-in sentences when that split cannot be read.
 */
async function defaultAnalyzeInputs(
  ck: string,
  model: { config: { blockSize: number; vocabSize: number } },
): Promise<{ texts?: string[]; ids?: number[][]; note: string }> {
  const file = runConfigOf(ck);
  let why = "no config.json of a run found beside the checkpoint";
  if (file !== null) {
    try {
      const cfg = loadConfigIn(file, [], packagedConfigs());
      const data = await loadRunData(cfg.data);
      const toks = data.eval.tokens;
      const T = Math.min(32, model.config.blockSize);
      const n = Math.max(1, Math.min(4, Math.floor(toks.length / T)));
      const stride = Math.floor((toks.length - T) / n);
      const ids: number[][] = [];
      for (let i = 0; i < n; i++) ids.push(Array.from(toks.subarray(i * stride, i * stride + T)));
      if (ids.every((w) => w.length === T && w.every((t) => t < model.config.vocabSize)))
        return { ids, note: `analysing ${n} windows of ${T} tokens spread over the '${data.eval.name}' split of ${data.source}` };
      why = "the evaluation split does not fit the model's vocabulary";
    } catch (err) {
      why = `the run's evaluation split could not be read (${(err as Error).message.split("\n")[0]})`;
    }
  }
  if (model.config.vocabSize !== 50257) throw new UsageError(`analyze: no inputs given and ${why}; give --text, --corpus or --ids`);
  return { texts: SAMPLE_SENTENCES, note: `${why}; analysing ${SAMPLE_SENTENCES.length} built-in sample sentences` };
}

/** The value of `--out` in analyze's arguments, if any. */
function analyzeOut(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--out") return args[i + 1];
    if (args[i]!.startsWith("--out=")) return args[i]!.slice("--out=".length);
  }
  return undefined;
}

/** `qkvflow tokenize`: the configuration's splits as token files for other engines (see writeTokenFiles). */
async function cmdTokenize(p: ParsedArgs): Promise<number> {
  const out = str(p.flags, "out");
  if (out === undefined) throw new UsageError("tokenize needs --out DIR (the folder for tokens.json and one <split>.bin per split)");
  const cfg = configFor({ ...p, flags: { ...p.flags, out: false } });
  const h = await writeTokenFiles(cfg.data, path.resolve(out), (m) => console.log(m));
  console.log(`token files in ${path.resolve(out)}: train on '${h.train}', evaluate on '${h.eval}' (${Object.keys(h.splits).join(", ")})`);
  return 0;
}

/** `qkvflow analyze`: spectra, Lyapunov exponents and the HTML report (@qkvflow/analysis), with the GPT-2 tokenizer for GPT-2-vocabulary models. */
async function cmdAnalyze(args: readonly string[]): Promise<number> {
  try {
    const out = analyzeOut(args);
    if (out !== undefined && !args.includes("--help") && !args.includes("-h")) ensureOutDir(out, "analyze --out");
    return await analyzeCommand([...args], {
      tokenizer: (m) => (m.config.vocabSize === 50257 ? gpt2Tokenizer : undefined),
      defaultInputs: (ck, m) => defaultAnalyzeInputs(ck, m as unknown as { config: { blockSize: number; vocabSize: number } }),
    });
  } catch (err) {
    console.error(`qkvflow analyze: ${(err as Error).message}`);
    return err instanceof AnalyzeUsageError || err instanceof UsageError ? 2 : 1;
  }
}

/** Runs the CLI; returns the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === "analyze") return cmdAnalyze(argv.slice(1));
  if (argv[0] === "study") return studyCommand(argv.slice(1));
  try {
    const p = parseArgs(argv);
    if (p.command === "help" || p.flags.help === true) {
      console.log(USAGE);
      return 0;
    }
    switch (p.command) {
      case "train":
        return await cmdTrain(p, false);
      case "finetune":
        return await cmdTrain(p, true);
      case "eval":
        return await cmdEval(p);
      case "generate":
        return await cmdGenerate(p);
      case "tokenize":
        return await cmdTokenize(p);
      case "configs":
        for (const c of listConfigs()) console.log(`${c.name.padEnd(32)} ${c.description}`);
        return 0;
      default:
        throw new UsageError(`unknown command '${p.command}'`);
    }
  } catch (err) {
    const e = err as Error;
    const usage = e instanceof UsageError || e.message.startsWith("config:") || e.message.startsWith("validateConfig:");
    console.error(`qkvflow: ${e.message}`);
    if (e instanceof NonFiniteLossError) return 1;
    return usage ? 2 : 1;
  }
}

function invokedDirectly(): boolean {
  const arg = process.argv[1];
  if (arg === undefined) return false;
  try {
    return fs.realpathSync(arg) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
