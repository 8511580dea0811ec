#!/usr/bin/env node
/**
 * The `qkvflow` command line: train | finetune | eval | generate | analyze | configs | help. Training, evaluation
 * and sampling come from @qkvflow/train, `analyze` from @qkvflow/analysis; this package is the only one that
 * knows both. Run `qkvflow help` (or `npm run qkvflow -- help` from a source checkout) for usage.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { random } from "@qkvflow/autograd";
import { analyzeCommand } from "@qkvflow/analysis";
import { studyCommand } from "./study/command.js";
import { CONFIG_FILE } from "@qkvflow/models";
import {
  GPT2_EOS_ID,
  NonFiniteLossError,
  decode,
  encode,
  formatSeconds,
  gpt2Tokenizer,
  listConfigs as listConfigsIn,
  loadConfig as loadConfigIn,
  loadModelFrom,
  runEval,
  runFinetune,
  runTrain,
  sampleTokens,
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
const FLAGS: Record<string, Record<string, FlagKind>> = {
  train: { ...COMMON, resume: "optional", out: "string", steps: "string", progress: "string" },
  finetune: {
    ...COMMON,
    resume: "optional",
    out: "string",
    steps: "string",
    progress: "string",
    from: "string",
    layers: "string",
    mode: "string",
  },
  eval: { ...COMMON, checkpoint: "string", split: "string" },
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
};

/** Usage text. */
export const USAGE = `qkvflow — train, fine-tune, evaluate and sample DiffEqFormer / GPT-2 language models

Usage:
  qkvflow train    --config NAME|FILE [--set key=value ...] [--data DIR] [--out DIR] [--steps N] [--resume [RUN_DIR]]
  qkvflow finetune --config NAME|FILE --from CHECKPOINT [--layers M] [--mode full|lora] [--set ...] [--resume [RUN_DIR]]
  qkvflow eval     --checkpoint PATH [--config NAME|FILE] [--split NAME] [--data DIR] [--set ...]
  qkvflow generate --checkpoint PATH --prompt TEXT [--max-tokens 50] [--temperature 0.8] [--top-k 40] [--seed 0]
  qkvflow configs  (lists the configuration files)

Options:
  --config NAME|FILE   a JSON configuration: a file path, or a name from the configs/ folder
  --set key=value      override a configuration key (dotted, e.g. optimizer.lr=3e-4, model.nLayer=4); repeatable
  --data DIR           local data folder (data.dataDir); default $QKVFLOW_DATA, then the cache
  --out DIR            run folder (train.outDir); default runs/<name>
  --steps N            number of updates (train.steps)
  --progress MODE      auto | bar | plain | none (train.progress)
  --resume [RUN_DIR]   continue the run in RUN_DIR (or the configuration's run folder) from its latest checkpoint;
                       without --config the run folder's config.json is used
  --from PATH          finetune: pretrained run folder, checkpoint folder or model .safetensors (finetune.checkpoint)
  --layers M           finetune: discretise the DiffEqFormer to M layers (finetune.layers)
  --mode full|lora     finetune: train all weights or LoRA adapters (finetune.mode)
  --checkpoint PATH    eval / generate: run folder, checkpoint folder or model .safetensors file

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
  const t0 = performance.now();
  const r = finetune ? await runFinetune(cfg, { resume }) : await runTrain(cfg, { resume });
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
  const r = await runEval(cfg, ck, split !== undefined ? { split } : {});
  console.log(
    `${r.source}: ${r.split} loss ${r.eval.loss.toFixed(4)} perplexity ${r.eval.ppl.toFixed(2)} over ${r.eval.tokens} tokens` +
      (r.unigram !== null ? ` (unigram baseline ${r.unigram.toFixed(2)})` : ""),
  );
  return 0;
}

async function cmdGenerate(p: ParsedArgs): Promise<number> {
  const ck = str(p.flags, "checkpoint");
  const prompt = str(p.flags, "prompt");
  if (ck === undefined || prompt === undefined) throw new UsageError("generate needs --checkpoint PATH and --prompt TEXT");
  const { model } = loadModelFrom(ck);
  const ids = encode(prompt);
  if (ids.length === 0) throw new UsageError("--prompt encodes to no tokens; give some text");
  const out = sampleTokens(model, ids, {
    maxNewTokens: intFlag(p.flags, "max-tokens", 0) ?? 50,
    temperature: numFlag(p.flags, "temperature", 0) ?? 0.8,
    topK: intFlag(p.flags, "top-k", 0) ?? 40,
    key: random.key(intFlag(p.flags, "seed", 0) ?? 0),
    stopId: GPT2_EOS_ID,
  });
  console.log(prompt + decode(out.filter((t) => t !== GPT2_EOS_ID)));
  return 0;
}

/** `qkvflow analyze`: spectra, Lyapunov exponents and the HTML report (@qkvflow/analysis), with the GPT-2 tokenizer for GPT-2-vocabulary models. */
async function cmdAnalyze(args: readonly string[]): Promise<number> {
  try {
    return await analyzeCommand([...args], {
      tokenizer: (m) => (m.config.vocabSize === 50257 ? gpt2Tokenizer : undefined),
    });
  } catch (err) {
    console.error(`qkvflow analyze: ${(err as Error).message}`);
    return 1;
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
