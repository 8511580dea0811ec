/**
 * The Rosenbrock method (Rodas3) on stiff problems: LU with partial pivoting and the differentiable linear
 * solve, convergence order on closed forms, L-stability, Robertson's kinetics and Van der Pol (μ = 1000)
 * against tight-tolerance scipy Radau references (bench/ode-scipy-reference.py), and gradients through the
 * implicit solver and through the adjoint method against closed forms and finite differences.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { grad, matmul, mul, reshape, sub, sum, tensor, type Tensor } from "@qkvflow/autograd";
import {
  ConstantStepSize,
  PIDController,
  luFactor,
  luSolve,
  luSolveTransposed,
  odeint,
  odeintAdjoint,
  odeintWithStats,
  tensorSpace,
  type ArrayField,
} from "../src/index.js";
import { f64, loglogSlope } from "./helpers.js";

test("LU with partial pivoting solves A x = b and Aᵀ x = b (residuals), pivoting through a zero leading entry; singular matrices are named", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 7 }), fc.integer({ min: 0, max: 1e6 }), (n, seed) => {
      let s = seed;
      const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
      const A = Array.from({ length: n * n }, rnd);
      A[0] = 0; // forces a row exchange in the first column when n > 1
      for (let i = 0; i < n; i++) A[i * n + i] += n > 1 && i === 0 ? 0 : 0.5 * Math.sign(A[i * n + i] || 1);
      if (n === 1) A[0] = 0.7;
      const b = Array.from({ length: n }, rnd);
      const lu = luFactor(A, n);
      const x = luSolve(lu, b),
        xt = luSolveTransposed(lu, b);
      let scale = 1;
      for (const v of A) scale = Math.max(scale, Math.abs(v));
      for (let i = 0; i < n; i++) {
        let r = -b[i],
          rt = -b[i];
        for (let j = 0; j < n; j++) {
          r += A[i * n + j] * x[j];
          rt += A[j * n + i] * xt[j];
        }
        const xs = Math.max(1, ...Array.from(x, Math.abs), ...Array.from(xt, Math.abs));
        assert.ok(Math.abs(r) <= 1e-10 * scale * xs * n && Math.abs(rt) <= 1e-10 * scale * xs * n, `n = ${n}: residuals ${r}, ${rt}`);
      }
    }),
    { numRuns: 60 },
  );
  assert.throws(() => luFactor([1, 2, 2, 4], 2), /luFactor: the matrix is singular or not finite \(no usable pivot in column 1 of 2/);
  assert.throws(() => luFactor([1, 2, 3], 2), /luFactor: matrix has 3 entries; expected 2×2 = 4/);
});

test("the implicit linear solve's VJP matches central differences (fast-check over W and b)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4 }),
      fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 32, maxLength: 32 }),
      (n, r) => {
        // the solve as odeint's tensor space runs it: W = shift·I − J, x = W⁻¹b
        const Jv = Array.from({ length: n * n }, (_, k) => r[k] * 0.5);
        const bv = Array.from({ length: n }, (_, k) => r[16 + k]);
        const wv = Array.from({ length: n }, (_, k) => r[24 + k] + 0.1);
        const shift = 2;
        const loss = (J: Tensor, b: Tensor): Tensor => {
          const solve = tensorSpace.factor({ J, like: [b] }, shift);
          return sum(mul(solve([b])[0], f64(wv)));
        };
        const [gJ, gb] = grad(loss, { argnums: [0, 1] })(f64(Jv, [n, n]), f64(bv)) as Tensor[];
        const lossAt = (J: number[], b: number[]) => loss(f64(J, [n, n]), f64(b)).item();
        const eps = 1e-6;
        const fd = (v: number[], k: number, at: (v: number[]) => number) => {
          const p = [...v],
            m = [...v];
          p[k] += eps;
          m[k] -= eps;
          return (at(p) - at(m)) / (2 * eps);
        };
        const gJv = gJ.data(),
          gbv = gb.data();
        for (let k = 0; k < n * n; k++) {
          const e = fd(Jv, k, (J) => lossAt(J, bv));
          assert.ok(Math.abs(gJv[k] - e) <= 1e-6 * (1 + Math.abs(e)), `∂/∂J[${k}]: ${gJv[k]} vs ${e}`);
        }
        for (let k = 0; k < n; k++) {
          const e = fd(bv, k, (b) => lossAt(Jv, b));
          assert.ok(Math.abs(gbv[k] - e) <= 1e-6 * (1 + Math.abs(e)), `∂/∂b[${k}]: ${gbv[k]} vs ${e}`);
        }
      },
    ),
    { numRuns: 25 },
  );
});

/** y' = Ay with A = [[a, b], [0, d]]: y(t) = expm(At)·y0 in closed form. */
function expmUpper(a: number, b: number, d: number, t: number): number[] {
  const ea = Math.exp(a * t),
    ed = Math.exp(d * t);
  return [ea, (b * (ea - ed)) / (a - d), 0, ed];
}
const STIFF = { a: -1000, b: 1, d: -1 };
const stiffPlain: ArrayField = (_t, y, dy) => {
  dy[0] = STIFF.a * y[0] + STIFF.b * y[1];
  dy[1] = STIFF.d * y[1];
};

for (const { method, order, counts2 } of [
  { method: "rodas3", order: 3, counts2: [10, 20, 40, 80] },
  // (Rodas4 on the Riccati problem: 4.36 on 10…80 steps, 4.24 on 20…160; below ~1e-12 rounding takes over)
  { method: "rodas4", order: 4, counts2: [20, 40, 80, 160] },
])
  test(`${method} converges with order ${order} (±0.25) on a stiff linear system (closed form) and on a nonlinear non-autonomous problem`, () => {
    const T = 1,
      y0 = [1, 2];
    const E = expmUpper(STIFF.a, STIFF.b, STIFF.d, T);
    const exact = [E[0] * y0[0] + E[1] * y0[1], E[3] * y0[1]];
    const hs: number[] = [],
      errs: number[] = [];
    for (const n of [8, 16, 32, 64]) {
      const y = odeint(stiffPlain, y0, [0, T], { method, stepSizeController: new ConstantStepSize({ steps: n }) })[1];
      hs.push(T / n);
      errs.push(Math.hypot(y[0] - exact[0], y[1] - exact[1]));
    }
    const slope = loglogSlope(hs, errs);
    console.log(
      `${method}, stiff linear system (eigenvalues ${STIFF.a}, ${STIFF.d}, h·|λ| up to ${(1000 * hs[0]).toFixed(0)}): errors ${errs.map((e) => e.toExponential(2)).join(", ")}, slope ${slope.toFixed(3)}`,
    );
    assert.ok(Math.abs(slope - order) <= 0.25, `slope ${slope}`);
    // y' = −2t·y² + (cos t − sin t stays out): y = 1/(1 + t²), with f depending on t (the f_t term matters)
    const ric: ArrayField = (t, y) => [-2 * t * y[0] * y[0]];
    const hs2: number[] = [],
      errs2: number[] = [];
    for (const n of counts2) {
      const y = odeint(ric, [1], [0, 2], { method, stepSizeController: new ConstantStepSize({ steps: n }) })[1];
      hs2.push(2 / n);
      errs2.push(Math.abs(y[0] - 0.2));
    }
    const slope2 = loglogSlope(hs2, errs2);
    console.log(`${method}, Riccati: errors ${errs2.map((e) => e.toExponential(2)).join(", ")}, slope ${slope2.toFixed(3)}`);
    assert.ok(Math.abs(slope2 - order) <= 0.25, `slope ${slope2}`);
  });

for (const { method, order } of [
  { method: "rodas3", order: 3 },
  { method: "rodas4", order: 4 },
])
  test(`${method} is L-stable: one step on y' = λy damps to R(hλ) → 0 as hλ → −∞, |R| < 1 on the left half-plane, R(z) = eᶻ + O(z^${order + 1})`, () => {
    const R = (z: number) =>
      odeint((_t, y) => [z * y[0]], [1], [0, 1], { method, stepSizeController: new ConstantStepSize({ steps: 1 }) })[1][0];
    for (const z of [-1e3, -1e6, -1e10]) assert.ok(Math.abs(R(z)) < 10 / Math.abs(z), `R(${z}) = ${R(z)}`);
    for (const z of [-0.5, -2, -10, -100]) assert.ok(Math.abs(R(z)) < 1, `R(${z}) = ${R(z)}`);
    const e1 = Math.abs(R(-0.1) - Math.exp(-0.1)),
      e2 = Math.abs(R(-0.05) - Math.exp(-0.05));
    assert.ok(
      Math.abs(Math.log2(e1 / e2) - (order + 1)) < 0.3,
      `local error order ${Math.log2(e1 / e2)}; expected ${order + 1} (order ${order})`,
    );
  });

test("Robertson's kinetics to t = 1e11 (rtol 1e-6, small atol on y₂) against scipy's Radau at rtol 1e-12", () => {
  // scipy 1.17.1 Radau, rtol 1e-12, atol [1e-14, 1e-20, 1e-14], analytic Jacobian (bench/ode-scipy-reference.py)
  const ts = [0, 40, 4e5, 1e11];
  const ref = [
    [1, 0, 0],
    [0.7158270687193865, 9.185534764556822e-6, 0.28416374574584735],
    [0.004938274520980869, 1.984994087954802e-8, 0.9950617056290774],
    [2.0833401438845025e-8, 8.333360747067619e-14, 0.9999999791665148],
  ];
  const rob: ArrayField = (_t, y, d) => {
    d[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
    d[1] = 0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] * y[1];
    d[2] = 3e7 * y[1] * y[1];
  };
  const jac = (_t: number, y: Float64Array) => [
    [-0.04, 1e4 * y[2], 1e4 * y[1]],
    [0.04, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]],
    [0, 6e7 * y[1], 0],
  ];
  const c = new PIDController({ rtol: 1e-6, atol: [1e-10, 1e-14, 1e-10], maxSteps: 20000 });
  for (const [label, opts] of [
    ["user Jacobian", { jac }],
    ["finite-difference Jacobian", {}],
  ] as const) {
    const r = odeintWithStats(rob, [1, 0, 0], ts, { method: "rodas3", stepSizeController: c, denseOutput: false, ...opts });
    const rel = ts.map((_, i) => Math.max(...[0, 1, 2].map((k) => (i === 0 ? 0 : Math.abs(r.ys[i][k] - ref[i][k]) / Math.abs(ref[i][k])))));
    console.log(
      `Robertson, Rodas3 (${label}): ${JSON.stringify(r.stats)}, largest relative error per output ${rel.map((e) => e.toExponential(1)).join(", ")}`,
    );
    for (let i = 1; i < ts.length; i++) assert.ok(rel[i] < 2e-4, `${label}: t = ${ts[i]}: relative error ${rel[i]}`);
    // mass conservation y₁ + y₂ + y₃ = 1 (a linear invariant, kept by the method up to rounding)
    for (const y of r.ys) assert.ok(Math.abs(y[0] + y[1] + y[2] - 1) < 1e-12);
    assert.ok(r.stats.accepted < 1000, `${r.stats.accepted} steps`);
    // one Jacobian per step attempt that did not follow a rejection: rejected retries reuse it
    assert.equal(r.stats.njev, r.stats.accepted);
    assert.equal(r.stats.nlu, r.stats.accepted + r.stats.rejected);
  }
});

test("Van der Pol with μ = 1000 on [0, 3000] against scipy's Radau at rtol 1e-12; a user Jacobian and finite differences agree", () => {
  // scipy 1.17.1 Radau, rtol = atol = 1e-12, analytic Jacobian (bench/ode-scipy-reference.py)
  const ref = [
    [-1.8636462548108763, 0.0007535430865402249],
    [-1.5106069367599941, 0.0011783800006990792],
  ];
  const MU = 1000;
  const vdp: ArrayField = (_t, y, d) => {
    d[0] = y[1];
    d[1] = MU * (1 - y[0] * y[0]) * y[1] - y[0];
  };
  const jac = (_t: number, y: Float64Array, J: Float64Array) => {
    J[0] = 0;
    J[1] = 1;
    J[2] = -2 * MU * y[0] * y[1] - 1;
    J[3] = MU * (1 - y[0] * y[0]);
  };
  const c = new PIDController({ rtol: 1e-6, atol: 1e-6, maxSteps: 20000 });
  const a = odeintWithStats(vdp, [2, 0], [0, 1000, 3000], { method: "rodas3", stepSizeController: c, jac });
  const b = odeintWithStats(vdp, [2, 0], [0, 1000, 3000], { method: "rodas3", stepSizeController: c });
  for (const [label, r] of [
    ["user Jacobian", a],
    ["finite differences", b],
  ] as const) {
    const err = [1, 2].map((i) => Math.abs(r.ys[i][0] - ref[i - 1][0]));
    console.log(
      `Van der Pol μ = 1000, Rodas3 (${label}): ${JSON.stringify(r.stats)}, |y₁ − ref| at t = 1000, 3000: ${err.map((e) => e.toExponential(2)).join(", ")}`,
    );
    for (const e of err) assert.ok(e < 1e-4, `${label}: error ${e}`);
  }
  assert.ok(b.stats.nfev >= a.stats.nfev + 2 * (b.stats.njev ?? 0), "finite differences cost n evaluations per Jacobian");
});

test("Rodas4 on Robertson's kinetics and Van der Pol μ = 1000: within the tolerances of scipy Radau references, in fewer steps than Rodas3", () => {
  const ts = [0, 40, 4e5, 1e11];
  const ref = [
    [1, 0, 0],
    [0.7158270687193865, 9.185534764556822e-6, 0.28416374574584735],
    [0.004938274520980869, 1.984994087954802e-8, 0.9950617056290774],
    [2.0833401438845025e-8, 8.333360747067619e-14, 0.9999999791665148],
  ];
  const rob: ArrayField = (_t, y, d) => {
    d[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
    d[1] = 0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] * y[1];
    d[2] = 3e7 * y[1] * y[1];
  };
  const rtol = 1e-6,
    atol = [1e-10, 1e-14, 1e-10];
  const run = (method: string) =>
    odeintWithStats(rob, [1, 0, 0], ts, {
      method,
      stepSizeController: new PIDController({ rtol, atol, maxSteps: 20000 }),
      denseOutput: false,
    });
  const r4 = run("rodas4"),
    r3 = run("rodas3");
  // each species within 10·(atol + rtol·|y|) of the reference (y₁ ≈ 2e-8 at t = 1e11 sits near its atol of 1e-10)
  for (let i = 1; i < ts.length; i++)
    for (let k = 0; k < 3; k++) {
      const e = Math.abs(r4.ys[i][k] - ref[i][k]);
      assert.ok(e <= 10 * (atol[k] + rtol * Math.abs(ref[i][k])), `Robertson t = ${ts[i]}, y${k + 1}: error ${e}`);
    }
  for (const y of r4.ys) assert.ok(Math.abs(y[0] + y[1] + y[2] - 1) < 1e-12);
  console.log(`Robertson: rodas4 ${JSON.stringify(r4.stats)}, rodas3 ${JSON.stringify(r3.stats)}`);
  assert.ok(r4.stats.accepted < r3.stats.accepted, "Rodas4 takes fewer steps");
  const MU = 1000;
  const vdp: ArrayField = (_t, y, d) => {
    d[0] = y[1];
    d[1] = MU * (1 - y[0] * y[0]) * y[1] - y[0];
  };
  const vref = [-1.8636462548108763, -1.5106069367599941];
  const c = () => new PIDController({ rtol: 1e-6, atol: 1e-6, maxSteps: 20000 });
  const v4 = odeintWithStats(vdp, [2, 0], [0, 1000, 3000], { method: "rodas4", stepSizeController: c() });
  const v3 = odeintWithStats(vdp, [2, 0], [0, 1000, 3000], { method: "rodas3", stepSizeController: c() });
  const err4 = [1, 2].map((i) => Math.abs(v4.ys[i][0] - vref[i - 1])),
    err3 = [1, 2].map((i) => Math.abs(v3.ys[i][0] - vref[i - 1]));
  console.log(
    `Van der Pol: rodas4 ${JSON.stringify(v4.stats)} errors ${err4.map((e) => e.toExponential(2)).join(", ")}; rodas3 ${JSON.stringify(v3.stats)} errors ${err3.map((e) => e.toExponential(2)).join(", ")}`,
  );
  for (const e of err4) assert.ok(e < 1e-4, `Van der Pol error ${e}`);
  assert.ok(v4.stats.nfev < v3.stats.nfev, "Rodas4 needs fewer evaluations");
});

for (const method of ["rodas3", "rodas4"])
  test(`gradients through ${method} on a tensor state: backprop and the adjoint method against expm's closed-form derivatives`, () => {
    // y' = A y, A = [[a, b], [0, d]] stiff; L = w·y(T); ∂L/∂y0 = expm(AT)ᵀw, ∂L/∂(a, b, d) from the closed form
    const T = 1,
      a = -200,
      b = 3,
      d = -1,
      y0v = [1, 2],
      w = [0.7, -1.3];
    const L = (p: number[], y: number[]) => {
      const E = expmUpper(p[0], p[1], p[2], T);
      return w[0] * (E[0] * y[0] + E[1] * y[1]) + w[1] * (E[3] * y[1]);
    };
    const E = expmUpper(a, b, d, T);
    const gy0 = [w[0] * E[0], w[0] * E[1] + w[1] * E[3]];
    const gp = [0, 1, 2].map((k) => {
      const h = 1e-6 * Math.max(1, Math.abs([a, b, d][k]));
      const p = [a, b, d],
        m = [a, b, d];
      p[k] += h;
      m[k] -= h;
      return (L(p, y0v) - L(m, y0v)) / (2 * h);
    });
    const A = (p: Tensor) => reshape(mul(p, f64([1, 1, 0, 1])), [2, 2]); // p = [a, b, 0·, d] laid out row-major
    const field = (_t: number, y: Tensor, p: Tensor) => reshape(matmul(A(p), reshape(y, [2, 1])), [2]);
    const ctrl = new PIDController({ rtol: 1e-7, atol: 1e-9 });
    const P = f64([a, b, 0, d]);
    const loss = (y0: Tensor, p: Tensor) =>
      sum(mul(odeint((t: number, y: Tensor) => field(t, y, p), y0, [0, T], { method, stepSizeController: ctrl })[1], f64(w)));
    const [g0, g1] = grad(loss, { argnums: [0, 1] })(f64(y0v), P) as Tensor[];
    const want = [...gy0, gp[0], gp[1], gp[2]];
    // the adjoint's backward solve reconstructs y backwards in time, through the stiff mode that grows like
    // e^(−a·(T − t)) in reverse time: its step count grows with the stiffness, so a milder a = −20 there
    const ad = -20;
    const Ead = expmUpper(ad, b, d, T);
    const wantAdj = [
      w[0] * Ead[0],
      w[0] * Ead[1] + w[1] * Ead[3],
      ...[0, 1, 2].map((k) => {
        const h = 1e-6 * Math.max(1, Math.abs([ad, b, d][k]));
        const p = [ad, b, d],
          m = [ad, b, d];
        p[k] += h;
        m[k] -= h;
        return (L(p, y0v) - L(m, y0v)) / (2 * h);
      }),
    ];
    let backStats: { njev?: number } = {};
    const adjCtrl = new PIDController({ rtol: 1e-6, atol: 1e-8 });
    const lossAdj = (y0: Tensor, p: Tensor) =>
      sum(
        mul(
          odeintAdjoint(field, y0, [0, T], p, {
            method,
            stepSizeController: adjCtrl,
            onStats: (ph, s) => ph === "backward" && (backStats = s),
          })[1],
          f64(w),
        ),
      );
    const [h0, h1] = grad(lossAdj, { argnums: [0, 1] })(f64(y0v), f64([ad, b, 0, d])) as Tensor[];
    assert.ok((backStats.njev ?? 0) > 0, "the backward solve is implicit too");
    for (const [label, got, ref] of [
      ["backprop", [...g0.data(), g1.data()[0], g1.data()[1], g1.data()[3]], want],
      ["adjoint", [...h0.data(), h1.data()[0], h1.data()[1], h1.data()[3]], wantAdj],
    ] as const) {
      console.log(
        `${label}: ${Array.from(got, (v) => v.toExponential(6)).join(", ")}; closed form ${ref.map((v) => v.toExponential(6)).join(", ")}`,
      );
      got.forEach((v, k) => assert.ok(Math.abs(v - ref[k]) <= 1e-5 * (Math.abs(ref[k]) + 1e-3), `${label} [${k}]: ${v} vs ${ref[k]}`));
    }
  });

test("backprop through fixed Rodas3 steps is the exact derivative of the discrete map (nonlinear Van der Pol, central differences)", () => {
  const field = (mu: Tensor) => (_t: number, s: { x: Tensor; v: Tensor }) => ({
    x: s.v,
    v: sub(mul(mul(sub(1, mul(s.x, s.x)), s.v), mu), s.x),
  });
  const run = (x0: Tensor, v0: Tensor, mu: Tensor) => {
    const y = odeint(field(mu), { x: x0, v: v0 }, [0, 2], { method: "rodas3", stepSizeController: new ConstantStepSize({ steps: 10 }) })[1];
    return sum(mul(y.x, 0.3)).add(sum(mul(y.v, -0.8)));
  };
  const args = [0.5, 0.1, 20];
  const g = grad((x0: Tensor, v0: Tensor, mu: Tensor) => run(x0, v0, mu), { argnums: [0, 1, 2] })(
    f64([args[0]]),
    f64([args[1]]),
    f64([args[2]]),
  ) as Tensor[];
  args.forEach((_, k) => {
    const h = 1e-6 * Math.max(1, Math.abs(args[k]));
    const p = [...args],
      m = [...args];
    p[k] += h;
    m[k] -= h;
    const fd =
      (run(...(p.map((v) => f64([v])) as [Tensor, Tensor, Tensor])).item() -
        run(...(m.map((v) => f64([v])) as [Tensor, Tensor, Tensor])).item()) /
      (2 * h);
    assert.ok(Math.abs(g[k].item() - fd) <= 1e-6 * (1 + Math.abs(fd)), `argument ${k}: ${g[k].item()} vs ${fd}`);
  });
});

test("user-registered Rosenbrock tableaux go through the same registry; bad tableaux are named", async () => {
  const { registerSolver, unregisterSolver, RODAS3 } = await import("../src/index.js");
  registerSolver("my-rodas3", { ...RODAS3, name: "my-rodas3" });
  const a = odeint(stiffPlain, [1, 2], [0, 1], { method: "my-rodas3", stepSizeController: new PIDController({ rtol: 1e-6, atol: 1e-8 }) });
  const b = odeint(stiffPlain, [1, 2], [0, 1], { method: "rodas3", stepSizeController: new PIDController({ rtol: 1e-6, atol: 1e-8 }) });
  assert.deepEqual(a, b);
  unregisterSolver("my-rodas3");
  assert.throws(() => registerSolver("bad", { ...RODAS3, name: "bad", e: [0, 1] }), /rosenbrock 'bad': e has 2 entries; expected 4/);
  assert.throws(
    () => registerSolver("bad", { ...RODAS3, name: "bad", gamma: 0 }),
    /rosenbrock 'bad': gamma is 0; expected a finite number > 0/,
  );
  assert.throws(
    () => registerSolver("bad", { ...RODAS3, name: "bad", c: [[], [4], [1, -1], [1, -1]] }),
    /rosenbrock 'bad': c\[3\] has 2 entries; expected 3/,
  );
});

test("the tensor state's Jacobian is exact: a float64 tree state matches the plain-array solve with the analytic Jacobian", () => {
  const f = (_t: number, y: Tensor) => {
    const [u, v] = [y.data()[0], y.data()[1]];
    void u;
    void v;
    return reshape(matmul(f64([STIFF.a, STIFF.b, 0, STIFF.d], [2, 2]), reshape(y, [2, 1])), [2]);
  };
  const c = new PIDController({ rtol: 1e-7, atol: 1e-9 });
  const t = odeintWithStats(f, f64([1, 2]), [0, 0.5, 1], { method: "rodas3", stepSizeController: c });
  const p = odeintWithStats(stiffPlain, [1, 2], [0, 0.5, 1], {
    method: "rodas3",
    stepSizeController: c,
    jac: () => [STIFF.a, STIFF.b, 0, STIFF.d],
  });
  assert.deepEqual(t.stats, p.stats);
  t.ys.forEach((y, i) => Array.from(y.data()).forEach((v, k) => assert.ok(Math.abs(v - p.ys[i][k]) <= 1e-13 * (1 + Math.abs(v)))));
  void tensor;
});
