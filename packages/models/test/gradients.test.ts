import { test } from "node:test";
import assert from "node:assert/strict";
import { random, tensor, valueAndGrad, type Key, type Tensor } from "@qkvflow/autograd";
import { createModel, discretize, preset, type AnyModel, type DiffEqFormer } from "@qkvflow/models";
import { lcg, maxAbs, maxAbsDiff, perturbed } from "./helpers.js";

const x = tensor(
  [
    [1, 5, 9, 13, 2],
    [3, 3, 8, 1, 0],
  ],
  { dtype: "int32" },
);
const y = tensor(
  [
    [5, 9, 13, 2, 4],
    [3, 8, 1, 0, 60],
  ],
  { dtype: "int32" },
);

/** Gradients the way the trainer computes them. */
function trainerGrads(model: AnyModel, opts: { key?: Key; training?: boolean }): { loss: number; grads: Record<string, Tensor> } {
  const all = model.parameters();
  const names = model.trainableNames();
  const trainable: Record<string, Tensor> = {};
  for (const n of names) trainable[n] = all[n];
  const [loss, grads] = valueAndGrad((p: Record<string, Tensor>) => {
    model.setParameters({ ...all, ...p });
    return model.loss(x, y, opts);
  })(trainable) as [Tensor, Record<string, Tensor>];
  model.setParameters(all);
  return { loss: loss.item(), grads };
}

/** Central finite differences at `perTensor` random coordinates of every trainable tensor. */
function fdCheck(model: AnyModel, opts: { key?: Key; training?: boolean }, perTensor: number, seed: number): number {
  const { grads } = trainerGrads(model, opts);
  const all = model.parameters();
  const r = lcg(seed);
  const h = 1e-5;
  let checked = 0;
  for (const name of model.trainableNames()) {
    const base = all[name];
    const g = grads[name].data();
    for (let j = 0; j < perTensor; j++) {
      const idx = Math.floor(((r() + 1) / 2) * base.size);
      const at = (delta: number) => {
        const a = Float64Array.from(base.data());
        a[idx] += delta;
        model.setParameters({ [name]: tensor(a, { shape: [...base.shape], dtype: "float64" }) });
        const v = model.loss(x, y, opts).item();
        model.setParameters({ [name]: base });
        return v;
      };
      const fd = (at(h) - at(-h)) / (2 * h);
      assert.ok(Math.abs(g[idx] - fd) <= 1e-7 + 1e-5 * Math.abs(fd), `${name}[${idx}]: autodiff ${g[idx]} vs finite difference ${fd}`);
      checked++;
    }
  }
  return checked;
}

test("GPT-2: loss gradients pass a float64 finite-difference spot check (with residual / embedding dropout on)", () => {
  const m = createModel(preset("gpt2-micro", { dtype: "float64", embdPdrop: 0.1, residPdrop: 0.2 }), random.key(1));
  m.setParameters(perturbed(m.parameters(), 21, 0.3));
  const n = fdCheck(m, { key: random.key(9), training: true }, 2, 3);
  assert.equal(n, 2 * Object.keys(m.parameters()).length);
});

test("DiffEqFormer: gradients of every parameter, hypernetworks included, pass a finite-difference spot check", () => {
  const m = createModel(preset("diffeqformer-micro", { dtype: "float64", residPdrop: 0.1 }), random.key(2)) as DiffEqFormer;
  m.setParameters(perturbed(m.parameters(), 22, 0.3));
  const { grads } = trainerGrads(m, {});
  for (const n of [
    "block.attn.c_attn.lin1.weight",
    "block.mlp.c_fc.lin2.bias",
    "block.mlp.c_proj.f_W.weight",
    "block.attn.c_proj.f_b",
    "block.ln_a.gamma",
    "block.ln_m.beta",
  ]) {
    assert.ok(maxAbs(grads[n].data()) > 1e-4, `${n} gets a non-trivial gradient`);
  }
  fdCheck(m, {}, 2, 4);
  fdCheck(m, { key: random.key(3), training: true }, 1, 5);
});

test("DiffEqFormer through an @qkvflow/ode solver (rk4) and the discretised model: finite-difference spot checks", () => {
  const m = createModel(
    preset("diffeqformer-micro", { dtype: "float64", solver: { method: "rk4", steps: 2 } }),
    random.key(4),
  ) as DiffEqFormer;
  m.setParameters(perturbed(m.parameters(), 23, 0.3));
  fdCheck(m, {}, 1, 6);
  const d = discretize(m, 2);
  fdCheck(d, {}, 2, 7);
});

test("gradient checkpointing gives the same loss and gradients", () => {
  for (const name of ["gpt2-micro", "diffeqformer-micro"]) {
    const plain = createModel(preset(name, { dtype: "float64" }), random.key(5));
    plain.setParameters(perturbed(plain.parameters(), 24, 0.3));
    const ck = createModel(preset(name, { dtype: "float64", gradientCheckpointing: true }), random.key(5));
    ck.setParameters(plain.parameters());
    const a = trainerGrads(plain, {}),
      b = trainerGrads(ck, {});
    assert.ok(Math.abs(a.loss - b.loss) < 1e-12, name);
    for (const n of Object.keys(a.grads)) assert.ok(maxAbsDiff(a.grads[n].data(), b.grads[n].data()) < 1e-10, `${name}: ${n}`);
  }
});
