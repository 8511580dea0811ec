import { test } from "node:test";
import assert from "node:assert/strict";
import { matmul, random, tensor, type Tensor } from "@qkvflow/autograd";
import { createModel } from "@qkvflow/models";
import {
  analysisPlots,
  analyzeModel,
  fmtNum,
  renderReport,
  runningChange,
  runningTokens,
  tokenLyapunov,
  type FieldStep,
} from "../src/index.js";

type M = number[][];
const mm = (a: M, b: M): M => a.map((r) => b[0]!.map((_, j) => r.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const transpose = (m: M): M => m[0]!.map((_, j) => m.map((r) => r[j]!));
const diag = (d: number[]): M => d.map((v, i) => d.map((_, j) => (i === j ? v : 0)));

function det(m: M): number {
  if (m.length === 1) return m[0]![0]!;
  if (m.length === 2) return m[0]![0]! * m[1]![1]! - m[0]![1]! * m[1]![0]!;
  return m[0]!.reduce((s, v, j) => s + (j % 2 ? -1 : 1) * v * det(m.slice(1).map((r) => r.filter((_, c) => c !== j))), 0);
}

/** The p-element subsets of 0..n−1. */
function subsets(n: number, p: number): number[][] {
  if (p === 0) return [[]];
  const out: number[][] = [];
  for (let i = p - 1; i < n; i++) for (const s of subsets(i, p - 1)) out.push([...s, i]);
  return out;
}

const sub = (m: M, rows: number[], cols: number[]): M => rows.map((r) => cols.map((c) => m[r]![c]!));

/**
 * log vol_p of the first p columns of Mⁱ = V diag(μⁱ) V⁻¹, from its p×p minors by Cauchy–Binet:
 * minor(I, 1..p) = Σ_K det V[I, K] · Π_{k∈K} μ_kⁱ · det V⁻¹[K, 1..p], and vol_p² = Σ_I minor(I)². Each term is a
 * product of closed-form factors, so this stays accurate when the columns of Mⁱ are nearly parallel.
 */
function logVol(V: M, Vi: M, mu: number[], i: number, p: number): number {
  if (p === 0) return 0;
  const n = V.length;
  const first = Array.from({ length: p }, (_, c) => c);
  let sq = 0;
  for (const I of subsets(n, p)) {
    let minor = 0;
    for (const K of subsets(n, p)) minor += det(sub(V, I, K)) * K.reduce((a, k) => a * mu[k]! ** i, 1) * det(sub(Vi, K, first));
    sq += minor * minor;
  }
  return 0.5 * Math.log(sq);
}

/** The linear field x ↦ A x on states [1, 1, n] (x·Aᵀ), on a uniform grid of n steps over [0, T]. */
function linearSteps(A: M, T: number, n: number): FieldStep[] {
  const E = A.length;
  const At = tensor(Float64Array.from(transpose(A).flat()), { shape: [E, E], dtype: "float64" });
  const field = (x: Tensor) => matmul(x, At);
  return Array.from({ length: n }, (_, i) => ({ t: ((i + 1) * T) / n, dt: T / n, field }));
}

test("running max exponent over T of a linear system equals the closed form from the matrix powers", () => {
  // A = V diag(λ) V⁻¹, so the Euler map is M = I + dt·A = V diag(μ) V⁻¹ (μ = 1 + dt·λ) and Mⁱ = V diag(μⁱ) V⁻¹ in
  // closed form. QR from Q₀ = I gives S_p(i) = log vol_p(Mⁱ e_1…e_p) − log vol_{p−1}(…) exactly (Gram–Schmidt), so
  // the running max exponent after i steps is max_p S_p(i) / (i·dt), computed here without any QR (volumes by Cauchy–Binet).
  const V: M = [
    [1, 0.8, -0.3],
    [0.4, 1, 0.9],
    [-0.6, 0.2, 1],
  ];
  const det3 = det(V);
  const Vi: M = V.map((_, i) =>
    V.map((__, j) => {
      const minor = V.filter((_r, r) => r !== j).map((row) => row.filter((_c, c) => c !== i));
      return (((i + j) % 2 ? -1 : 1) * det(minor)) / det3;
    }),
  );
  const lam = [0.7, 0.05, -0.5];
  const A = mm(mm(V, diag(lam)), Vi);
  const T = 20,
    n = 400,
    dt = T / n;
  const res = tokenLyapunov(linearSteps(A, T, n), tensor(Float64Array.from([0.2, -0.1, 0.4]), { shape: [1, 1, 3], dtype: "float64" }));
  const run = res.running;
  assert.equal(run.time.length, n);
  assert.equal(run.maxExponent.length, n);
  for (let i = 0; i < n; i++) {
    assert.ok(Math.abs(run.time[i]! - (i + 1) * dt) < 1e-12, `time ${i}`);
    const mu = lam.map((l) => 1 + dt * l);
    const want = Math.max(...[1, 2, 3].map((p) => logVol(V, Vi, mu, i + 1, p) - logVol(V, Vi, mu, i + 1, p - 1))) / run.time[i]!;
    assert.ok(
      Math.abs(run.maxExponent[i]![0]! - want) < 1e-9 * Math.max(1, Math.abs(want)),
      `step ${i}: ${run.maxExponent[i]![0]} vs ${want}`,
    );
  }
  // the last entry is the reported estimate, and the running estimate approaches log(μ₁)/dt as C₁/T with
  // C₁ = log(‖v₁‖·|(V⁻¹)₁₁|) (the transient of lyapunov-transient.test.ts, p = 1)
  assert.equal(run.maxExponent[n - 1]![0], res.maxExponent[0]);
  const C1 = Math.log(Math.hypot(V[0]![0]!, V[1]![0]!, V[2]![0]!) * Math.abs(Vi[0]![0]!));
  const asym = Math.log(1 + dt * lam[0]!) / dt;
  // (the neglected terms are of order (μ₂/μ₁)ⁱ / T)
  const ratio = (1 + dt * lam[1]!) / (1 + dt * lam[0]!);
  for (const i of [n / 2 - 1, n - 1])
    assert.ok(
      Math.abs(run.maxExponent[i]![0]! - (asym + C1 / run.time[i]!)) < (2 * ratio ** (i + 1)) / run.time[i]!,
      `transient at ${i}: ${run.maxExponent[i]![0]! - (asym + C1 / run.time[i]!)}`,
    );
  // runningChange reads the change over the second half of T, which for this system is C₁/T (from 1/(T/2) − 1/T)
  const sent = { query: 1, maxExponent: [res.maxExponent[0]!, 0], running: run };
  assert.deepEqual(runningTokens(sent), [0]);
  assert.ok(Math.abs(runningChange(sent) - Math.abs(C1) / T) < (4 * ratio ** (n / 2)) / T, `${runningChange(sent)} vs ${Math.abs(C1) / T}`);
});

test("runningTokens keeps the largest final exponents (query excluded) in position order", () => {
  const s = { query: 4, maxExponent: [0.1, 0.5, Number.NaN, 0.3, 9] };
  assert.deepEqual(runningTokens(s, 2), [1, 3]);
  assert.deepEqual(runningTokens(s, 10), [0, 1, 3]);
  assert.ok(Number.isNaN(runningChange({ ...s, running: { time: [1], maxExponent: [[0, 0, 0, 0, 0]] } })));
});

test("the report draws the running estimate over T of every sentence, with axes, units and a legend", () => {
  const m = createModel(
    { kind: "diffeqformer", vocabSize: 20, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 4, timeEmbedDim: 3, sinusoidalDim: 2, initStd: 0.3 },
    random.key(7),
  );
  const r = analyzeModel(m, {
    label: "ode",
    sequences: [
      [1, 5, 9, 13, 2, 7],
      [3, 4, 5],
    ],
  });
  for (const sent of r.sentences) {
    const run = sent.running!;
    assert.equal(run.time.length, 4);
    assert.ok(Math.abs(run.time[3]! - 1) < 1e-12);
    assert.deepEqual(run.maxExponent[3], sent.maxExponent);
  }
  const plots = analysisPlots(r);
  const svg = plots["ode-lyapunov-running-0"]!;
  assert.ok(svg.includes('class="plot lyapunov-running"'));
  assert.ok(svg.includes("integration time T") && svg.includes("[1/time]"));
  // one line per drawn token (all 5 source tokens), each with one marker per step, each named in the legend
  assert.equal((svg.match(/<path class="series"/g) ?? []).length, 5);
  assert.equal((svg.match(/<circle class="marker"/g) ?? []).length, 5 * 4);
  for (let k = 0; k < 5; k++) assert.ok(svg.includes(`>${k}: #`), `legend entry of token ${k}`);
  const html = renderReport([r]);
  assert.equal((html.match(/class="plot lyapunov-running"/g) ?? []).length, 2);
  const shown = [...html.matchAll(/class="running-change">([^<]*)</g)].map((m) => m[1]);
  assert.equal(shown.length, 2);
  // the printed change is |λ(T) − λ(T/2)| of the drawn tokens (4 steps: T/2 is step 1)
  r.sentences.forEach((sent, i) => {
    const run = sent.running!;
    const want = Math.max(...runningTokens(sent).map((k) => Math.abs(run.maxExponent[3]![k]! - run.maxExponent[1]![k]!)));
    assert.equal(runningChange(sent), want);
    assert.equal(shown[i], fmtNum(want));
  });
  // one step (a one-layer GPT-2): no change to read
  const g = createModel({ kind: "gpt2", vocabSize: 20, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 1 }, random.key(2));
  assert.match(renderReport([analyzeModel(g, { sequences: [[1, 2, 3]] })]), /class="running-change">– \(one step\)</);
});
