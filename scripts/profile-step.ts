/**
 * Where one training step's time goes, measured on the trainer itself: the paper's tiny configuration exactly as
 * bench/train-step.bench.ts trains it (configs/tiny-<model>-wikitext2.json with E 128, 4 layers, 4 heads,
 * DiffEqFormer d_emb 20 and S 16, sequence 128, batch 16, vocabulary 50,257, dropout 0.1, AdamW with global-norm
 * clipping at 1, evaluation and checkpoints off), driven through `Trainer` on synthetic token ids (the cost of a
 * step does not depend on the ids).
 *
 *   npx tsx scripts/profile-step.ts [--model diffeqformer|gpt2|both] [--steps 4] [--warmup 2] [--threads N]
 *
 * Parts of a step (ms per step, share of the step):
 *   head         the fused linear-cross-entropy (its three GEMMs [B·T, E]·[E, V] forward, and dlogits·W, dlogitsᵀ·x
 *                backward, with the softmax fused in): the backend's linearCrossEntropy* calls
 *   body matmuls every other backend matmul call (FLOPs 2·M·N·K from the shapes)
 *   dropout      the difference between the median step with the configured dropout and one with dropout 0, run
 *                in the same process (dropout is the mask generation plus a where and a scaling; timing it by
 *                difference does not depend on how it is implemented)
 *   optimizer    AdamW.step (clipping norm, the update, writing the new parameters), wall clock
 *   accumulate   GradientAccumulator.add / mean (reading the gradients back, the float64 mean)
 *   other        everything else: the remaining kernels (listed) and autodiff bookkeeping outside kernels
 * The WebAssembly-SIMD ceiling is measured in the same run: the best GFLOP/s of the GEMM kernel (sgemm on plain
 * arrays, as bench/gemm.bench.ts) on 1024×1024×1024 and on 2048×128×8192 with the same thread count. Each GEMM part is reported as achieved/ceiling, and every part as
 * the time it would take at the ceiling (its FLOPs ÷ ceiling; non-GEMM parts count no FLOPs, so their whole time
 * is above the ceiling).
 * The timings wrap the backend's methods, so they include copying in and out of kernel memory and allocating
 * outputs.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as ag from "@qkvflow/autograd";
import { AdamW, GradientAccumulator, Trainer, defaultDecayPatterns, loadConfig, resolveModelSection } from "@qkvflow/train";
import { createModel } from "@qkvflow/models";
import { CpuBackend } from "../packages/autograd/src/backend/cpu/cpu-backend.js";
import { getNumThreads, setNumThreads, sgemm } from "../packages/autograd/src/backend/cpu/kernels/gemm.js";

function parse(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!;
    if (!k.startsWith("--") || argv[i + 1] === undefined) throw new Error(`profile-step: bad argument '${k}'; expected --name value pairs`);
    out[k.slice(2)] = argv[i + 1]!;
  }
  return out;
}

function int(args: Record<string, string>, name: string, dflt: number, min = 1): number {
  const v = args[name] === undefined ? dflt : Number(args[name]);
  if (!Number.isInteger(v) || v < min) throw new Error(`profile-step: --${name} is '${args[name]}'; expected an integer >= ${min}`);
  return v;
}

const args = parse(process.argv.slice(2));
const which = args.model ?? "both";
if (!["diffeqformer", "gpt2", "both"].includes(which))
  throw new Error(`profile-step: --model is '${which}'; expected diffeqformer, gpt2 or both`);
const TIMED = int(args, "steps", 4);
const WARMUP = int(args, "warmup", 2);
if (args.threads !== undefined) setNumThreads(int(args, "threads", 1));
const SEQ = 128,
  BATCH = 16;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");

// ---- instrumentation -------------------------------------------------------------------------------------------
type Phase = "model" | "optimizer" | "accumulate";
let phase: Phase = "model";
const kernels = new Map<string, { ms: number; calls: number; flops: number }>();
const phaseMs = { optimizer: 0, accumulate: 0 };
let recording = false;

function flopsOf(name: string, a: unknown[]): number {
  if (name === "matmul") {
    const [x, , transA, , outShape] = a as [{ shape: number[] }, unknown, boolean, boolean, number[]];
    const K = transA ? x.shape[x.shape.length - 2]! : x.shape[x.shape.length - 1]!;
    return 2 * outShape.reduce((p, d) => p * d, 1) * K;
  }
  if (name.startsWith("linearCrossEntropy")) {
    const [x, w] = a as [{ shape: number[] }, { shape: number[] }];
    const rows = x.shape.slice(0, -1).reduce((p, d) => p * d, 1);
    const gemm = 2 * rows * w.shape[0]! * w.shape[1]!;
    return name === "linearCrossEntropy" ? gemm : name === "linearCrossEntropyBackward" ? 2 * gemm : 3 * gemm;
  }
  return 0;
}

const proto = CpuBackend.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
for (const name of Object.getOwnPropertyNames(CpuBackend.prototype)) {
  const f = proto[name];
  if (name === "constructor" || name === "read" || typeof f !== "function") continue;
  proto[name] = function (this: unknown, ...a: unknown[]) {
    if (!recording || phase !== "model") return f.apply(this, a);
    const t0 = performance.now();
    const r = f.apply(this, a);
    const dt = performance.now() - t0;
    const key = name === "unary" || name === "binary" || name === "reduce" ? `${name} ${String(a[0])}` : name;
    const e = kernels.get(key) ?? { ms: 0, calls: 0, flops: 0 };
    e.ms += dt;
    e.calls++;
    e.flops += flopsOf(name, a);
    kernels.set(key, e);
    return r;
  };
}

function timePhase<T extends object>(cls: { prototype: T }, method: keyof T & string, p: "optimizer" | "accumulate"): void {
  const pr = cls.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const f = pr[method]!;
  pr[method] = function (this: unknown, ...a: unknown[]) {
    const prev = phase;
    phase = p;
    const t0 = performance.now();
    try {
      return f.apply(this, a);
    } finally {
      if (recording) phaseMs[p] += performance.now() - t0;
      phase = prev;
    }
  };
}
timePhase(AdamW, "step", "optimizer");
timePhase(GradientAccumulator, "add", "accumulate");
timePhase(GradientAccumulator, "mean", "accumulate");

// ---- the ceiling ------------------------------------------------------------------------------------------------
function ceilingGflops(): number {
  // the GEMM kernel itself on plain arrays (as bench/gemm.bench.ts): 1024³ and the head's shape with N cut to 8192
  let best = 0;
  for (const [m, k, n] of [
    [1024, 1024, 1024],
    [2048, 128, 8192],
  ] as const) {
    const a = Float32Array.from({ length: m * k }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    const b = Float32Array.from({ length: k * n }, (_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
    const c = new Float32Array(m * n);
    for (let i = 0; i < 8; i++) {
      const t0 = performance.now();
      sgemm({ transA: false, transB: false, m, n, k, a, b, c });
      best = Math.max(best, (2 * m * n * k) / ((performance.now() - t0) / 1000) / 1e9);
    }
  }
  return best;
}

// ---- one trainer run ----------------------------------------------------------------------------------------------
interface RunResult {
  steps: number[];
  kernels: Map<string, { ms: number; calls: number; flops: number }>;
  optimizer: number;
  accumulate: number;
}

async function trainRun(model: "diffeqformer" | "gpt2", dropout: number, record: boolean): Promise<RunResult> {
  const shape = { nEmbd: 128, nHead: 4, nLayer: 4, blockSize: SEQ, embdPdrop: dropout, residPdrop: dropout };
  const extra = model === "diffeqformer" ? { timeEmbedDim: 20, sinusoidalDim: 16 } : {};
  const sets = [
    ...Object.entries({ ...shape, ...extra }).map(([k, v]) => `model.${k}=${v}`),
    `data.seqLen=${SEQ}`,
    `train.batchSize=${BATCH}`,
    "train.gradAccum=1",
    "train.evalEvery=0",
    "train.checkpointEvery=0",
    "optimizer.maxGradNorm=1",
    `train.steps=${WARMUP + TIMED}`,
  ];
  const cfg = loadConfig(path.join(root, "configs", `tiny-${model}-wikitext2.json`), sets);
  const mc = resolveModelSection(cfg.model as never);
  const net = createModel(mc, ag.random.key(cfg.seed));
  const V = (net.config as { vocabSize: number }).vocabSize;
  let s = 12345;
  const tokens = Int32Array.from({ length: 200_000 }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s % V;
  });
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "qkvflow-profile-step-"));
  const steps: number[] = [];
  kernels.clear();
  phaseMs.optimizer = 0;
  phaseMs.accumulate = 0;
  let last = performance.now();
  try {
    await new Trainer({
      model: net,
      config: cfg,
      trainTokens: tokens,
      evalSplit: null,
      runDir,
      decayPatterns: cfg.optimizer.decayPatterns ?? defaultDecayPatterns(mc.kind),
      log: () => {},
      progress: "none",
      handleSignals: false,
      afterStep: (info) => {
        const now = performance.now();
        steps.push(now - last);
        last = now;
        if (info.step === WARMUP) recording = record;
      },
    }).run();
  } finally {
    recording = false;
    fs.rmSync(runDir, { recursive: true, force: true });
  }
  return { steps: steps.slice(WARMUP), kernels: new Map(kernels), optimizer: phaseMs.optimizer, accumulate: phaseMs.accumulate };
}

function median(xs: readonly number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

async function profile(model: "diffeqformer" | "gpt2", ceiling: number): Promise<void> {
  const main = await trainRun(model, 0.1, true);
  const plain = await trainRun(model, 0, false);
  const step = main.steps.reduce((a, b) => a + b, 0) / TIMED;
  const per = (ms: number) => ms / TIMED;
  const get = (pred: (k: string) => boolean) => {
    let ms = 0,
      calls = 0,
      flops = 0;
    for (const [k, v] of main.kernels)
      if (pred(k)) {
        ms += v.ms;
        calls += v.calls;
        flops += v.flops;
      }
    return { ms: per(ms), calls: calls / TIMED, flops: flops / TIMED };
  };
  const head = get((k) => k.startsWith("linearCrossEntropy"));
  const body = get((k) => k === "matmul");
  const dropout = Math.max(0, median(main.steps) - median(plain.steps));
  const optimizer = per(main.optimizer);
  const accumulate = per(main.accumulate);
  const otherKernels = get((k) => k !== "matmul" && !k.startsWith("linearCrossEntropy"));
  const other = step - head.ms - body.ms - dropout - optimizer - accumulate;
  const pct = (ms: number) => `${((100 * ms) / step).toFixed(1)}%`;
  console.log(
    `\n### ${model}: ${TIMED} steps after ${WARMUP} warm-up; mean step ${step.toFixed(0)} ms (${Math.round((BATCH * SEQ) / (step / 1000))} tokens/s), ` +
      `median ${median(main.steps).toFixed(0)} ms; with dropout 0: median ${median(plain.steps).toFixed(0)} ms`,
  );
  console.log(
    `\n| part | ms per step | share of step | GFLOP per step | GFLOP/s | of ceiling (${ceiling.toFixed(1)} GFLOP/s) | ms at ceiling |`,
  );
  console.log("|---|---|---|---|---|---|---|");
  const row = (name: string, ms: number, flops: number) => {
    const g = flops / 1e9;
    const rate = flops > 0 ? g / (ms / 1000) : 0;
    console.log(
      `| ${name} | ${ms.toFixed(0)} | ${pct(ms)} | ${flops > 0 ? g.toFixed(2) : "-"} | ${flops > 0 ? rate.toFixed(1) : "-"} | ${flops > 0 ? `${((100 * rate) / ceiling).toFixed(0)}%` : "-"} | ${((1000 * g) / ceiling).toFixed(0)} |`,
    );
  };
  row(
    `head: fused linear-cross-entropy, 3 GEMMs (${Math.round(head.calls)} call${Math.round(head.calls) === 1 ? "" : "s"})`,
    head.ms,
    head.flops,
  );
  row(`body matmuls (${Math.round(body.calls)} calls)`, body.ms, body.flops);
  row("dropout (step with 0.1 − step with 0)", dropout, 0);
  row("optimizer (AdamW.step with clipping)", optimizer, 0);
  row("gradient read-back and accumulation", accumulate, 0);
  row("everything else", other, 0);
  console.log(
    `| step | ${step.toFixed(0)} | 100% | ${((head.flops + body.flops) / 1e9).toFixed(2)} | | | ${((head.flops + body.flops) / 1e6 / ceiling).toFixed(0)} |`,
  );
  console.log(
    `\nother kernels (not matmul, not the head) ${otherKernels.ms.toFixed(0)} ms per step; they include dropout's where and scaling, which the dropout row also counts. Largest:`,
  );
  const rows = [...main.kernels.entries()]
    .filter(([k]) => k !== "matmul" && !k.startsWith("linearCrossEntropy"))
    .sort((a, b) => b[1].ms - a[1].ms);
  for (const [k, v] of rows.slice(0, 8)) console.log(`  ${k}: ${per(v.ms).toFixed(1)} ms, ${Math.round(v.calls / TIMED)} calls`);
}

const ceiling = ceilingGflops();
console.log(
  `profile-step: ${os.cpus()[0]?.model ?? "?"}, ${getNumThreads()} kernel threads, Node ${process.version}; load average ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}; WebAssembly-SIMD ceiling (the GEMM kernel on 1024³ and 2048×128×8192, best of 8 each): ${ceiling.toFixed(1)} GFLOP/s`,
);
for (const m of which === "both" ? (["diffeqformer", "gpt2"] as const) : [which as "diffeqformer" | "gpt2"]) await profile(m, ceiling);
console.log(
  `\nload average after: ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
