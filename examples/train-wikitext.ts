/**
 * Trains a tiny DiffEqFormer on WikiText-2 and prints its perplexity next to the unigram model's on the
 * same tokens. This is what `npm start` runs.
 *
 *   npx tsx examples/train-wikitext.ts [--data DIR] [--steps N] [--eval-tokens N] [--out DIR] [--resume]
 *                                      [--progress auto|bar|plain|none] [--set key=value ...]
 *
 * Data: --data DIR, else $QKVFLOW_DATA, else ../shared/data/wikitext-2-raw-v1 (the official WikiText-2 with its
 * train split) beside the project when present, else ../shared/data/wikitext-2, else the token cache, else a
 * download. The model trains on the train split, is evaluated on the validation split during training, and its
 * test perplexity is reported next to the unigram model's. A folder with only valid/test splits (no train) is
 * fine: the model then trains on the validation split and is evaluated on the test split, and the output says so.
 * Environment: QKVFLOW_EXAMPLE_STEPS and QKVFLOW_EXAMPLE_EVAL_TOKENS set --steps / --eval-tokens defaults.
 * The model and hyper-parameters are configs/tiny-diffeqformer-wikitext2.json; the run folder (default
 * runs/train-wikitext) gets metrics.jsonl, checkpoints/ and result.json. A new run replaces that folder.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { CONFIG_FILE } from "@qkvflow/models";
import {
  evaluatePerplexity,
  formatSeconds,
  loadConfig,
  loadModelFrom,
  loadRunData,
  runTrain,
  unigramPerplexity,
  type RunData,
} from "@qkvflow/train";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

interface Args {
  data?: string;
  steps: number | null;
  evalTokens: number;
  out: string;
  resume: boolean;
  progress?: string;
  sets: string[];
}

function fail(msg: string): never {
  console.error(`train-wikitext: ${msg}`);
  process.exit(2);
}

function intOf(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < min) fail(`${name} is '${v}'; expected an integer >= ${min}`);
  return n;
}

function parse(argv: string[]): Args {
  const env = process.env;
  const a: Args = {
    steps: env.QKVFLOW_EXAMPLE_STEPS ? intOf("QKVFLOW_EXAMPLE_STEPS", env.QKVFLOW_EXAMPLE_STEPS, 1) : null,
    evalTokens: env.QKVFLOW_EXAMPLE_EVAL_TOKENS ? intOf("QKVFLOW_EXAMPLE_EVAL_TOKENS", env.QKVFLOW_EXAMPLE_EVAL_TOKENS, 0) : 32768,
    out: path.resolve("runs", "train-wikitext"),
    resume: false,
    sets: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const next = (): string => argv[++i] ?? fail(`${f} needs a value`);
    if (f === "--data") a.data = next();
    else if (f === "--steps") a.steps = intOf("--steps", next(), 1);
    else if (f === "--eval-tokens") a.evalTokens = intOf("--eval-tokens", next(), 0);
    else if (f === "--out") a.out = path.resolve(next());
    else if (f === "--resume") a.resume = true;
    else if (f === "--progress") a.progress = next();
    else if (f === "--set") a.sets.push(next());
    else if (f === "--help" || f === "-h") {
      console.log(
        "usage: train-wikitext.ts [--data DIR] [--steps N] [--eval-tokens N (0 = whole split)] [--out DIR] [--resume] [--progress MODE] [--set key=value ...]",
      );
      process.exit(0);
    } else fail(`unknown option '${f}'; valid: --data, --steps, --eval-tokens, --out, --resume, --progress, --set`);
  }
  return a;
}

const args = parse(process.argv.slice(2));
const sharedDirs = ["wikitext-2-raw-v1", "wikitext-2"].map((d) => path.resolve(root, "..", "shared", "data", d));
const dataDir = args.data ?? process.env.QKVFLOW_DATA ?? sharedDirs.find((d) => fs.existsSync(d));

const sets = [...args.sets];
const q = JSON.stringify;
if (dataDir !== undefined) sets.push(`data.dataDir=${q(path.resolve(dataDir))}`);
else sets.push("data.download=true");
if (args.steps !== null) sets.push(`train.steps=${args.steps}`);
if (args.progress !== undefined) sets.push(`train.progress=${q(args.progress)}`);
sets.push(`train.outDir=${q(args.out)}`);
let cfg;
try {
  cfg = loadConfig(path.join(root, "configs", "tiny-diffeqformer-wikitext2.json"), sets);
} catch (err) {
  fail((err as Error).message);
}
// Periodic and final evaluations score the same prefix of the evaluation split (or all of it).
const evalBatch = cfg.train.evalBatchSize ?? cfg.train.batchSize / cfg.train.gradAccum;
cfg.train.evalBatches = args.evalTokens === 0 ? null : Math.max(1, Math.ceil(args.evalTokens / (evalBatch * cfg.data.seqLen)));

let data: RunData;
try {
  data = await loadRunData(cfg.data, (m) => console.log(m));
} catch (err) {
  const why = (err as Error).message;
  console.error(
    [
      "train-wikitext: no WikiText-2 data.",
      why,
      "",
      "Provide WikiText-2 locally and point the example at it:",
      "  npx tsx examples/train-wikitext.ts --data DIR        (or QKVFLOW_DATA=DIR npm start)",
      "where DIR holds wiki.{train,valid,test}.raw, wiki.*.tokens or {train,valid,test}.txt (valid + test alone are enough).",
    ].join("\n"),
  );
  process.exit(1);
}

if (!args.resume && fs.existsSync(path.join(args.out, CONFIG_FILE))) fs.rmSync(args.out, { recursive: true, force: true });
const t0 = performance.now();
const r = await runTrain(cfg, { data, resume: args.resume });
const seconds = (performance.now() - t0) / 1000;
if (r.interrupted) {
  console.log(`interrupted at step ${r.step}; continue with: npx tsx examples/train-wikitext.ts --resume --out ${args.out}`);
  process.exit(130);
}
const last = r.lastEval;
if (last === null) fail("no evaluation was run");
// With a train split the run was validated on 'validation'; the reported number is the test split's, scored on
// the same number of windows (or all of it). Without one (the fallback) the evaluation split already is 'test'.
const testTokens = data.eval.name === "test" ? undefined : data.splits.test;
const ev =
  testTokens === undefined
    ? { ...last, split: data.eval.name }
    : {
        ...evaluatePerplexity(loadModelFrom(r.runDir).model, testTokens, {
          seqLen: cfg.data.seqLen,
          batchSize: evalBatch,
          maxBatches: cfg.train.evalBatches,
        }),
        split: "test",
      };
const evalTokens = testTokens ?? data.eval.tokens;
const scored = evalTokens.subarray(1, 1 + ev.tokens); // exactly the targets the model was scored on
const uni = unigramPerplexity(data.train.tokens, scored);
const trainTok = data.train.tokens.length.toLocaleString("en-US");
const modelLabel = `DiffEqFormer (${r.totalParameters.toLocaleString("en-US")} parameters, ${r.step} steps)`;
const uniLabel = `unigram model (add-one, fitted on '${data.train.name}')`;
const width = Math.max(modelLabel.length, uniLabel.length) + 3;
const lines = [
  "",
  `WikiText-2: trained on '${data.train.name}' (${trainTok} tokens), evaluated on '${ev.split}' (${ev.tokens.toLocaleString("en-US")} predicted tokens${ev.tokens < evalTokens.length - 1 ? ` of ${(evalTokens.length - 1).toLocaleString("en-US")}` : ""})`,
  ...(data.note !== null ? [`note: ${data.note}`] : []),
  ...(ev.split !== data.eval.name ? [`  (validation perplexity at the end of training: ${last.ppl.toFixed(2)})`] : []),
  `  ${modelLabel.padEnd(width)}perplexity ${ev.ppl.toFixed(2)}`,
  `  ${uniLabel.padEnd(width)}perplexity ${uni.perplexity.toFixed(2)}`,
  `  ${ev.ppl < uni.perplexity ? "the model beats" : "the model does NOT beat"} the unigram baseline; training took ${formatSeconds(seconds)}`,
];
console.log(lines.join("\n"));
const result = {
  steps: r.step,
  trainSplit: data.train.name,
  evalSplit: ev.split,
  validationPerplexity: ev.split !== data.eval.name ? last.ppl : null,
  evalTokens: ev.tokens,
  perplexity: ev.ppl,
  loss: ev.loss,
  unigramPerplexity: uni.perplexity,
  seconds,
  parameters: r.totalParameters,
  note: data.note,
  runDir: r.runDir,
};
fs.writeFileSync(path.join(r.runDir, "result.json"), `${JSON.stringify(result, null, 2)}\n`);
