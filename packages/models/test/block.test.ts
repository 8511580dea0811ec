import { test } from "node:test";
import assert from "node:assert/strict";
import { add, decodeSafetensors, encodeSafetensors, mul, noGrad, random, tensor, type Tensor } from "@qkvflow/autograd";
import {
  applyLoRA,
  blockFns,
  blockForward,
  blockUpdate,
  createModel,
  discretize,
  eulerGrid,
  isPaperEuler,
  modelFromSafetensors,
  modelToSafetensors,
  preset,
  upgradeModelConfig,
  validateConfig,
  CONFIG_METADATA_KEY,
  PAPER_EULER,
  type DiffEqFormer,
  type DiscretizedModel,
  type Gpt2Model,
  type ModelConfig,
  type StaticBlock,
} from "@qkvflow/models";
import { maxAbs, maxAbsDiff, perturbed, refGpt2Logits } from "./helpers.js";

const idsList = [
  [1, 5, 9, 13, 2, 7],
  [3, 3, 8, 1, 0, 60],
];
const ids = () => tensor(idsList, { dtype: "int32" });

function micro<M>(name: string, overrides: Record<string, unknown> = {}, seed = 3): M {
  const m = createModel(preset(name, { dtype: "float64", ...overrides }), random.key(seed));
  m.setParameters(perturbed(m.parameters(), seed + 10, 0.4));
  return m as M;
}

/** Gives every LoRA B a non-zero value so the adapters change the output. */
function liveAdapters(m: Gpt2Model | DiscretizedModel, seed: number): void {
  const p = m.parameters();
  const bs = Object.fromEntries(Object.entries(p).filter(([n]) => n.endsWith(".lora_B")));
  assert.ok(Object.keys(bs).length > 0);
  m.setParameters(perturbed(bs, seed, 0.5));
}

test("each GPT-2 and discretised layer is blockForward of its weights(); unmerged LoRA folded into weights() gives the adapter path's output", () => {
  const g = micro<Gpt2Model>("gpt2-micro");
  const d = discretize(micro<DiffEqFormer>("diffeqformer-micro"), 3);
  for (const m of [g, d]) {
    applyLoRA(m, { rank: 2, alpha: 3, key: random.key(4) });
    liveAdapters(m, 21);
    const x = m.embed(ids());
    const c = m.config;
    m.blocks.forEach((b: StaticBlock, i: number) => {
      const o = { nHead: c.nHead, arch: b.arch };
      const dt = m.depthSteps()[i].dt;
      // the module path runs x·W + (alpha/r)·(x·A)·B; the weight path applies W + (alpha/r)·A·B
      const viaModules = blockForward(x, b.fns(), { ...o, dt }).data();
      const viaWeights = blockForward(x, blockFns(b.weights(), c.layerNormEps), { ...o, dt }).data();
      assert.ok(maxAbsDiff(viaModules, viaWeights) < 1e-12, `${c.kind} layer ${i}`);
      // the layer is an Euler step of its residual update (GPT-2: x + g(x) with g = a + m, equal up to rounding)
      const euler = add(x, mul(blockUpdate(x, b.fns(), o), dt)).data();
      assert.ok(maxAbsDiff(viaModules, euler) < 1e-12, `${c.kind} layer ${i}: x + dt·g(x)`);
      const noAdapter = blockForward(x, blockFns({ ...b.weights(), qkvW: b.attn.c_attn.param("weight") }, c.layerNormEps), {
        ...o,
        dt,
      }).data();
      assert.ok(maxAbsDiff(viaModules, noAdapter) > 1e-3, "the adapters matter for this check");
    });
  }
  // Without adapters the GPT-2 blocks reproduce an independent plain-JavaScript reference.
  const plain = micro<Gpt2Model>("gpt2-micro", {}, 5);
  const want = idsList.map((s) => refGpt2Logits(plain.parameters(), s, plain.config.nLayer, plain.config.nHead)).flat(2);
  assert.ok(maxAbsDiff(plain.logits(ids()).data(), want) < 1e-10);
});

test("a sequential block has no step size; the block checks its input", () => {
  const g = micro<Gpt2Model>("gpt2-micro");
  const x = g.embed(ids());
  const f = g.blocks[0].fns();
  assert.throws(
    () => blockForward(x, f, { nHead: 2, arch: "sequential", dt: 0.5 }),
    /blockForward: dt = 0.5 for a sequential block; expected 1/,
  );
  assert.throws(
    () => blockUpdate(tensor([1, 2], { dtype: "float64" }), f, { nHead: 2, arch: "parallel" }),
    /blockUpdate: input \[2\]; expected \[B, T, E\]/,
  );
  assert.throws(() => blockUpdate(x, f, { nHead: 3, arch: "parallel" }), /blockUpdate: width 16 is not divisible by 3 heads/);
});

test("depth steps and the dynamics view follow the model's own forward pass", () => {
  const g = micro<Gpt2Model>("gpt2-micro");
  const o = micro<DiffEqFormer>("diffeqformer-micro");
  const d = discretize(o, 5);
  assert.deepEqual(g.depthSteps(), [
    { index: 0, t: 0.5, dt: 1 },
    { index: 1, t: 1, dt: 1 },
  ]);
  assert.deepEqual(
    d.depthSteps().map((s) => [s.t, s.dt]),
    eulerGrid(5).map((t) => [t, 1 / 5]),
  );
  assert.deepEqual(
    o.depthSteps().map((s) => [s.t, s.dt]),
    eulerGrid(3).map((t) => [t, 1 / 3]),
  );
  assert.deepEqual(
    o.depthSteps(6).map((s) => s.t),
    eulerGrid(6),
  );
  const viaSolverSteps = micro<DiffEqFormer>("diffeqformer-micro", { solver: { steps: 4 } });
  assert.equal(viaSolverSteps.depthSteps().length, 4);
  // another solver: the analysed grid falls back to nLayer steps
  assert.equal(micro<DiffEqFormer>("diffeqformer-micro", { solver: { method: "rk4", steps: 7 } }).depthSteps().length, 3);
  assert.throws(
    () => g.depthSteps(4),
    /depthSteps: option steps = 4 applies only to a DiffEqFormer; this model is 'gpt2' with fixed layers/,
  );
  // The view's trajectory is the model's forward: bit-identical for the Euler-scaled models in float64 ...
  for (const m of [o, d, viaSolverSteps]) {
    const dm = m.dynamics();
    const seq = idsList[0];
    const xs = noGrad(() => dm.trajectory(dm.embed(seq)));
    assert.equal(xs.length, dm.steps.length + 1);
    const own = noGrad(() => m.hidden(m.embed(tensor([seq], { dtype: "int32" })))).data();
    assert.deepEqual(Array.from(xs[xs.length - 1].data()), Array.from(own), m.config.kind);
    const logits = noGrad(() => dm.head(xs[xs.length - 1])).data();
    assert.deepEqual(Array.from(logits), Array.from(m.logits(tensor([seq], { dtype: "int32" })).data()));
  }
  // ... and for GPT-2 (x + g(x) against (x + a) + m) equal up to rounding.
  const dg = g.dynamics();
  const hg = noGrad(() => dg.trajectory(dg.embed(idsList[1])));
  const ownG = g.hidden(g.embed(tensor([idsList[1]], { dtype: "int32" }))).data();
  assert.ok(maxAbsDiff(hg[hg.length - 1].data(), ownG) < 1e-12 * Math.max(1, maxAbs(ownG)));
  // the view's vector field at a grid time is the model's vectorField
  const dm = o.dynamics({ steps: 4 });
  const x0 = dm.embed(idsList[0]);
  assert.deepEqual(Array.from(dm.update(x0, dm.stepWeights()[1]).data()), Array.from(o.vectorField(x0, 0.5).data()));
  // attention probabilities: causal rows that sum to 1
  const p = dm.attentionProbs(x0, dm.stepWeights()[0]).data();
  const T = idsList[0].length;
  for (let h = 0; h < 2; h++) {
    for (let q = 0; q < T; q++) {
      let s = 0;
      for (let k = 0; k < T; k++) {
        const v = p[(h * T + q) * T + k];
        if (k > q) assert.equal(v, 0);
        s += v;
      }
      assert.ok(Math.abs(s - 1) < 1e-14);
    }
  }
});

test("solver 'euler-right-time' is the paper's scheme X_{i+1} = X_i + dt·f(X_i, (i+1)/n); the former name 'euler' still loads", () => {
  const solverOf = (c: ModelConfig) => (c.kind === "diffeqformer" ? c.solver : null);
  assert.equal(PAPER_EULER, "euler-right-time");
  assert.equal(solverOf(validateConfig(preset("diffeqformer-micro")))?.method, PAPER_EULER);
  assert.deepEqual(solverOf(validateConfig({ ...preset("diffeqformer-micro"), solver: { method: "euler", steps: 4 } })), {
    method: PAPER_EULER,
    steps: 4,
  });
  assert.equal(solverOf(preset("diffeqformer-micro", { solver: { method: "euler" } }))?.method, PAPER_EULER);
  assert.equal(solverOf(preset("diffeqformer-micro", { solver: { method: "rk4" } }))?.method, "rk4");
  assert.ok(isPaperEuler("euler") && isPaperEuler(PAPER_EULER) && !isPaperEuler("rk4") && !isPaperEuler("constructor"));

  // What the name says, against a hand loop over the model's vector field.
  const m = micro<DiffEqFormer>("diffeqformer-micro", { solver: { steps: 4 } });
  const n = 4,
    dt = 1 / n;
  const x0 = m.embed(ids());
  let right: Tensor = x0,
    left: Tensor = x0;
  for (let i = 0; i < n; i++) {
    right = add(right, mul(m.vectorField(right, (i + 1) / n), dt));
    left = add(left, mul(m.vectorField(left, i / n), dt));
  }
  const h = m.hidden(x0).data();
  assert.ok(maxAbsDiff(h, right.data()) < 1e-12);
  assert.ok(maxAbsDiff(h, left.data()) > 1e-3, "the left-time (ordinary) Euler scheme differs");

  // A checkpoint written before the rename (config metadata with method 'euler') loads with the new name and
  // gives the same logits.
  const bytes = modelToSafetensors(m);
  const contents = decodeSafetensors(bytes);
  const cfg = JSON.parse(contents.metadata[CONFIG_METADATA_KEY]);
  assert.equal(cfg.solver.method, PAPER_EULER);
  cfg.solver.method = "euler";
  const oldBytes = encodeSafetensors(contents.tensors, { ...contents.metadata, [CONFIG_METADATA_KEY]: JSON.stringify(cfg) });
  assert.ok(decodeSafetensors(oldBytes).metadata[CONFIG_METADATA_KEY].includes('"method":"euler"'));
  const loaded = modelFromSafetensors(oldBytes) as DiffEqFormer;
  assert.equal(loaded.config.solver.method, PAPER_EULER);
  assert.deepEqual(Array.from(loaded.logits(ids()).data()), Array.from(m.logits(ids()).data()));
  // A stored configuration compared with a model's (e.g. on resume): only the former names are rewritten.
  assert.deepEqual(upgradeModelConfig(cfg), m.config);
  assert.equal(cfg.solver.method, "euler", "the stored object is not modified");
  const foreign = { kind: "tiny", solver: 3 };
  assert.equal(upgradeModelConfig(foreign), foreign);
  assert.equal(upgradeModelConfig(m.config), m.config);
});
