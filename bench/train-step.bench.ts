/**
 * Training throughput of whole steps, qkvflow against PyTorch in the same run: GPT-2 and DiffEqFormer on the
 * paper's tiny configuration (E 128, 4 layers, 4 heads, DiffEqFormer d_emb 20 and S 16, sequence 128, batch 16,
 * vocabulary 50,257, dropout 0.1, AdamW with global-norm clipping at 1).
 *
 * qkvflow is driven the way a user drives it: `qkvflow train` (the CLI run as a subprocess) on
 * configs/tiny-<model>-wikitext2.json with the shape above set through `--set`, evaluation and checkpoints
 * pushed to after the last step (`train.evalEvery=0`, `train.checkpointEvery=0`: only at the end, outside the
 * timed steps, over one sequence). Step times come from the run's metrics.jsonl: the differences of `elapsed`
 * (the trainer's wall-clock seconds of updates: sampling, forward, backward, clipping, AdamW; evaluation and
 * checkpoints excluded), or `tokens / tokensPerSec`, or — should the log carry neither — the moments each
 * record appeared in the file (polled every 20 ms while the run goes). The first WARMUP steps are dropped and
 * the median of the next TIMED steps is reported; tokens/s = batch · sequence / median step.
 *
 * Data: WikiText-2 from $QKVFLOW_DATA, else ../shared/data/wikitext-2-raw-v1 (or ../shared/data/wikitext-2)
 * beside the repository, first 100 articles per split (`data.maxDocuments`, so tokenising takes seconds).
 * Without any of these the bench says so and trains on a generated text file instead: the cost of a step does
 * not depend on which token ids it sees.
 *
 * PyTorch: bench/torch_train_step.py (the same two models written in PyTorch, same shapes, parameter names
 * and counts, dropout, AdamW and clipping; 2 threads; random token ids), run through /usr/bin/python3 (or
 * $QKVFLOW_TORCH_PYTHON) when `import torch` works there, right after qkvflow's run of the same model. Debian's
 * python3-torch calls whichever libblas.so.3 is installed: with the reference BLAS its GEMMs are much slower,
 * so install OpenBLAS beside it (apt-get install python3-torch libopenblas0-pthread); the bench names the BLAS
 * library the process loaded and warns when it is not an optimised one. When the environment sets
 * OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE (set where older OpenBLAS builds pick a wrong or crashing kernel; they
 * can also make it slower), PyTorch runs twice: with the environment as is and with both removed for that child
 * alone. Each run first checks its float32 GEMMs against a float64 reference computed without the BLAS and refuses
 * to time a configuration that computes wrong products; both figures are printed and the ratio is taken against
 * the faster correct one. Its
 * parameter names and sizes must equal qkvflow's (from `parameterShapes` of the resolved model configuration,
 * and the total the CLI prints): the bench fails when they differ. Without torch it says so and prints
 * qkvflow's figures alone.
 *
 * Run: npx tsx bench/train-step.bench.ts [filter]   (or npm run bench -- train-step; cases: "train-step
 * diffeqformer", "train-step gpt2"). About 4 minutes on 2 idle cores (PyTorch runs twice when the OpenBLAS
 * variables are set). QKVFLOW_TRAIN_STEP_WARMUP and
 * QKVFLOW_TRAIN_STEP_TIMED change the step counts (defaults 2 and 6) for a quick check that it runs.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parameterShapes, preset } from "@qkvflow/models";
import { hardwareThreads, nameFilter, runIfMain } from "./common.js";

/** A step count from the environment (for a quick smoke run), else the default. */
function envSteps(name: string, dflt: number, min: number): number {
  const v = process.env[name];
  if (v === undefined || v.trim() === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`train-step: ${name} is '${v}'; expected an integer >= ${min}`);
  return n;
}
/** Untimed steps at the start of each run (the first compiles kernels and grows memory); $QKVFLOW_TRAIN_STEP_WARMUP. */
const WARMUP = envSteps("QKVFLOW_TRAIN_STEP_WARMUP", 2, 1);
/** Timed steps after the warm-up, whose median is reported; $QKVFLOW_TRAIN_STEP_TIMED. */
const TIMED = envSteps("QKVFLOW_TRAIN_STEP_TIMED", 6, 1);
/** Threads of the PyTorch reference (qkvflow uses all hardware threads by default; 2 on the reference machine). */
const TORCH_THREADS = 2;
const SEQ = 128;
const BATCH = 16;

interface ModelCase {
  /** Case name (matched by the filter). */
  name: string;
  /** Configuration file in configs/. */
  config: string;
  /** `--model` of the PyTorch script. */
  torchModel: "gpt2" | "diffeqformer";
  /** Model keys set on top of the configuration file. */
  model: Record<string, number>;
}

const SHAPE = { nEmbd: 128, nHead: 4, nLayer: 4, blockSize: SEQ, embdPdrop: 0.1, residPdrop: 0.1 };
const CASES: ModelCase[] = [
  {
    name: "train-step diffeqformer",
    config: "tiny-diffeqformer-wikitext2.json",
    torchModel: "diffeqformer",
    model: { ...SHAPE, timeEmbedDim: 20, sinusoidalDim: 16 },
  },
  { name: "train-step gpt2", config: "tiny-gpt2-wikitext2.json", torchModel: "gpt2", model: { ...SHAPE } },
];

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");

/** The CLI entry (it may live in packages/cli or packages/train). */
function cliEntry(): string {
  const candidates = ["packages/cli/src/cli.ts", "packages/train/src/cli.ts"].map((p) => path.join(root, p));
  const found = candidates.find((p) => fs.existsSync(p));
  if (found === undefined) throw new Error(`train-step: no qkvflow CLI found; looked for ${candidates.join(", ")}`);
  return found;
}

/** Where the training text comes from. */
interface DataChoice {
  /** CLI arguments selecting it. */
  args: string[];
  /** One line for the report. */
  describe: string;
}

/** WikiText-2 as described in the module comment, or a generated text file (written into `tmp`). */
function chooseData(tmp: string): DataChoice {
  const env = process.env.QKVFLOW_DATA;
  const shared = path.resolve(root, "..", "shared", "data");
  const sub = (p: string) => ["--set", "data.maxDocuments=100", "--data", p];
  if (env !== undefined && env.trim() !== "")
    return { args: sub(path.resolve(env)), describe: `WikiText-2 from $QKVFLOW_DATA = ${env} (first 100 articles per split)` };
  for (const dir of ["wikitext-2-raw-v1", "wikitext-2"]) {
    const p = path.join(shared, dir);
    if (fs.existsSync(p) && fs.statSync(p).isDirectory())
      return { args: sub(p), describe: `WikiText-2 from ../shared/data/${dir} (first 100 articles per split)` };
  }
  // No WikiText-2: a generated text of pseudo-random words; a step's cost does not depend on the token ids.
  const file = path.join(tmp, "generated.txt");
  const syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "vo", "de", "an", "el", "or", "ux", "ph", "th", "st"];
  let s = 12345;
  const rnd = (n: number) => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s % n;
  };
  const words: string[] = [];
  for (let i = 0; i < 60000; i++) {
    let w = "";
    for (let j = 0, n = 1 + rnd(4); j < n; j++) w += syllables[rnd(syllables.length)];
    words.push(i % 17 === 16 ? `${w}.\n` : w);
  }
  fs.writeFileSync(file, words.join(" "));
  console.log(
    `train-step: no WikiText-2 found (set QKVFLOW_DATA, or put wikitext-2-raw-v1 in ${shared}); training on a generated text of 60,000 pseudo-random words instead (speed does not depend on the text)`,
  );
  return {
    args: ["--set", 'data.dataset="text"', "--set", `data.cacheDir=${JSON.stringify(path.join(tmp, "cache"))}`, "--data", file],
    describe: "a generated text of 60,000 pseudo-random words (no WikiText-2 found)",
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

type Rec = Record<string, unknown>;

function readRecords(file: string): Rec[] {
  if (!fs.existsSync(file)) return [];
  const out: Rec[] = [];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    try {
      out.push(JSON.parse(line) as Rec);
    } catch {
      // a line being written
    }
  }
  return out;
}

/** Per-step seconds of the train records (see the module comment), and how they were obtained. */
export function stepSeconds(
  records: readonly Rec[],
  arrivals: ReadonlyMap<number, number>,
  stepTokens: number,
): { seconds: number[]; source: string } {
  const train = records.filter((r) => r.type === "train" && typeof r.step === "number");
  if (train.length === 0) throw new Error("train-step: the run's metrics.jsonl holds no train records");
  if (train.every((r) => typeof r.elapsed === "number")) {
    return {
      seconds: train.map((r, i) => (r.elapsed as number) - (i === 0 ? 0 : (train[i - 1]!.elapsed as number))),
      source: "metrics.jsonl elapsed",
    };
  }
  if (train.every((r) => typeof r.tokensPerSec === "number")) {
    return { seconds: train.map((r) => stepTokens / (r.tokensPerSec as number)), source: "metrics.jsonl tokensPerSec" };
  }
  const steps = train.map((r) => r.step as number);
  if (steps.every((s) => arrivals.has(s))) {
    // the first step's time includes start-up; it is one of the warm-up steps that are dropped
    return {
      seconds: steps.map((s, i) => arrivals.get(s)! - (i === 0 ? arrivals.get(s)! : arrivals.get(steps[i - 1]!)!)),
      source: "arrival of each record in metrics.jsonl (polled every 20 ms)",
    };
  }
  throw new Error("train-step: metrics.jsonl records neither elapsed nor tokensPerSec, and the arrival of every record was not observed");
}

interface QkvflowResult {
  seconds: number[];
  timingSource: string;
  parameters: number | null;
  config: Rec;
}

/** Runs `qkvflow train` for one case; returns per-step seconds, the parameter count it printed and the resolved configuration. */
async function runQkvflow(c: ModelCase, data: DataChoice, tmp: string): Promise<QkvflowResult> {
  const out = path.join(tmp, c.torchModel);
  const sets = [
    ...Object.entries(c.model).map(([k, v]) => `model.${k}=${v}`),
    `data.seqLen=${SEQ}`,
    `train.batchSize=${BATCH}`,
    "train.gradAccum=1",
    "train.evalEvery=0",
    "train.checkpointEvery=0",
    "train.evalBatches=1",
    "train.evalBatchSize=1",
    "optimizer.maxGradNorm=1",
  ];
  const args = [
    "--import",
    "tsx",
    cliEntry(),
    "train",
    "--config",
    path.join(root, "configs", c.config),
    "--steps",
    String(WARMUP + TIMED),
    "--out",
    out,
    "--progress",
    "none",
    ...sets.flatMap((s) => ["--set", s]),
    ...data.args,
  ];
  const metricsFile = path.join(out, "metrics.jsonl");
  const arrivals = new Map<number, number>();
  const t0 = performance.now();
  const poll = setInterval(() => {
    const now = (performance.now() - t0) / 1000;
    for (const r of readRecords(metricsFile))
      if (r.type === "train" && typeof r.step === "number" && !arrivals.has(r.step)) arrivals.set(r.step, now);
  }, 20);
  let output = "";
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (b: Buffer) => (output += b.toString()));
    child.stderr.on("data", (b: Buffer) => (output += b.toString()));
    child.on("error", reject);
    child.on("close", resolve);
  });
  clearInterval(poll);
  if (code !== 0) {
    throw new Error(
      `train-step: qkvflow train (${c.config}) exited with ${code}; its output:\n${output.trim().split("\n").slice(-20).join("\n")}`,
    );
  }
  const cfgFile = path.join(out, "config.json");
  if (!fs.existsSync(cfgFile)) throw new Error(`train-step: the run folder ${out} has no config.json`);
  const config = JSON.parse(fs.readFileSync(cfgFile, "utf8")) as Rec;
  const { seconds, source } = stepSeconds(readRecords(metricsFile), arrivals, BATCH * SEQ);
  if (seconds.length !== WARMUP + TIMED)
    throw new Error(`train-step: qkvflow recorded ${seconds.length} steps; expected ${WARMUP + TIMED}`);
  const m = /([\d,]+) parameters/.exec(output);
  return { seconds, timingSource: source, parameters: m ? Number(m[1]!.replace(/,/g, "")) : null, config };
}

/** The python that has torch, or null (with the reason printed once). */
function torchPython(): { python: string; version: string } | null {
  const python = process.env.QKVFLOW_TORCH_PYTHON ?? "/usr/bin/python3";
  const r = spawnSync(python, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
  if (r.status !== 0) {
    const why = r.error ? r.error.message : ((r.stderr || "").trim().split("\n").at(-1) ?? `exit ${r.status}`);
    console.log(
      `train-step: PyTorch is not available through ${python} (${why}); printing qkvflow's figures alone (Debian: apt-get install python3-torch)`,
    );
    return null;
  }
  return { python, version: r.stdout.trim() };
}

interface TorchResult {
  /** How the child's environment was set: "as is" or "OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE unset". */
  config: string;
  torch: string;
  blas: string | null;
  threads: number;
  parameters: number;
  parameterSizes: Record<string, number>;
  stepSeconds: number[];
  medianStepSeconds: number;
  tokensPerSecond: number;
  blasCheck: { ok: boolean; worstOfBound: number; worstCase: string };
}

/** OpenBLAS settings some environments carry (older OpenBLAS picks a wrong or crashing kernel on some processors). */
const BLAS_VARS = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"] as const;

/**
 * The environments PyTorch runs under: the one given, and — when it sets any of BLAS_VARS — the same with them
 * all removed (for that child only). The script checks its GEMMs against a float64 reference first and exits
 * with status 3 in a configuration that computes wrong products; the bench reports the faster correct one.
 */
function torchEnvironments(): { name: string; env: NodeJS.ProcessEnv }[] {
  const set = BLAS_VARS.filter((k) => process.env[k] !== undefined);
  const asIs = { name: set.length ? `as is (${set.map((k) => `${k}=${process.env[k]}`).join(", ")})` : "as is", env: process.env };
  if (set.length === 0) return [asIs];
  const env = { ...process.env };
  for (const k of BLAS_VARS) delete env[k];
  return [asIs, { name: `${BLAS_VARS.join(", ")} unset`, env }];
}

/** Runs the PyTorch reference with the optimiser settings of qkvflow's resolved configuration; null when the configuration computes wrong products. */
function runTorch(python: string, c: ModelCase, config: Rec, setup: { name: string; env: NodeJS.ProcessEnv }): TorchResult | null {
  const opt = (config.optimizer ?? {}) as Rec;
  const num = (k: string): string => {
    const v = opt[k];
    if (typeof v !== "number")
      throw new Error(`train-step: the resolved configuration has optimizer.${k} = ${JSON.stringify(v)}; expected a number`);
    return String(v);
  };
  // null decay patterns: the trainer's defaults by model kind (see optimizer.decayPatterns in packages/train)
  const decay =
    (opt.decayPatterns as string[] | null | undefined) ??
    (c.torchModel === "gpt2" ? [".*attn.*weight", ".*mlp.*weight", "wte\\.weight", "wpe\\.weight"] : ["wte\\.weight", "wpe\\.weight"]);
  const m = c.model;
  const args = [
    path.join(here, "torch_train_step.py"),
    "--model",
    c.torchModel,
    "--embd",
    String(m.nEmbd),
    "--layers",
    String(m.nLayer),
    "--heads",
    String(m.nHead),
    ...(c.torchModel === "diffeqformer" ? ["--d-emb", String(m.timeEmbedDim), "--sinusoids", String(m.sinusoidalDim)] : []),
    "--vocab",
    "50257",
    "--block",
    String(m.blockSize),
    "--seq",
    String(SEQ),
    "--batch",
    String(BATCH),
    "--dropout",
    String(m.residPdrop),
    "--lr",
    num("lr"),
    "--beta1",
    num("beta1"),
    "--beta2",
    num("beta2"),
    "--eps",
    num("eps"),
    "--weight-decay",
    num("weightDecay"),
    ...decay.flatMap((d) => ["--decay", d]),
    "--max-grad-norm",
    opt.maxGradNorm === null ? "0" : num("maxGradNorm"),
    "--warmup-ratio",
    num("warmupRatio"),
    "--min-lr-ratio",
    num("minLrRatio"),
    "--schedule",
    String(opt.schedule ?? "cosine"),
    "--threads",
    String(TORCH_THREADS),
    "--warmup",
    String(WARMUP),
    "--steps",
    String(TIMED),
  ];
  if (m.embdPdrop !== m.residPdrop)
    throw new Error("train-step: the PyTorch reference takes one dropout rate for embeddings and residual branches");
  const r = spawnSync(python, args, { encoding: "utf8", maxBuffer: 64 << 20, env: setup.env });
  if (r.status === 3) {
    console.log(`${c.name}: PyTorch with the environment ${setup.name} refused: ${(r.stderr || "").trim().split("\n").at(-1)}`);
    return null;
  }
  if (r.status !== 0)
    throw new Error(
      `train-step: ${python} bench/torch_train_step.py --model ${c.torchModel} failed (exit ${r.status}):\n${(r.stderr || r.error?.message || "").trim()}`,
    );
  const lines = r.stdout.trim().split("\n");
  return { ...(JSON.parse(lines[lines.length - 1]!) as Omit<TorchResult, "config">), config: setup.name };
}

/** qkvflow's parameter names and sizes for the case's model, from the configuration file plus the overrides. */
function expectedSizes(c: ModelCase): Record<string, number> {
  const file = JSON.parse(fs.readFileSync(path.join(root, "configs", c.config), "utf8")) as { model: Record<string, unknown> };
  const { preset: name, ...rest } = file.model;
  const shapes = parameterShapes(preset(String(name), { ...rest, ...c.model }));
  return Object.fromEntries(Object.entries(shapes).map(([n, s]) => [n, s.reduce((a, b) => a * b, 1)]));
}

/** Throws when PyTorch's parameters differ from qkvflow's (names, sizes or the total the CLI printed). */
function checkParameters(c: ModelCase, expected: Record<string, number>, cliTotal: number | null, torch: TorchResult): void {
  const total = Object.values(expected).reduce((a, b) => a + b, 0);
  const problems: string[] = [];
  if (cliTotal !== null && cliTotal !== total)
    problems.push(
      `qkvflow's CLI printed ${cliTotal.toLocaleString("en-US")} parameters, parameterShapes gives ${total.toLocaleString("en-US")}`,
    );
  if (torch.parameters !== total)
    problems.push(`PyTorch has ${torch.parameters.toLocaleString("en-US")} parameters, qkvflow ${total.toLocaleString("en-US")}`);
  for (const [n, size] of Object.entries(expected)) {
    const t = torch.parameterSizes[n];
    if (t === undefined) problems.push(`${n} (${size}) is missing in PyTorch`);
    else if (t !== size) problems.push(`${n}: PyTorch ${t}, qkvflow ${size}`);
  }
  for (const n of Object.keys(torch.parameterSizes)) if (!(n in expected)) problems.push(`PyTorch has ${n}, qkvflow does not`);
  if (problems.length > 0) {
    const shown = problems.length > 12 ? [...problems.slice(0, 12), `… and ${problems.length - 12} more`] : problems;
    throw new Error(`train-step: the PyTorch ${c.torchModel} does not match qkvflow's:\n  ${shown.join("\n  ")}`);
  }
}

interface Row {
  model: string;
  parameters: number;
  qkvflow: number[];
  /** Every PyTorch configuration that passed its correctness check. */
  torchRuns: TorchResult[];
  /** The fastest of them. */
  torch: TorchResult | null;
}

const fmtInt = (x: number): string => Math.round(x).toLocaleString("en-US");

/** Runs the cases whose names contain `filter` (case-insensitive); prints a markdown table. */
export async function run(filter?: string): Promise<void> {
  const want = nameFilter(filter);
  const cases = CASES.filter((c) => want(c.name));
  if (cases.length === 0) {
    console.log(`train-step: no benchmark matches '${filter}'`);
    return;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qkvflow-train-step-"));
  try {
    const data = chooseData(tmp);
    const py = torchPython();
    const load0 = os.loadavg();
    console.log(
      `machine: ${os.cpus()[0]?.model ?? "?"}, ${hardwareThreads()} hardware threads, Node ${process.version}` +
        `${py ? `; PyTorch ${py.version} through ${py.python}, ${TORCH_THREADS} threads` : ""}; load average ${load0.map((x) => x.toFixed(2)).join(" ")}`,
    );
    console.log(
      `data: ${data.describe}; batch ${BATCH} × ${SEQ} tokens = ${BATCH * SEQ} tokens per step; median of ${TIMED} steps after ${WARMUP} warm-up steps`,
    );
    const rows: Row[] = [];
    for (const c of cases) {
      const expected = expectedSizes(c);
      const total = Object.values(expected).reduce((a, b) => a + b, 0);
      const q = await runQkvflow(c, data, tmp);
      const timed = q.seconds.slice(WARMUP);
      console.log(
        `${c.name}: qkvflow steps (s, from ${q.timingSource}): ${q.seconds.map((s) => s.toFixed(2)).join(" ")}; ${q.parameters?.toLocaleString("en-US") ?? "?"} parameters (CLI), ${total.toLocaleString("en-US")} (parameterShapes)`,
      );
      let torch: TorchResult | null = null;
      const torchRuns: TorchResult[] = [];
      if (py) {
        for (const setup of torchEnvironments()) {
          const t = runTorch(py.python, c, q.config, setup);
          if (t === null) continue;
          console.log(
            `${c.name}: PyTorch, environment ${t.config}: steps (s) ${t.stepSeconds.map((s) => s.toFixed(2)).join(" ")}; ${t.parameters.toLocaleString("en-US")} parameters; BLAS ${t.blas ?? "?"}, ${t.threads} threads; GEMM check passed (worst error ${t.blasCheck.worstOfBound.toFixed(2)} of the float32 bound)`,
          );
          if (t.blas !== null && !/openblas|mkl|blis/i.test(t.blas)) {
            console.log(
              `train-step: PyTorch runs on ${t.blas}, not an optimised BLAS (Debian's torch uses whichever libblas.so.3 is installed; apt-get install libopenblas0-pthread), so its figures are far too low`,
            );
          }
          checkParameters(c, expected, q.parameters, t);
          torchRuns.push(t);
          if (torch === null || t.medianStepSeconds < torch.medianStepSeconds) torch = t;
        }
        if (torch === null) throw new Error(`train-step: PyTorch computed wrong products in every configuration tried`);
      } else if (q.parameters !== null && q.parameters !== total) {
        throw new Error(`train-step: qkvflow's CLI printed ${q.parameters} parameters for ${c.config}; parameterShapes gives ${total}`);
      }
      rows.push({ model: c.torchModel, parameters: total, qkvflow: timed, torchRuns, torch });
    }
    const tokens = BATCH * SEQ;
    const setups = py ? torchEnvironments().map((s) => s.name) : [];
    const cell = (t: TorchResult | undefined): string =>
      t ? `${fmtInt(t.tokensPerSecond)} (${t.medianStepSeconds.toFixed(2)})` : py ? "(wrong products: refused)" : "(no torch)";
    const torchHeads = setups.length ? setups.map((s) => ` PyTorch tokens/s (s/step), environment ${s} |`).join("") : " PyTorch |";
    console.log(`\n| model | parameters | qkvflow tokens/s (s/step) |${torchHeads} ratio qkvflow ÷ fastest correct PyTorch |`);
    console.log(`|---|---|---|${"---|".repeat(Math.max(1, setups.length))}---|`);
    for (const r of rows) {
      const qs = median(r.qkvflow);
      const qTok = tokens / qs;
      const cells = setups.length ? setups.map((s) => ` ${cell(r.torchRuns.find((t) => t.config === s))} |`).join("") : " (no torch) |";
      const ratio = r.torch ? `${(qTok / r.torch.tokensPerSecond).toFixed(2)}×` : "-";
      console.log(`| ${r.model} | ${fmtInt(r.parameters)} | ${fmtInt(qTok)} (${qs.toFixed(2)}) |${cells} ${ratio} |`);
    }
    console.log(
      `load average after: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(" ")}`,
    );
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, run);
