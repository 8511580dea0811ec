/**
 * The PyTorch twin (python/qkvflow_torch) against qkvflow: for random weights (every parameter random, biases and
 * the hypernetworks' Γ, B included) of GPT-2, DiffEqFormer (also with solver.steps ≠ L and gradient checkpointing),
 * a discretised DiffEqFormer (discretised by qkvflow, and by the twin itself), a LoRA-adapted model and a float64
 * model, both engines read the same model file and compute logits, the loss (some targets ignored with −100) and
 * every trainable parameter's gradient on the same tokens. qkvflow is the reference; PyTorch computes
 * independently (its own kernels and autograd). All cases run in one Python process. Needs /usr/bin/python3 with
 * torch (skips with the reason otherwise, fails when QKVFLOW_REQUIRE_TORCH=1).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  decodeSafetensors,
  encodeSafetensors,
  random,
  rawToTensor,
  tensor,
  tensorsToRaw,
  valueAndGrad,
  type Tensor,
} from "@qkvflow/autograd";
import { applyLoRA, createModel, discretize, saveModelSync, type DiffEqFormer, type TransformerLM } from "@qkvflow/models";
import { tmpDir } from "./helpers/tmp.js";
import { runTwin, skipWithoutTorch } from "./helpers/torch-twin.js";

const skip = skipWithoutTorch();

/** Every parameter drawn at random (LayerNorm scales around 1), so no term of either engine is trivially zero. */
function randomize(model: TransformerLM, seed: number): void {
  const sd: Record<string, Tensor> = {};
  let i = 0;
  for (const [n, p] of Object.entries(model.parameters())) {
    const k = random.foldIn(random.key(seed), i++);
    const isNormScale = /(^|\.)ln_[a-z0-9]+\.weight$/.test(n);
    const std = n.endsWith("f_W.weight") ? 0.1 : 0.25;
    sd[n] = random.normal(k, p.shape, { std, mean: isNormScale ? 1 : 0, dtype: p.dtype as "float32" | "float64" });
  }
  model.loadStateDict(sd);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

interface Case {
  name: string;
  build: () => TransformerLM;
  /** Relative tolerance of logits (max |Δ| / max |logit|) and loss. */
  outTol: number;
  /** Relative tolerance of each gradient (max |Δ| / max |g|). */
  gradTol: number;
  /** The twin discretises the DiffEqFormer file to this many layers itself; qkvflow's `discretize` is the reference. */
  twinDiscretize?: number;
}

const micro = { vocabSize: 61, blockSize: 16, nEmbd: 16, nHead: 2 };
const F32_OUT = 2e-6;
const F32_GRAD = 1e-4;

const cases: Case[] = [
  { name: "gpt2", build: () => createModel({ kind: "gpt2", ...micro, nLayer: 3 }, random.key(1)), outTol: F32_OUT, gradTol: F32_GRAD },
  {
    name: "diffeqformer",
    build: () => createModel({ kind: "diffeqformer", ...micro, nLayer: 4, timeEmbedDim: 5, sinusoidalDim: 4 }, random.key(2)),
    outTol: F32_OUT,
    gradTol: F32_GRAD,
  },
  {
    name: "diffeqformer (solver.steps 6, gradient checkpointing)",
    build: () =>
      createModel(
        {
          kind: "diffeqformer",
          ...micro,
          nLayer: 3,
          timeEmbedDim: 4,
          sinusoidalDim: 3,
          gradientCheckpointing: true,
          solver: { method: "euler-right-time", steps: 6 },
        },
        random.key(3),
      ),
    outTol: F32_OUT,
    gradTol: F32_GRAD,
  },
  {
    name: "discretised diffeqformer (M = 5)",
    build: () => {
      const m = createModel(
        { kind: "diffeqformer", ...micro, nLayer: 3, timeEmbedDim: 4, sinusoidalDim: 4 },
        random.key(4),
      ) as DiffEqFormer;
      randomize(m, 40);
      return discretize(m, 5);
    },
    outTol: F32_OUT,
    gradTol: F32_GRAD,
  },
  {
    name: "the twin's own discretisation of a diffeqformer (M = 7) against qkvflow's",
    build: () => createModel({ kind: "diffeqformer", ...micro, nLayer: 3, timeEmbedDim: 4, sinusoidalDim: 4 }, random.key(7)),
    outTol: F32_OUT,
    gradTol: F32_GRAD,
    twinDiscretize: 7,
  },
  {
    name: "gpt2 with LoRA adapters (unmerged)",
    build: () => {
      const m = createModel({ kind: "gpt2", ...micro, nLayer: 2 }, random.key(5));
      return applyLoRA(m, { rank: 3, alpha: 6, targets: ["h.*.attn.*", "h.1.mlp.c_fc"], trainable: ["wpe.weight"], key: random.key(50) });
    },
    outTol: F32_OUT,
    gradTol: F32_GRAD,
  },
  {
    name: "diffeqformer in float64",
    build: () =>
      createModel({ kind: "diffeqformer", ...micro, nLayer: 3, timeEmbedDim: 4, sinusoidalDim: 4, dtype: "float64" }, random.key(6)),
    outTol: 1e-12,
    gradTol: 1e-10,
  },
];

interface Prepared {
  c: Case;
  names: string[];
  logits: ArrayLike<number>;
  loss: number;
  grads: Record<string, ArrayLike<number>>;
  out: string;
}

/** qkvflow's logits, loss and gradients of one case; writes the model and batch files for the twin. */
function prepare(
  c: Case,
  dir: string,
  i: number,
): { p: Prepared; job: { model: string; batch: string; out: string; discretize?: number } } {
  const source = c.build();
  randomize(source, 100 + i);
  const model = c.twinDiscretize === undefined ? source : discretize(source as DiffEqFormer, c.twinDiscretize);
  model.eval();
  const B = 3,
    T = 11;
  const V = model.config.vocabSize;
  const ids = Int32Array.from({ length: B * T }, (_, j) => (j * 37 + 11 + i) % V);
  const tg = Int32Array.from({ length: B * T }, (_, j) => (j % 7 === 3 ? -100 : (j * 23 + 5 + i) % V));
  const x = tensor(ids, { shape: [B, T], dtype: "int32" });
  const y = tensor(tg, { shape: [B, T], dtype: "int32" });
  const logits = model.logits(x, { training: false }).data() as ArrayLike<number>;
  const full = model.parameters();
  const names = model.trainableNames();
  const trainable = Object.fromEntries(names.map((n) => [n, full[n]!]));
  const f = (p: Record<string, Tensor>): Tensor => {
    model.setParameters({ ...full, ...p });
    return model.loss(x, y, { training: false });
  };
  const [lossT, g] = valueAndGrad(f)(trainable) as [Tensor, Record<string, Tensor>];
  model.setParameters(full);
  const job = {
    model: path.join(dir, `model-${i}.safetensors`),
    batch: path.join(dir, `batch-${i}.safetensors`),
    out: path.join(dir, `out-${i}.safetensors`),
    ...(c.twinDiscretize !== undefined ? { discretize: c.twinDiscretize } : {}),
  };
  saveModelSync(job.model, source);
  fs.writeFileSync(job.batch, encodeSafetensors(tensorsToRaw({ inputs: x, targets: y })));
  const grads = Object.fromEntries(names.map((n) => [n, g[n]!.data() as ArrayLike<number>]));
  return { p: { c, names, logits, loss: lossT.item(), grads, out: job.out }, job };
}

/** Compares one case's torch outputs with qkvflow's; returns a one-line report of the measured differences. */
function compare(p: Prepared): string {
  const { c, names } = p;
  const out = decodeSafetensors(new Uint8Array(fs.readFileSync(p.out))).tensors;
  const pt = (n: string): ArrayLike<number> => {
    const r = out[n];
    assert.ok(r !== undefined, `the twin wrote no '${n}'`);
    return rawToTensor(n, r).data() as ArrayLike<number>;
  };
  const report: string[] = [];
  const logitErr = maxAbsDiff(p.logits, pt("logits")) / maxAbs(p.logits);
  report.push(`logits rel ${logitErr.toExponential(2)}`);
  assert.ok(logitErr <= c.outTol, `logits differ: max |Δ| / max |logit| = ${logitErr}`);
  const lossErr = Math.abs(pt("loss")[0]! - p.loss) / Math.abs(p.loss);
  report.push(`loss rel ${lossErr.toExponential(2)}`);
  assert.ok(lossErr <= c.outTol, `loss ${p.loss} vs torch ${pt("loss")[0]}: relative difference ${lossErr}`);
  const gradNames = Object.keys(out)
    .filter((k) => k.startsWith("grad."))
    .map((k) => k.slice(5));
  assert.deepEqual(gradNames.sort(), [...names].sort(), "the twin's trainable parameters differ from qkvflow's");
  let worst = 0,
    worstName = "";
  for (const n of names) {
    const g = p.grads[n]!;
    const scale = maxAbs(g);
    assert.ok(scale > 0, `qkvflow's gradient of ${n} is zero; the comparison would prove nothing`);
    const e = maxAbsDiff(g, pt(`grad.${n}`)) / scale;
    if (e > worst) [worst, worstName] = [e, n];
    assert.ok(e <= c.gradTol, `gradient of ${n}: max |Δ| / max |g| = ${e} > ${c.gradTol}`);
  }
  report.push(`worst gradient rel ${worst.toExponential(2)} (${worstName}, ${names.length} tensors)`);
  return `${c.name}: ${report.join("; ")}`;
}

test("torch twin: logits, loss and every gradient agree with qkvflow", { skip, timeout: 180_000 }, async (t) => {
  const dir = tmpDir("qkvflow-twin-");
  const prepared = cases.map((c, i) => prepare(c, dir, i));
  const manifest = path.join(dir, "jobs.json");
  fs.writeFileSync(manifest, JSON.stringify(prepared.map((p) => p.job)));
  await runTwin("qkvflow_torch.equiv", ["--manifest", manifest]);
  for (const { p } of prepared) {
    await t.test(p.c.name, () => {
      console.log(`  ${compare(p)}`);
    });
  }
});
