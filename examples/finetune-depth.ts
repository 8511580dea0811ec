/**
 * Adaptive-depth fine-tuning at CPU scale (the paper's §4 experiment, tiny): pretrain a DiffEqFormer with
 * L = 8 Euler steps on WikiText-2, discretise it to M ∈ {4, 6, 8, 12, 16} layers, and fine-tune each
 * discretisation on another corpus (the OpenWebText sample) — all weights, and LoRA adapters + embeddings.
 * A GPT-2 of the same width trained from scratch on the target for the same number of steps is the baseline.
 * Writes results.md (markdown table) and results.json to the output folder.
 *
 *   npx tsx examples/finetune-depth.ts [--source DIR] [--target FILE] [--out DIR] [--layers 4,6,8,12,16]
 *                                      [--pretrain-steps N] [--steps N] [--modes full,lora] [--no-baseline]
 *
 * --source: a WikiText-2 folder (default $QKVFLOW_DATA or ../shared/data/wikitext-2 beside the project);
 * --target: a UTF-8 text file (default ../shared/data/openwebtext-sample/openwebtext_sample.txt); its last
 * 10 % of tokens are held out for evaluation. A finished pretraining run in the output folder is reused.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { listCheckpoints, loadConfig, runFinetune, runTrain, type RunResult } from "@qkvflow/train";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const sharedData = path.resolve(root, "..", "shared", "data");

function fail(msg: string): never {
  console.error(`finetune-depth: ${msg}`);
  process.exit(2);
}

const opts = {
  source: process.env.QKVFLOW_DATA ?? path.join(sharedData, "wikitext-2"),
  target: path.join(sharedData, "openwebtext-sample", "openwebtext_sample.txt"),
  out: path.resolve("runs", "finetune-depth"),
  layers: [4, 6, 8, 12, 16],
  pretrainSteps: null as number | null,
  steps: null as number | null,
  modes: ["full", "lora"] as ("full" | "lora")[],
  baseline: true,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const f = argv[i]!;
  const next = (): string => argv[++i] ?? fail(`${f} needs a value`);
  const ints = (s: string): number[] =>
    s.split(",").map((x) => (Number.isInteger(Number(x)) && Number(x) > 0 ? Number(x) : fail(`${f}: '${x}' is not a positive integer`)));
  if (f === "--source") opts.source = next();
  else if (f === "--target") opts.target = next();
  else if (f === "--out") opts.out = path.resolve(next());
  else if (f === "--layers") opts.layers = ints(next());
  else if (f === "--pretrain-steps") opts.pretrainSteps = ints(next())[0]!;
  else if (f === "--steps") opts.steps = ints(next())[0]!;
  else if (f === "--modes") {
    opts.modes = next()
      .split(",")
      .map((m) => (m === "full" || m === "lora" ? m : fail(`--modes: '${m}' is not full or lora`)));
  } else if (f === "--no-baseline") opts.baseline = false;
  else fail(`unknown option '${f}'; valid: --source, --target, --out, --layers, --pretrain-steps, --steps, --modes, --no-baseline`);
}
for (const [what, p] of [
  ["--source", opts.source],
  ["--target", opts.target],
] as const) {
  if (!fs.existsSync(p)) fail(`${what} ${p} does not exist; pass ${what} (source: a WikiText-2 folder; target: a text file)`);
}

const q = JSON.stringify;
const quiet = { progress: "none" as const };
const log = (m: string): void => console.log(m);
fs.mkdirSync(opts.out, { recursive: true });

// 1. Pretraining (L = 8) on the source corpus; reused when a finished run is present.
const preDir = path.join(opts.out, "pretrain");
const preSets = [`data.dataDir=${q(path.resolve(opts.source))}`, `train.outDir=${q(preDir)}`, 'train.progress="plain"'];
if (opts.pretrainSteps !== null) preSets.push(`train.steps=${opts.pretrainSteps}`);
const preCfg = loadConfig(path.join(root, "configs", "tiny-finetune-pretrain-wikitext2.json"), preSets);
const done = listCheckpoints(preDir).at(-1);
if (done !== undefined && done.step === preCfg.train.steps) {
  log(`pretraining: reusing ${done.dir}`);
} else {
  if (fs.existsSync(preDir)) fs.rmSync(preDir, { recursive: true, force: true });
  log(`pretraining: DiffEqFormer L = 8 on ${opts.source}, ${preCfg.train.steps} steps`);
  const pre = await runTrain(preCfg);
  log(`pretraining: ${pre.evalSplit} perplexity ${pre.lastEval?.ppl.toFixed(2)}`);
}

// 2. Fine-tuning each discretisation on the target corpus.
interface Row {
  model: string;
  layers: number;
  mode: string;
  trainable: number;
  before: number | null;
  after: number;
  seconds: number;
}
const rows: Row[] = [];
const firstEval = (r: RunResult): number | null => {
  const lines = fs
    .readFileSync(r.metricsFile, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { type: string; step: number; ppl?: number });
  return lines.find((x) => x.type === "eval" && x.step === 0)?.ppl ?? null;
};
for (const mode of opts.modes) {
  for (const M of opts.layers) {
    const dir = path.join(opts.out, `${mode}-M${M}`);
    fs.rmSync(dir, { recursive: true, force: true });
    const sets = [
      `data.dataDir=${q(path.resolve(opts.target))}`,
      `train.outDir=${q(dir)}`,
      `finetune.checkpoint=${q(preDir)}`,
      `finetune.layers=${M}`,
    ];
    if (opts.steps !== null) sets.push(`train.steps=${opts.steps}`);
    const cfg = loadConfig(path.join(root, "configs", `tiny-finetune-owt-sample-${mode}.json`), sets);
    const t0 = performance.now();
    const r = await runFinetune(cfg, { ...quiet, log: () => undefined });
    const row = {
      model: "DiffEqFormer L=8",
      layers: M,
      mode,
      trainable: r.trainableParameters,
      before: firstEval(r),
      after: r.lastEval!.ppl,
      seconds: (performance.now() - t0) / 1000,
    };
    rows.push(row);
    log(
      `8 → ${M} layers, ${mode}: perplexity ${row.before?.toFixed(2)} before, ${row.after.toFixed(2)} after fine-tuning (${row.trainable.toLocaleString("en-US")} trainable, ${row.seconds.toFixed(0)} s)`,
    );
  }
}

// 3. Baseline: a GPT-2 of the same width trained from scratch on the target for the same number of steps.
if (opts.baseline) {
  const ft = loadConfig(
    path.join(root, "configs", "tiny-finetune-owt-sample-full.json"),
    opts.steps !== null ? [`train.steps=${opts.steps}`] : [],
  );
  const dir = path.join(opts.out, "gpt2-scratch");
  fs.rmSync(dir, { recursive: true, force: true });
  const cfg = loadConfig(path.join(root, "configs", "tiny-gpt2-wikitext2.json"), [
    'name="gpt2-scratch"',
    'data.dataset="text"',
    `data.dataDir=${q(path.resolve(opts.target))}`,
    'data.evalSplit="test"',
    `train.steps=${ft.train.steps}`,
    `train.outDir=${q(dir)}`,
    "train.evalEvery=0",
    "train.evalBatches=null",
    "train.checkpointEvery=0",
    "optimizer.warmupRatio=0.1",
  ]);
  const t0 = performance.now();
  const r = await runTrain(cfg, { ...quiet, log: () => undefined });
  rows.push({
    model: "GPT-2 from scratch",
    layers: 4,
    mode: "scratch",
    trainable: r.trainableParameters,
    before: null,
    after: r.lastEval!.ppl,
    seconds: (performance.now() - t0) / 1000,
  });
  log(`GPT-2 from scratch on the target: perplexity ${r.lastEval!.ppl.toFixed(2)}`);
}

const md = [
  `# Adaptive-depth fine-tuning (tiny): pretrain L = 8 on WikiText-2, fine-tune on ${path.basename(opts.target)}`,
  "",
  "| model | layers M | fine-tuning | trainable params | ppl before | ppl after | seconds |",
  "|---|---|---|---|---|---|---|",
  ...rows.map(
    (r) =>
      `| ${r.model} | ${r.layers} | ${r.mode} | ${r.trainable.toLocaleString("en-US")} | ${r.before === null ? "—" : r.before.toFixed(2)} | ${r.after.toFixed(2)} | ${r.seconds.toFixed(0)} |`,
  ),
  "",
  '"ppl before" is the discretised model on the held-out target tokens before any fine-tuning (zero-shot depth change).',
].join("\n");
fs.writeFileSync(path.join(opts.out, "results.md"), `${md}\n`);
fs.writeFileSync(path.join(opts.out, "results.json"), `${JSON.stringify({ source: opts.source, target: opts.target, rows }, null, 2)}\n`);
console.log(`\n${md}\n\nwritten: ${path.join(opts.out, "results.md")}, results.json`);
