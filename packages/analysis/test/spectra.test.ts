import { test } from "node:test";
import assert from "node:assert/strict";
import { linalg, random, tensor, type Tensor } from "@qkvflow/autograd";
import { createModel, type AnyModel } from "@qkvflow/models";
import { dynamicsOf, ffnSubset, productEigvals, slope, spectraOverDepth, spectrumStats, blockSpectra } from "../src/index.js";
import { assertComplexClose, maxAbsDiff, naiveMatmul } from "./helpers.js";

// Hand-built weights for E = 4, H = 2 (head dim D = 2): head h owns coordinates 2h, 2h+1 (P_h selects them).
// W_Q^h = P_h, W_K^h = P_h B_hᵀ  ⇒ QK_h = P_h B_h P_hᵀ, whose nonzero eigenvalues are eig(B_h);
// W_V^h = P_h C_h, W_O^h = P_hᵀ  ⇒ OV_h = P_h C_h P_hᵀ, nonzero eigenvalues eig(C_h);
// W_fc[:, 0:4] = G, W_proj[0:4, :] = I (other hidden units 0)  ⇒ W_fc W_proj = G.
const E = 4,
  H = 2,
  D = 2;

type M2 = [[number, number], [number, number]];
const rot = (s: number, th: number): M2 => [
  [s * Math.cos(th), -s * Math.sin(th)],
  [s * Math.sin(th), s * Math.cos(th)],
];
const tri = (a: number, b: number, c: number): M2 => [
  [a, b],
  [0, c],
];

interface LayerDesign {
  B: M2[]; // per head
  C: M2[]; // per head
  G: number[][]; // 4×4
}

function designLayer(l: number): LayerDesign {
  return {
    B: [rot(0.5 + l, 0.3 + 0.2 * l), rot(1.5 - 0.25 * l, 2.0)],
    C: [tri(0.7 + 0.1 * l, 0.4, -0.2), tri(-1.1, 2.0, 0.3 * (l + 1))],
    G: [
      [0.9 * (l + 1), -0.4, 0, 0],
      [0.4, 0.9 * (l + 1), 0, 0],
      [0, 0, -0.6, 1.0],
      [0, 0, 0, 0.25 + l],
    ],
  };
}

/** Expected eigenvalues of the design. */
function expected(d: LayerDesign): { qk: [number, number][][]; ov: [number, number][][]; ffn: [number, number][] } {
  const eigRot = (m: M2): [number, number][] => {
    const s = Math.hypot(m[0][0], m[1][0]),
      th = Math.atan2(m[1][0], m[0][0]);
    return [
      [s * Math.cos(th), s * Math.sin(th)],
      [s * Math.cos(th), -s * Math.sin(th)],
    ];
  };
  const eigTri = (m: M2): [number, number][] => [
    [m[0][0], 0],
    [m[1][1], 0],
  ];
  const g = d.G;
  const s = Math.hypot(g[0][0], g[1][0]),
    th = Math.atan2(g[1][0], g[0][0]);
  return {
    qk: d.B.map(eigRot),
    ov: d.C.map(eigTri),
    ffn: [
      [s * Math.cos(th), s * Math.sin(th)],
      [s * Math.cos(th), -s * Math.sin(th)],
      [g[2][2], 0],
      [g[3][3], 0],
    ],
  };
}

/** c_attn [E, 3E], c_proj [E, E], c_fc [E, 4E], mlp c_proj [4E, E] of a design (row-major). */
function designWeights(
  d: LayerDesign,
  scaleQ = 1,
  scaleV = 1,
  scaleFc = 1,
): { cAttn: Float64Array; cProj: Float64Array; fc: Float64Array; proj: Float64Array } {
  const cAttn = new Float64Array(E * 3 * E),
    cProj = new Float64Array(E * E),
    fc = new Float64Array(E * 4 * E),
    proj = new Float64Array(4 * E * E);
  for (let h = 0; h < H; h++) {
    for (let a = 0; a < D; a++) {
      cAttn[(2 * h + a) * 3 * E + h * D + a] = scaleQ; // W_Q^h = P_h
      for (let b = 0; b < D; b++) {
        cAttn[(2 * h + a) * 3 * E + E + h * D + b] = d.B[h][b][a]; // W_K^h = P_h B_hᵀ
        cAttn[(2 * h + a) * 3 * E + 2 * E + h * D + b] = scaleV * d.C[h][a][b]; // W_V^h = P_h C_h
      }
      cProj[(h * D + a) * E + 2 * h + a] = 1; // W_O^h = P_hᵀ
    }
  }
  for (let i = 0; i < E; i++) {
    for (let j = 0; j < E; j++) fc[i * 4 * E + j] = scaleFc * d.G[i][j];
    proj[i * E + i] = 1;
  }
  return { cAttn, cProj, fc, proj };
}

const f64 = (a: Float64Array, shape: number[]): Tensor => tensor(a, { shape, dtype: "float64" });

function setParams(model: AnyModel, values: Record<string, Float64Array>): void {
  const cur = model.parameters();
  const next: Record<string, Tensor> = {};
  for (const [n, v] of Object.entries(values)) next[n] = f64(v, [...cur[n].shape]);
  model.setParameters(next);
}

test("GPT-2 per-layer spectra of hand-set QK, OV and FFN weights match their closed-form eigenvalues", () => {
  const L = 3;
  const model = createModel({ kind: "gpt2", vocabSize: 10, blockSize: 8, nEmbd: E, nHead: H, nLayer: L, dtype: "float64" }, random.key(1));
  const values: Record<string, Float64Array> = {};
  for (let l = 0; l < L; l++) {
    const w = designWeights(designLayer(l));
    values[`h.${l}.attn.c_attn.weight`] = w.cAttn;
    values[`h.${l}.attn.c_proj.weight`] = w.cProj;
    values[`h.${l}.mlp.c_fc.weight`] = w.fc;
    values[`h.${l}.mlp.c_proj.weight`] = w.proj;
  }
  setParams(model, values);
  for (const full of [false, true]) {
    const res = spectraOverDepth(dynamicsOf(model), { full });
    assert.deepEqual(
      res.points.map((p) => p.t),
      [1 / 3, 2 / 3, 1],
    );
    res.points.forEach((p, l) => {
      const want = expected(designLayer(l));
      for (let h = 0; h < H; h++) {
        assertComplexClose(p.qk[h], want.qk[h], 1e-9, `layer ${l} QK head ${h} (full=${full})`);
        assertComplexClose(p.ov[h], want.ov[h], 1e-9, `layer ${l} OV head ${h} (full=${full})`);
      }
      assertComplexClose(p.ffn, want.ffn, 1e-9, `layer ${l} FFN (full=${full})`);
      // Summary statistics against the designed values.
      const qkAbs = want.qk.map((hs) => Math.max(...hs.map(([re, im]) => Math.hypot(re, im))));
      const st = res.stats.qk[l];
      assert.ok(maxAbsDiff(st.radius, qkAbs) < 1e-9);
      assert.ok(Math.abs(st.maxAbs - Math.max(...qkAbs)) < 1e-9);
      const allOv = want.ov.flat();
      assert.ok(Math.abs(res.stats.ov[l].meanRe - allOv.reduce((s, z) => s + z[0], 0) / allOv.length) < 1e-9);
      assert.equal(res.stats.ov[l].fracPositiveRe, allOv.filter((z) => z[0] > 0).length / allOv.length);
    });
    // QK head-0 radius grows linearly in the layer index (0.5 + l), so its slope over t = (l+1)/3 is 3.
    assert.ok(Math.abs(res.trend.qk.radius[0] - 3) < 1e-9, `slope ${res.trend.qk.radius[0]}`);
  }
});

test("DiffEqFormer spectra at given t follow W(t) = B_W + h(t)·A with a hand-set hypernetwork", () => {
  const L = 4,
    d = 2,
    S = 2;
  const model = createModel(
    {
      kind: "diffeqformer",
      vocabSize: 10,
      blockSize: 8,
      nEmbd: E,
      nHead: H,
      nLayer: L,
      timeEmbedDim: d,
      sinusoidalDim: S,
      dtype: "float64",
    },
    random.key(2),
  );
  // Hypernetwork: lin1 maps e(t)[0] = t to unit 0, lin2 = identity, so h(t) = [silu(t), 0].
  const lin1 = new Float64Array((2 * S + 1) * d);
  lin1[0] = 1;
  const lin2 = new Float64Array([1, 0, 0, 1]);
  const zeros = (n: number) => new Float64Array(n);
  const base = designWeights(designLayer(0));
  const beta = 0.8,
    gamma = -0.5,
    delta = 1.3;
  // A_0 (first slice of f_W.weight) = the Q part scaled by beta and the V part by gamma; c_fc's A_0 = delta·G.
  const qOnly = designWeights(designLayer(0), 1, 0, 1).cAttn;
  const noV = designWeights(designLayer(0), 0, 0, 1).cAttn; // K only
  const vOnly = designWeights(designLayer(0), 0, 1, 1).cAttn.map((v, i) => v - noV[i]);
  const qPart = qOnly.map((v, i) => v - noV[i]);
  const aAttn = new Float64Array(d * E * 3 * E);
  for (let i = 0; i < E * 3 * E; i++) aAttn[i] = beta * qPart[i] + gamma * vOnly[i];
  const aFc = new Float64Array(d * E * 4 * E);
  for (let i = 0; i < E * 4 * E; i++) aFc[i] = delta * base.fc[i];
  const values: Record<string, Float64Array> = {};
  for (const m of ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]) {
    values[`block.${m}.lin1.weight`] = lin1;
    values[`block.${m}.lin1.bias`] = zeros(d);
    values[`block.${m}.lin2.weight`] = lin2;
    values[`block.${m}.lin2.bias`] = zeros(d);
  }
  values["block.attn.c_attn.f_W.bias"] = base.cAttn;
  values["block.attn.c_attn.f_W.weight"] = aAttn;
  values["block.attn.c_proj.f_W.bias"] = base.cProj;
  values["block.attn.c_proj.f_W.weight"] = zeros(d * E * E);
  values["block.mlp.c_fc.f_W.bias"] = base.fc;
  values["block.mlp.c_fc.f_W.weight"] = aFc;
  values["block.mlp.c_proj.f_W.bias"] = base.proj;
  values["block.mlp.c_proj.f_W.weight"] = zeros(d * 4 * E * E);
  setParams(model, values);
  const silu = (t: number) => t / (1 + Math.exp(-t));
  const want = expected(designLayer(0));
  const scale = (zs: [number, number][], c: number): [number, number][] => zs.map(([re, im]) => [c * re, c * im]);
  const check = (t: number, p: ReturnType<typeof spectraOverDepth>["points"][number]) => {
    const s = silu(t);
    for (let h = 0; h < H; h++) {
      assertComplexClose(p.qk[h], scale(want.qk[h], 1 + beta * s), 1e-9, `t=${t} QK head ${h}`);
      assertComplexClose(p.ov[h], scale(want.ov[h], 1 + gamma * s), 1e-9, `t=${t} OV head ${h}`);
    }
    assertComplexClose(p.ffn, scale(want.ffn, 1 + delta * s), 1e-9, `t=${t} FFN`);
  };
  const times = [0, 0.1, 0.55, 1, 2.5];
  const res = spectraOverDepth(dynamicsOf(model), { times });
  assert.deepEqual(
    res.points.map((p) => p.t),
    times,
  );
  res.points.forEach((p, i) => check(times[i], p));
  // Default: the forward grid t_i = (i+1)/L, marked with its step index.
  const grid = spectraOverDepth(dynamicsOf(model));
  assert.deepEqual(
    grid.points.map((p) => p.t),
    [0.25, 0.5, 0.75, 1],
  );
  assert.deepEqual(
    grid.points.map((p) => p.index),
    [0, 1, 2, 3],
  );
  grid.points.forEach((p) => check(p.t, p));
  // QK spectral radius of head 0 is 0.5·(1 + beta·silu(t)): compare the slope with the least-squares slope of that curve.
  const r0 = grid.points.map((p) => 0.5 * (1 + beta * silu(p.t)));
  assert.ok(
    Math.abs(
      grid.trend.qk.radius[0] -
        slope(
          grid.points.map((p) => p.t),
          r0,
        ),
    ) < 1e-9,
  );
  // Spectra of a grid twice as fine (another step count) use its own grid.
  assert.deepEqual(
    spectraOverDepth(dynamicsOf(model, { steps: 8 })).points.map((p) => p.t),
    [1, 2, 3, 4, 5, 6, 7, 8].map((i) => i / 8),
  );
  assert.throws(
    () =>
      spectraOverDepth(
        dynamicsOf(createModel({ kind: "gpt2", vocabSize: 10, blockSize: 8, nEmbd: E, nHead: H, nLayer: 2 }, random.key(0))),
        { times: [0.5] },
      ),
    /fixed layers/,
  );
});

test("product eigenvalues: the reduced k×k problem equals the full m×m one and autograd's linalg.eigvals", () => {
  const m = 7,
    k = 3;
  const a = Float64Array.from(random.normal(random.key(5), [m * k], { dtype: "float64" }).data());
  const b = Float64Array.from(random.normal(random.key(6), [k * m], { dtype: "float64" }).data());
  const red = productEigvals(a, b, m, k, false);
  const full = productEigvals(a, b, m, k, true);
  assert.equal(red.re.length, k);
  assertComplexClose(
    red,
    full.re.map((r, i) => [r, full.im[i]]),
    1e-10,
    "reduced vs full",
  );
  const ev = linalg.eigvals(f64(naiveMatmul(a, b, m, k, m), [m, m]));
  const re = Array.from(ev.re.data()),
    im = Array.from(ev.im.data());
  // the m − k smallest are (numerically) zero
  const order = re.map((_, i) => i).sort((x, y) => Math.hypot(re[y], im[y]) - Math.hypot(re[x], im[x]));
  for (const i of order.slice(k)) assert.ok(Math.hypot(re[i], im[i]) < 1e-10);
  assertComplexClose(
    red,
    order.slice(0, k).map((i) => [re[i], im[i]]),
    1e-10,
    "reduced vs linalg.eigvals",
  );
});

test("FFN subset: drawn from all 4E hidden units, reproducible, and the spectrum is that of W_fc[:, S] W_proj[S, :]", () => {
  const hidden = 4 * E;
  const seen = new Set<number>();
  for (let seed = 0; seed < 20; seed++) {
    const s = ffnSubset(hidden, E, seed);
    assert.equal(new Set(s).size, E);
    for (const u of s) {
      assert.ok(Number.isInteger(u) && u >= 0 && u < hidden);
      seen.add(u);
    }
    assert.deepEqual(ffnSubset(hidden, E, seed), s);
  }
  // The reference drew from 0..E−1 only; here units ≥ E must appear.
  assert.ok(
    [...seen].some((u) => u >= E),
    "no unit ≥ E was ever drawn",
  );
  assert.throws(() => ffnSubset(hidden, hidden + 1), /ffnSubset: r = 17/);
  const model = createModel({ kind: "gpt2", vocabSize: 10, blockSize: 8, nEmbd: E, nHead: H, nLayer: 1, dtype: "float64" }, random.key(3));
  const dm = dynamicsOf(model);
  const w = dm.stepWeights()[0];
  const subset = [1, 6, 11, 15];
  const got = blockSpectra(w, H, { subset }).ffn;
  const fc = w.fcW.data(),
    pr = w.mlpProjW.data();
  const fcS = new Float64Array(E * 4),
    prS = new Float64Array(4 * E);
  for (let i = 0; i < E; i++) subset.forEach((u, j) => (fcS[i * 4 + j] = fc[i * hidden + u]));
  subset.forEach((u, j) => {
    for (let c = 0; c < E; c++) prS[j * E + c] = pr[u * E + c];
  });
  const ev = linalg.eigvals(f64(naiveMatmul(fcS, prS, E, 4, E), [E, E]));
  assertComplexClose(
    got,
    Array.from(ev.re.data()).map((r, i) => [r, ev.im.data()[i]]),
    1e-12,
    "subset FFN",
  );
  const res = spectraOverDepth(dm, { ffnUnits: 5, seed: 3 });
  assert.deepEqual(res.ffnSubset, ffnSubset(hidden, 5, 3));
  assert.equal(res.points[0].ffn.re.length, 4);
});

test("spectrumStats and slope on known values", () => {
  const st = spectrumStats([
    { re: [3, -1, 0], im: [4, 0, 0] },
    { re: [0.5, 0.5], im: [1, -1] },
  ]);
  assert.deepEqual(st.radius, [5, Math.hypot(0.5, 1)]);
  assert.equal(st.maxAbs, 5);
  // the exact zero is not counted
  assert.ok(Math.abs(st.meanAbs - (5 + 1 + 2 * Math.hypot(0.5, 1)) / 4) < 1e-12);
  assert.ok(Math.abs(st.meanRe - (3 - 1 + 0.5 + 0.5) / 4) < 1e-12);
  assert.equal(st.fracPositiveRe, 3 / 4);
  assert.ok(Math.abs(slope([0, 1, 2, 3], [1, 3, 5, 7]) - 2) < 1e-12);
  assert.equal(slope([1], [2]), 0);
});

test("linalg.qr (positive) as used for re-orthonormalisation: QR = A, QᵀQ = I, R upper triangular with diag ≥ 0", () => {
  const n = 5;
  const a = random.normal(random.key(9), [2, n, n], { dtype: "float64" });
  const { q, r } = linalg.qr(a, { positive: true });
  const qd = q.data(),
    rd = r.data(),
    ad = a.data();
  for (let b = 0; b < 2; b++) {
    const Q = qd.slice(b * n * n, (b + 1) * n * n),
      R = rd.slice(b * n * n, (b + 1) * n * n);
    assert.ok(maxAbsDiff(naiveMatmul(Q, R, n, n, n), ad.slice(b * n * n, (b + 1) * n * n)) < 1e-12);
    const Qt = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Qt[j * n + i] = Q[i * n + j];
    const I = naiveMatmul(Qt, Q, n, n, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.ok(Math.abs(I[i * n + j] - (i === j ? 1 : 0)) < 1e-12);
    for (let i = 0; i < n; i++) {
      assert.ok(R[i * n + i] >= 0);
      for (let j = 0; j < i; j++) assert.equal(R[i * n + j], 0);
    }
  }
});
