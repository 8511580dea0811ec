import { test } from "node:test";
import assert from "node:assert/strict";
import { layerNorm, random, tensor, type Tensor } from "@qkvflow/autograd";
import { listSolvers } from "@qkvflow/ode";
import { createModel, discretize, eulerGrid, preset, timeEmbedding, type DiffEqFormer, type SolverConfig } from "@qkvflow/models";
import {
  maxAbs,
  maxAbsDiff,
  perturbed,
  refDiffEqFormerLogits,
  refField,
  refTemporalLinear,
  refTemporalNorm,
  refTimeEmbedding,
} from "./helpers.js";

const S = 4;

function micro(dtype: "float32" | "float64", solver?: Partial<SolverConfig>, seed = 5, scale = 0.4): DiffEqFormer {
  const m = createModel(preset("diffeqformer-micro", { dtype, ...(solver ? { solver } : {}) }), random.key(7)) as DiffEqFormer;
  m.setParameters(perturbed(m.parameters(), seed, scale));
  return m;
}

const idsList = [
  [1, 5, 9, 13, 2, 7],
  [3, 3, 8, 1, 0, 60],
];
const ids = () => tensor(idsList, { dtype: "int32" });

test("time embedding e(t) = [t, sin(1000·t·f_k), cos(1000·t·f_k)], f_k = exp(−ln(10000)·k/S)", () => {
  const ts = [0, 0.25, 1 / 3, 1];
  const e = timeEmbedding(ts, S, "float64");
  assert.deepEqual(e.shape, [4, 2 * S + 1]);
  assert.ok(
    maxAbsDiff(
      e.data(),
      ts.flatMap((t) => refTimeEmbedding(t, S)),
    ) < 1e-12,
  );
  const d = e.data();
  // closed forms: e(0) = [0, 0…, 1…]; at t = 1 the first sinusoid is sin(1000), the last cos(1000·10000^(−3/4)) = cos(1)
  assert.deepEqual(Array.from(d.slice(0, 9)), [0, 0, 0, 0, 0, 1, 1, 1, 1]);
  assert.equal(d[27], 1);
  assert.ok(Math.abs(d[28] - Math.sin(1000)) < 1e-12);
  assert.ok(Math.abs(d[35] - Math.cos(1)) < 1e-12);
  assert.deepEqual(eulerGrid(4), [0.25, 0.5, 0.75, 1]);
});

test("TemporalLinear: batched W(t) = B_W + Σ h_k(t)·A_k and b(t) = h(t)·F_b match a per-time hand computation", () => {
  const m = micro("float64");
  const p = m.parameters();
  const ts = [0.1, 0.5, 0.9];
  const e = timeEmbedding(ts, S, "float64");
  for (const [mod, path] of [
    [m.block.attn.c_attn, "block.attn.c_attn"],
    [m.block.mlp.c_proj, "block.mlp.c_proj"],
  ] as const) {
    const { W, b } = mod.weightsAt(e);
    assert.deepEqual(W.shape, [3, mod.inFeatures, mod.outFeatures]);
    const want = ts.map((t) => refTemporalLinear(p, path, t, S));
    assert.ok(
      maxAbsDiff(
        W.data(),
        want.flatMap((w) => w.W.flat()),
      ) < 1e-12,
      path,
    );
    assert.ok(
      maxAbsDiff(
        b.data(),
        want.flatMap((w) => w.b),
      ) < 1e-12,
      path,
    );
  }
});

test("temporal LayerNorm: γ(t) = 1 + Γ·h_ln(t), β(t) = B·h_ln(t) give a t-dependent output matching a hand computation", () => {
  // At init Γ = B = 0, so the norm is the plain LayerNorm at every t.
  const fresh = createModel(preset("diffeqformer-micro", { dtype: "float64" }), random.key(1)) as DiffEqFormer;
  const e = timeEmbedding([0.2, 0.8], S, "float64");
  const init = fresh.block.ln_a.paramsAt(e);
  assert.ok(Array.from(init.scale.data()).every((v) => v === 1));
  assert.ok(Array.from(init.shift.data()).every((v) => v === 0));
  // With non-zero Γ and B, the scale and shift come from the norm's own hypernetwork h_ln(t).
  const m = micro("float64");
  const p = m.parameters();
  const E = m.config.nEmbd;
  const x = tensor(
    Array.from({ length: 3 * E }, (_, i) => Math.sin(0.7 * i) + 0.1 * i),
    { shape: [3, E], dtype: "float64" },
  );
  const outs: Float64Array[] = [];
  for (const t of [0.2, 0.8]) {
    const { scale, shift } = m.block.ln_m.paramsAt(timeEmbedding([t], S, "float64"));
    const ref = refTemporalNorm(p, "block.ln_m", t, S);
    assert.ok(maxAbsDiff(scale.data(), ref.g) < 1e-12 && maxAbsDiff(shift.data(), ref.b) < 1e-12);
    const y = layerNorm(x, scale.reshape([E]), shift.reshape([E]), 1e-5).data() as Float64Array;
    // hand LayerNorm with γ(t), β(t)
    const xs = x.data();
    const want: number[] = [];
    for (let r = 0; r < 3; r++) {
      const row = Array.from(xs.slice(r * E, (r + 1) * E));
      const mu = row.reduce((s, v) => s + v, 0) / E;
      const v = row.reduce((s, u) => s + (u - mu) ** 2, 0) / E;
      row.forEach((u, i) => want.push(((u - mu) / Math.sqrt(v + 1e-5)) * ref.g[i] + ref.b[i]));
    }
    assert.ok(maxAbsDiff(y, want) < 1e-12);
    outs.push(y);
  }
  assert.ok(maxAbsDiff(outs[0], outs[1]) > 1e-2, "the output depends on t");
});

test("the Euler forward (t_i = (i+1)/L) and the vector field match a naive reference implementation", () => {
  const m = micro("float64");
  const p = m.parameters();
  const got = m.logits(ids()).data();
  const want = idsList.map((s) => refDiffEqFormerLogits(p, s, m.config.nLayer, m.config.nHead, S)).flat(2);
  assert.ok(maxAbsDiff(got, want) < 1e-10, `max |Δ| = ${maxAbsDiff(got, want)}`);
  // f(X, t) at an arbitrary time
  const X = m.embed(ids());
  const f = m.vectorField(X, 0.37).data();
  const E = m.config.nEmbd;
  const Xs = X.data();
  const wantF = idsList.flatMap((s, b) =>
    refField(
      p,
      s.map((_, t) => Array.from(Xs.slice((b * s.length + t) * E, (b * s.length + t + 1) * E))),
      0.37,
      2,
      S,
    ).flat(),
  );
  assert.ok(maxAbsDiff(f, wantF) < 1e-11);
});

test("discretize(L) equals the ODE forward to float32 round-off; its layers hold W(t_i) and γ(t_i) from h_ln(t_i)", () => {
  const m = micro("float32");
  const L = m.config.nLayer;
  const d = discretize(m, L);
  assert.equal(d.config.kind, "discretized");
  assert.equal(d.config.nLayer, L);
  assert.equal(d.config.dt, 1 / L);
  const a = m.logits(ids()).data(),
    b = d.logits(ids()).data();
  assert.ok(maxAbs(a) > 1, "non-trivial logits");
  assert.ok(maxAbsDiff(a, b) <= 1e-6 * maxAbs(a), `max |Δ| = ${maxAbsDiff(a, b)}`);
  // with dropout on, the same key gives the same masks in both models
  const drop = createModel(preset("diffeqformer-micro", { residPdrop: 0.2, embdPdrop: 0.1 }), random.key(7)) as DiffEqFormer;
  drop.setParameters(m.parameters());
  const dd = discretize(drop, L);
  const o = { training: true, key: random.key(11) };
  const ta = drop.logits(ids(), o).data(),
    tb = dd.logits(ids(), o).data();
  assert.ok(maxAbsDiff(ta, a) > 1e-3, "dropout changes the output");
  assert.ok(maxAbsDiff(ta, tb) <= 1e-6 * maxAbs(ta), `training: max |Δ| = ${maxAbsDiff(ta, tb)}`);
  // layer 1 has the generated weights of t = 2/L, LayerNorms evaluated through their own hypernetworks
  const p = m.parameters(),
    q = d.parameters();
  const t = 2 / L;
  const w = refTemporalLinear(p, "block.attn.c_attn", t, S);
  assert.ok(maxAbsDiff(q["h.1.attn.c_attn.weight"].data(), w.W.flat()) < 1e-5);
  assert.ok(maxAbsDiff(q["h.1.attn.c_attn.bias"].data(), w.b) < 1e-5);
  const n = refTemporalNorm(p, "block.ln_a", t, S);
  assert.ok(maxAbsDiff(q["h.1.ln_a.weight"].data(), n.g) < 1e-5 && maxAbsDiff(q["h.1.ln_a.bias"].data(), n.b) < 1e-5);
  assert.ok(maxAbs(n.b) > 1e-2, "β(t) is non-trivial");
  assert.deepEqual(Array.from(q["wte.weight"].data()), Array.from(p["wte.weight"].data()));
});

test("discretize(M) for M ≠ L runs, differs from the ODE forward, and equals an M-step Euler reference", () => {
  const m = micro("float64");
  const base = m.logits(ids()).data();
  const p = m.parameters();
  for (const M of [2, 6]) {
    const d = discretize(m, M);
    assert.equal(Object.keys(d.parameters()).length, 4 + 12 * M);
    const got = d.logits(ids()).data();
    assert.ok(maxAbsDiff(got, base) > 1e-3, `M = ${M} differs from L = 3`);
    const want = idsList.map((s) => refDiffEqFormerLogits(p, s, M, 2, S)).flat(2);
    assert.ok(maxAbsDiff(got, want) < 1e-10, `M = ${M}: max |Δ| = ${maxAbsDiff(got, want)}`);
  }
});

/** Zeroes lin1's rows for the two fastest sinusoids (1000 and 100 rad per unit t) so the field is smooth in t. */
function smoothInTime(p: Record<string, Tensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [n, t] of Object.entries(p)) {
    if (!n.endsWith(".lin1.weight")) continue;
    const a = Float64Array.from(t.data());
    const d = t.shape[1];
    for (const row of [1, 2, 1 + S, 2 + S]) a.fill(0, row * d, (row + 1) * d);
    out[n] = tensor(a, { shape: [...t.shape], dtype: "float64" });
  }
  return out;
}

test("rk4 and dopri5 solvers work and converge as the step / tolerance shrinks", () => {
  assert.ok(listSolvers().includes("rk4") && listSolvers().includes("dopri5"));
  const params = { ...micro("float64").parameters() };
  Object.assign(params, smoothInTime(params));
  const run = (solver: Partial<SolverConfig>) => {
    const m = createModel(preset("diffeqformer-micro", { dtype: "float64", solver }), random.key(7)) as DiffEqFormer;
    m.setParameters(params);
    const l = m.logits(ids()).data();
    return { l, evals: m.lastEvaluations };
  };
  const ref = run({ method: "rk4", steps: 128 }).l;
  const errs = [4, 8, 16, 32].map((n) => maxAbsDiff(run({ method: "rk4", steps: n }).l, ref));
  for (let i = 1; i < errs.length; i++) assert.ok(errs[i] < errs[i - 1] / 8, `rk4 errors ${errs.join(", ")}`);
  const order = Math.log2(errs[2] / errs[3]);
  assert.ok(order > 3.5 && order < 4.8, `rk4 empirical order ${order}`);
  const euler = maxAbsDiff(run({ method: "euler", steps: 3 }).l, ref);
  assert.ok(euler > errs[0], "3 Euler steps are a coarse approximation of the ODE solution");
  const d = [1e-3, 1e-5, 1e-7].map((tol) => run({ method: "dopri5", rtol: tol, atol: tol }));
  const dErr = d.map((r) => maxAbsDiff(r.l, ref));
  assert.ok(dErr[0] > dErr[1] && dErr[1] > dErr[2] && dErr[2] < 1e-5, `dopri5 errors ${dErr.join(", ")}`);
  assert.ok(d[0].evals < d[1].evals && d[1].evals < d[2].evals, "tighter tolerances take more evaluations");
  const mid = [32, 64].map((n) => maxAbsDiff(run({ method: "midpoint", steps: n }).l, ref));
  const midOrder = Math.log2(mid[0] / mid[1]);
  assert.ok(midOrder > 1.5 && midOrder < 2.6, `midpoint empirical order ${midOrder} (errors ${mid.join(", ")})`);
});

test("an unknown solver name is reported with the registered ones", () => {
  const m = micro("float32", { method: "leapfrog-xyz" });
  assert.throws(() => m.logits(ids()), /unknown method 'leapfrog-xyz'.*rk4/);
});
