/**
 * Wall time of one AdamW update (clipping, weight decay, bias corrections) of the tiny DiffEqFormer's parameters as the
 * Trainer runs it: the paper's tiny configuration (E 128, 4 layers, 4 heads, d_emb 20, S 16, vocabulary 50,257;
 * 10,618,184 float32 parameters in 44 tensors), fixed pseudo-random gradients, the trainer's decay patterns.
 *
 *   npx tsx scripts/optimizer-step.ts [--steps 12] [--threads N] [--portable 1]
 *   npx tsx scripts/optimizer-step.ts --trainer 3 [--threads N] [--portable 1]
 *
 * Prints the global norm's time (`globalNorm`, which the Trainer computes before the step) and `AdamW.step`'s, as the
 * median over the steps after the first (the first grows the kernel memory), the step's CPU time summed over all
 * threads (process.cpuUsage: on a busy machine, where wall times mostly measure waiting for a core, the work done),
 * and every step's time.
 * `--portable 1` runs the float64 JavaScript loop instead of the WebAssembly kernel. Between steps the script yields
 * to the event loop and drops the previous parameters, as the Trainer does.
 *
 * `--trainer N` instead trains the model through `Trainer` as scripts/profile-step.ts does (sequence 128, batch 16,
 * dropout 0.1, clipping at 1, synthetic token ids), 1 warm-up update and N timed ones, and prints the mean update time,
 * the mean `AdamW.step` time and its share of the update.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as ag from "@qkvflow/autograd";
import { AdamW, Trainer, defaultDecayPatterns, globalNorm, loadConfig, resolveModelSection } from "@qkvflow/train";
import { createModel } from "@qkvflow/models";
import { forcePortableKernels, setNumThreads } from "../packages/autograd/src/backend/cpu/kernels/gemm.js";

function parse(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!;
    if (!k.startsWith("--") || argv[i + 1] === undefined)
      throw new Error(`optimizer-step: bad argument '${k}'; expected --name value pairs`);
    out[k.slice(2)] = argv[i + 1]!;
  }
  return out;
}

const args = parse(process.argv.slice(2));
const int = (name: string, dflt: number, min: number): number => {
  const v = args[name] === undefined ? dflt : Number(args[name]);
  if (!Number.isInteger(v) || v < min) throw new Error(`optimizer-step: --${name} is '${args[name]}'; expected an integer >= ${min}`);
  return v;
};
const steps = int("steps", 12, 2);
if (args.threads !== undefined) setNumThreads(int("threads", 1, 1));
if (int("portable", 0, 0) === 1) forcePortableKernels(true);

const trainerSteps = args.trainer === undefined ? 0 : int("trainer", 1, 1);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const sets = { nEmbd: 128, nHead: 4, nLayer: 4, blockSize: 128, timeEmbedDim: 20, sinusoidalDim: 16 };
const cfg = loadConfig(path.join(root, "configs", "tiny-diffeqformer-wikitext2.json"), [
  ...Object.entries(sets).map(([k, v]) => `model.${k}=${v}`),
  "data.seqLen=128",
]);
const mc = resolveModelSection(cfg.model as never);
if (trainerSteps > 0) {
  await trainerRun(trainerSteps);
  process.exit(0);
}
let params: Record<string, ag.Tensor> = createModel(mc, ag.random.key(0)).parameters();
let seed = 12345;
const grads = Object.fromEntries(
  Object.entries(params).map(([n, p]) => {
    const g = new Float32Array(p.size);
    for (let i = 0; i < g.length; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      g[i] = 0.01 * (seed / 2 ** 32 - 0.5);
    }
    return [n, ag.tensor(g, { shape: [...p.shape] })];
  }),
);
const count = Object.values(params).reduce((s, p) => s + p.size, 0);
const opt = new AdamW({
  weightDecay: 0.1,
  maxGradNorm: 1,
  decayPatterns: cfg.optimizer.decayPatterns ?? defaultDecayPatterns(mc.kind),
});
const norm: number[] = [];
const step: number[] = [];
const cpu: number[] = [];
for (let s = 0; s < steps; s++) {
  const t0 = performance.now();
  const gn = globalNorm(grads);
  const t1 = performance.now();
  const c0 = process.cpuUsage();
  params = opt.step(params, grads, 1e-3, { gradNorm: gn }).params;
  const c1 = process.cpuUsage(c0);
  step.push(performance.now() - t1);
  cpu.push((c1.user + c1.system) / 1000);
  norm.push(t1 - t0);
  await new Promise((r) => setImmediate(r));
}
const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};
console.log(
  `${count} parameters in ${Object.keys(params).length} tensors; ` +
    `globalNorm median ${median(norm.slice(1)).toFixed(1)} ms; AdamW.step median ${median(step.slice(1)).toFixed(1)} ms ` +
    `(CPU time of all threads ${median(cpu.slice(1)).toFixed(1)} ms); ` +
    `steps ${step.map((x) => x.toFixed(0)).join(" ")}`,
);

/** The Trainer on the tiny configuration: 1 warm-up update and `timed` timed ones; AdamW.step timed inside. */
async function trainerRun(timed: number): Promise<void> {
  const proto = AdamW.prototype as unknown as { step: (...a: unknown[]) => unknown };
  const step = proto.step;
  const optMs: number[] = [];
  proto.step = function (this: unknown, ...a: unknown[]) {
    const t0 = performance.now();
    try {
      return step.apply(this, a);
    } finally {
      optMs.push(performance.now() - t0);
    }
  };
  const train = loadConfig(path.join(root, "configs", "tiny-diffeqformer-wikitext2.json"), [
    ...Object.entries({ ...sets, embdPdrop: 0.1, residPdrop: 0.1 }).map(([k, v]) => `model.${k}=${v}`),
    "data.seqLen=128",
    "train.batchSize=16",
    "train.gradAccum=1",
    "train.evalEvery=0",
    "train.checkpointEvery=0",
    "optimizer.maxGradNorm=1",
    `train.steps=${1 + timed}`,
  ]);
  const model = createModel(resolveModelSection(train.model as never), ag.random.key(train.seed));
  let s = 12345;
  const tokens = Int32Array.from({ length: 200_000 }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % 50257;
  });
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "qkvflow-optimizer-step-"));
  const updates: number[] = [];
  let last = performance.now();
  try {
    await new Trainer({
      model,
      config: train,
      trainTokens: tokens,
      evalSplit: null,
      runDir,
      decayPatterns: train.optimizer.decayPatterns ?? defaultDecayPatterns(mc.kind),
      log: () => {},
      progress: "none",
      handleSignals: false,
      afterStep: () => {
        const now = performance.now();
        updates.push(now - last);
        last = now;
      },
    }).run();
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
  }
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const u = mean(updates.slice(1)),
    o = mean(optMs.slice(1));
  console.log(
    `trainer: ${timed} updates after 1 warm-up; update mean ${u.toFixed(0)} ms; AdamW.step mean ${o.toFixed(1)} ms ` +
      `(${optMs
        .slice(1)
        .map((x) => x.toFixed(0))
        .join(" ")}); share ${((100 * o) / u).toFixed(1)}%`,
  );
}
