/**
 * Where one training step's time goes: times every CPU-backend kernel call during valueAndGrad of a model's
 * loss (forward + backward, no optimizer) and prints a table per kernel, after warm-up steps.
 *
 *   npx tsx scripts/profile-step.ts [--model diffeqformer-tiny|gpt2-tiny] [--embd 128] [--layers 4] [--heads 4]
 *                                   [--batch 16] [--seq 128] [--steps 3] [--threads N] [--dropout 0.1]
 *
 * `--dropout R` (default 0) trains with dropout R on embeddings and residual branches (a fresh key per step).
 * Data are synthetic token ids over the GPT-2 vocabulary (the cost does not depend on the values). The timings
 * wrap the backend's methods, so they include copying in and out of kernel memory and allocating outputs;
 * "outside kernels" is autodiff bookkeeping and op-level checks.
 */
import * as ag from "@qkvflow/autograd";
import { createModel, preset } from "@qkvflow/models";
import { CpuBackend } from "../packages/autograd/src/backend/cpu/cpu-backend.js";
import { setNumThreads } from "../packages/autograd/src/backend/cpu/kernels/gemm.js";

function parse(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!;
    if (!k.startsWith("--") || argv[i + 1] === undefined) throw new Error(`profile-step: bad argument '${k}'; expected --name value pairs`);
    out[k.slice(2)] = argv[i + 1]!;
  }
  return out;
}

function int(args: Record<string, string>, name: string, dflt: number): number {
  const v = args[name] === undefined ? dflt : Number(args[name]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`profile-step: --${name} is '${args[name]}'; expected a positive integer`);
  return v;
}

const args = parse(process.argv.slice(2));
const model = args.model ?? "diffeqformer-tiny";
const E = int(args, "embd", 128),
  L = int(args, "layers", 4),
  H = int(args, "heads", 4);
const B = int(args, "batch", 16),
  T = int(args, "seq", 128),
  steps = int(args, "steps", 3);
if (args.threads !== undefined) setNumThreads(int(args, "threads", 1));

const times = new Map<string, { ms: number; calls: number }>();
const proto = CpuBackend.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
for (const name of Object.getOwnPropertyNames(CpuBackend.prototype)) {
  const f = proto[name];
  if (name === "constructor" || name === "read" || typeof f !== "function") continue;
  proto[name] = function (this: unknown, ...a: unknown[]) {
    const t0 = performance.now();
    const r = f.apply(this, a);
    const dt = performance.now() - t0;
    const key = name === "unary" || name === "binary" || name === "reduce" ? `${name} ${String(a[0])}` : name;
    const e = times.get(key) ?? { ms: 0, calls: 0 };
    e.ms += dt;
    e.calls++;
    times.set(key, e);
    return r;
  };
}

const pdrop = args.dropout === undefined ? 0 : Number(args.dropout);
if (!(pdrop >= 0 && pdrop < 1)) throw new Error(`profile-step: --dropout is '${args.dropout}'; expected a rate in [0, 1)`);
const net = createModel(
  preset(model, { nEmbd: E, nHead: H, nLayer: L, blockSize: T, embdPdrop: pdrop, residPdrop: pdrop }),
  ag.random.key(0),
);
let stepKey = ag.random.key(1);
const V = net.config.vocabSize;
const inputs = ag.tensor(
  Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % V),
  { dtype: "int32", shape: [B, T] },
);
const targets = ag.tensor(
  Int32Array.from({ length: B * T }, (_, i) => (i * 104729 + 1) % V),
  { dtype: "int32", shape: [B, T] },
);
const params = net.parameters();
const step = ag.valueAndGrad((p: Record<string, ag.Tensor>) => {
  net.setParameters(p);
  return pdrop > 0 ? net.loss(inputs, targets, { key: stepKey, training: true }) : net.loss(inputs, targets);
});
console.log(`${model}: E ${E}, ${L} layers, ${H} heads, batch ${B} × seq ${T}, vocabulary ${V}; ${steps} steps (the first is warm-up)`);
let total = 0;
for (let s = 0; s < steps; s++) {
  if (s === 1) times.clear();
  stepKey = ag.random.foldIn(ag.random.key(1), s);
  const t0 = performance.now();
  step(params);
  const dt = performance.now() - t0;
  if (s >= 1) total += dt;
  console.log(`step ${s}: ${dt.toFixed(0)} ms`);
}
const counted = Math.max(1, steps - 1);
const rows = [...times.entries()].sort((a, b) => b[1].ms - a[1].ms);
const inKernels = rows.reduce((acc, [, v]) => acc + v.ms, 0);
console.log(`\n| kernel | ms per step | calls per step | share |\n|---|---|---|---|`);
for (const [k, v] of rows) {
  if (v.ms / counted < 0.05) continue;
  console.log(`| ${k} | ${(v.ms / counted).toFixed(1)} | ${Math.round(v.calls / counted)} | ${((100 * v.ms) / total).toFixed(1)}% |`);
}
console.log(`| outside kernels | ${((total - inKernels) / counted).toFixed(1)} | | ${((100 * (total - inKernels)) / total).toFixed(1)}% |`);
console.log(`\nmean step ${(total / counted).toFixed(0)} ms (${((B * T) / (total / counted / 1000)).toFixed(0)} tokens/s)`);
