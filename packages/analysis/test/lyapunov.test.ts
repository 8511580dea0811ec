import { test } from "node:test";
import assert from "node:assert/strict";
import { add, concat, jacobian, linalg, matmul, mul, random, reshape, sin, slice, square, tensor, type Tensor } from "@qkvflow/autograd";
import { createModel } from "@qkvflow/models";
import {
  dynamicsOf,
  fieldJacobianBlocks,
  kaplanYorke,
  modelFieldSteps,
  sentenceLyapunov,
  tokenLyapunov,
  trajectory,
  type FieldStep,
} from "../src/index.js";
import { maxAbsDiff } from "./helpers.js";

const f64 = (a: number[] | Float64Array, shape: number[]) =>
  tensor(a instanceof Float64Array ? a : Float64Array.from(a), { shape, dtype: "float64" });

/** The linear field x ↦ A x on states [B, 1, n] (rows are tokens' feature vectors, so x·Aᵀ). */
function linearField(A: number[][]): (x: Tensor) => Tensor {
  const n = A.length;
  const At = f64(
    A.flat().map((_, i) => A[i % n][Math.floor(i / n)]),
    [n, n],
  );
  return (x) => matmul(x, At);
}

function uniformSteps(field: (x: Tensor) => Tensor, T: number, n: number): FieldStep[] {
  return Array.from({ length: n }, (_, i) => ({ t: ((i + 1) * T) / n, dt: T / n, field }));
}

test("linear ODE with upper-triangular A: exponents are log(1 + dt·a_ii)/dt exactly, and a_ii within dt·max a²", () => {
  // With Q_0 = I, the product (I + dt·A)^n stays upper triangular, so QR returns diag (1 + dt·a_ii)^n at any
  // horizon: no finite-time transient, only the Euler bias log(1 + dt·a)/dt − a ≈ −dt·a²/2.
  const A = [
    [0.8, 0.5, -0.3, 0.2],
    [0, 0.1, 0.7, -0.4],
    [0, 0, -0.6, 0.9],
    [0, 0, 0, -1.5],
  ];
  const T = 1,
    n = 1000,
    dt = T / n;
  const res = tokenLyapunov(uniformSteps(linearField(A), T, n), f64([0.3, -0.2, 0.5, 0.1], [1, 1, 4]));
  assert.ok(Math.abs(res.totalTime - T) < 1e-9);
  const diag = A.map((r, i) => r[i]).sort((a, b) => b - a);
  const eulerExact = diag.map((a) => Math.log(1 + dt * a) / dt);
  assert.ok(maxAbsDiff(res.exponents[0], eulerExact) < 1e-9, `${res.exponents[0]} vs ${eulerExact}`);
  const tol = dt * 1.5 ** 2; // dt·max a² = 2.25e-3 bounds dt·a²/2 plus higher orders; well inside the stated 1e-2
  assert.ok(maxAbsDiff(res.exponents[0], diag) < tol);
  assert.ok(Math.abs(res.sumExponent[0] - diag.reduce((s, a) => s + a, 0)) < 4 * tol);
});

test("linear ODE with a complex pair and non-normal A: exponents → Re eig(A) over a long horizon", () => {
  // eig(A) = 0.515 ± 0.986i, −0.300, −1.230 (computed below with autograd's linalg.eigvals, an independent solver).
  // Errors: (i) the Euler map's exponents are log|1 + dt·λ|/dt = Re λ + dt(Im²λ − Re²λ)/2 + O(dt²), at most
  // dt·max|λ|²/2 ≈ 3.8e-3 here (dt = 5e-3); (ii) the finite-time transient of the QR method is O(log κ(V)/T) with V
  // the eigenvector matrix, a few 1e-3 for T = 100. Stated tolerance: 1e-2 against Re λ, and 3e-3 against the Euler
  // map's own asymptotic exponents (transient only).
  const A = [
    [0.5, -1, 0.2, 0],
    [1, 0.5, 0, 0.3],
    [0.1, 0, -0.3, 0.4],
    [0, 0.2, 0, -1.2],
  ];
  const T = 100,
    n = 20000,
    dt = T / n;
  const res = tokenLyapunov(uniformSteps(linearField(A), T, n), f64([1, 0, 0, 0], [1, 4]));
  const ev = linalg.eigvals(f64(A.flat(), [4, 4]));
  const re = Array.from(ev.re.data()),
    im = Array.from(ev.im.data());
  const wantRe = [...re].sort((a, b) => b - a);
  const wantEuler = re.map((r, i) => Math.log(Math.hypot(1 + dt * r, dt * im[i])) / dt).sort((a, b) => b - a);
  assert.ok(maxAbsDiff(res.exponents[0], wantEuler) < 3e-3, `${res.exponents[0]} vs Euler-map ${wantEuler}`);
  assert.ok(maxAbsDiff(res.exponents[0], wantRe) < 1e-2, `${res.exponents[0]} vs Re eig ${wantRe}`);
  // The two members of the complex pair share Re λ: the estimates agree with each other too.
  assert.ok(Math.abs(res.exponents[0][0] - res.exponents[0][1]) < 3e-3);
});

test("time grid and state convention: step i uses the state BEFORE the step and t_i (checked on a 1-D nonlinear field)", () => {
  // f(x, t) = sin(3t)·x², Jacobian 2·sin(3t)·x. Naive reference loop with X_i (pre-step) and t_i = (i+1)/n.
  const n = 12,
    x0 = 0.7;
  const steps: FieldStep[] = Array.from({ length: n }, (_, i) => {
    const t = (i + 1) / n;
    return { t, dt: 1 / n, field: (x: Tensor) => mul(square(x), sin(tensor(3 * t, { dtype: "float64" }))) };
  });
  const res = tokenLyapunov(steps, f64([x0], [1, 1, 1]), { keepSteps: true });
  let x = x0,
    s = 0,
    sOff = 0,
    xPost = x0;
  for (let i = 0; i < n; i++) {
    const t = (i + 1) / n,
      dt = 1 / n;
    s += Math.log(Math.abs(1 + dt * 2 * Math.sin(3 * t) * x));
    x = x + dt * Math.sin(3 * t) * x * x;
    // the reference code's pairing: post-step state with the left time i/n
    xPost = xPost + dt * Math.sin(3 * t) * xPost * xPost;
    sOff += Math.log(Math.abs(1 + dt * 2 * Math.sin((3 * i) / n) * xPost));
  }
  assert.ok(Math.abs(res.exponents[0][0] - s) < 1e-12, `${res.exponents[0][0]} vs ${s}`);
  assert.ok(Math.abs(s - sOff) > 1e-2, "the test must be able to tell the two conventions apart");
  assert.equal(res.logDiag!.length, n);
  assert.ok(Math.abs(res.logDiag!.reduce((acc, st) => acc + st[0][0], 0) - s) < 1e-12);
});

test("cross-token Jacobian blocks J_k = ∂f_j/∂x_k of a causal linear mixing field have the closed form C[j,k]·M_k", () => {
  // f(X)_j = Σ_{k ≤ j} C[j,k]·(M_k x_k)  on X [B, T, E]
  const T = 3,
    E = 3;
  const C = [
    [1, 0, 0],
    [0.5, -2, 0],
    [0.25, 1.5, -0.75],
  ];
  const Ms = [0, 1, 2].map((k) => Array.from({ length: E * E }, (_, i) => Math.sin(1 + i + 7 * k)));
  const field = (x: Tensor): Tensor => {
    const B = x.shape[0];
    const rows: Tensor[] = [];
    for (let j = 0; j < T; j++) {
      let acc: Tensor | null = null;
      for (let k = 0; k <= j; k++) {
        const xk = reshape(slice(x, [0, k, 0], [B, k + 1, E]), [B, E]);
        const Mt = f64(
          Ms[k].map((_, i) => Ms[k][(i % E) * E + Math.floor(i / E)]),
          [E, E],
        );
        const term = mul(matmul(xk, Mt), C[j][k]);
        acc = acc ? add(acc, term) : term;
      }
      rows.push(reshape(acc!, [B, 1, E]));
    }
    return concat(rows, 1);
  };
  const x = f64(
    Array.from({ length: T * E }, (_, i) => Math.cos(i)),
    [1, T, E],
  );
  for (const chunk of [undefined, 1, 2]) {
    const { blocks } = fieldJacobianBlocks(field, x, 2, chunk);
    assert.equal(blocks.length, 3);
    blocks.forEach((Jk, k) =>
      assert.ok(
        maxAbsDiff(
          Jk,
          Ms[k].map((v) => C[2][k] * v),
        ) < 1e-14,
        `chunk ${chunk} block ${k}`,
      ),
    );
  }
  const { blocks } = fieldJacobianBlocks(field, x, 1);
  assert.equal(blocks.length, 2);
  assert.ok(
    maxAbsDiff(
      blocks[1],
      Ms[1].map((v) => -2 * v),
    ) < 1e-14,
  );
});

test("transformer field: batched Jacobian blocks equal autograd's jacobian, and finite differences", () => {
  for (const kind of ["gpt2", "diffeqformer"] as const) {
    const cfg =
      kind === "gpt2"
        ? { kind, vocabSize: 20, blockSize: 8, nEmbd: 8, nHead: 2, nLayer: 2, initStd: 0.3 }
        : { kind, vocabSize: 20, blockSize: 8, nEmbd: 8, nHead: 2, nLayer: 2, timeEmbedDim: 3, sinusoidalDim: 2, initStd: 0.3 };
    const dm = dynamicsOf(createModel(cfg, random.key(4)));
    const ids = [3, 1, 4, 1, 5];
    const T = ids.length,
      E = 8,
      j = T - 1;
    const x = trajectory(dm, ids)[1];
    const w = dm.stepWeights()[1];
    const f = (v: Tensor) => dm.update(v, w);
    const { blocks, value } = fieldJacobianBlocks(f, x, j, 3);
    assert.ok(maxAbsDiff(value.data(), f(x).data()) < 1e-14);
    const full = jacobian((v: Tensor) => reshape(slice(f(v), [0, j, 0], [1, j + 1, E]), [E]), { mode: "fwd" })(x).data(); // [E, 1, T, E]
    for (let k = 0; k < T; k++) {
      for (let r = 0; r < E; r++)
        for (let c = 0; c < E; c++) {
          assert.ok(Math.abs(blocks[k][r * E + c] - full[r * T * E + k * E + c]) < 1e-12, `${kind} J_${k}[${r},${c}]`);
        }
    }
    // central finite difference of one entry
    const h = 1e-6,
      k = 1,
      r = 2,
      c = 5;
    const bump = (s: number) => {
      const d = Float64Array.from(x.data());
      d[k * E + c] += s;
      return f(f64(d, [1, T, E])).data()[j * E + r];
    };
    assert.ok(Math.abs((bump(h) - bump(-h)) / (2 * h) - blocks[k][r * E + c]) < 1e-6);
  }
});

test("sentenceLyapunov on a model: query = last token, shapes, and tokens after a causal query are not influenced", () => {
  const dm = dynamicsOf(
    createModel(
      { kind: "diffeqformer", vocabSize: 20, blockSize: 8, nEmbd: 8, nHead: 2, nLayer: 3, timeEmbedDim: 3, sinusoidalDim: 2, initStd: 0.3 },
      random.key(7),
    ),
  );
  const ids = [2, 7, 1, 8, 2, 8];
  const r = sentenceLyapunov(dm, ids);
  assert.equal(r.query, 5);
  assert.equal(r.exponents.length, 6);
  assert.ok(r.exponents.every((s) => s.length === 8 && s.every(Number.isFinite)));
  assert.ok(Math.abs(r.totalTime - 1) < 1e-12);
  // With query 2 the spectra of tokens 0..2 only depend on the prefix: same result as the prefix alone.
  const a = sentenceLyapunov(dm, ids, { query: 2 });
  const b = sentenceLyapunov(dm, ids.slice(0, 3));
  assert.ok(maxAbsDiff(a.exponents.flat(), b.exponents.flat()) < 1e-10);
  // The exponents follow from the field steps of the model (same grid): recompute through tokenLyapunov.
  const c = tokenLyapunov(modelFieldSteps(dm), dm.embed(ids));
  assert.deepEqual(c.maxExponent, r.maxExponent);
  assert.deepEqual(
    dm.steps.map((s) => s.t),
    [1 / 3, 2 / 3, 1],
  );
});

test("Kaplan–Yorke dimension on known spectra", () => {
  assert.equal(kaplanYorke([1, -0.5, -2]), 2 + 0.5 / 2);
  assert.equal(kaplanYorke([-2, -1]), 0);
  assert.equal(kaplanYorke([0.5, 0.2]), 2);
  // sorted 0.9, −0.3, −1.2: partial sums 0.9, 0.6, −0.6 → 2 + 0.6/1.2
  assert.ok(Math.abs(kaplanYorke([-0.3, 0.9, -1.2]) - 2.5) < 1e-12);
});
