/**
 * Plain-array states (Float64Array / number[] with f(t, y, dydt)) against tensor trees: one shared table of
 * problems and methods runs on both kinds of state. Both go through the same solver core (space.ts), so on
 * float64 data the explicit methods give the same numbers bit for bit; the Rosenbrock method gets its Jacobian
 * from autodiff (tensors) or from the user / finite differences (arrays), so there the two agree to rounding.
 * Counts are checked against scipy's (bench/ode-scipy-reference.py).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { add, concat, mul, neg, slice, square, tensor, type Tensor } from "@qkvflow/autograd";
import { rng } from "../../../test/helpers/rng.js";
import {
  ConstantStepSize,
  PIDController,
  arraySpace,
  nonzeroIndices,
  odeint,
  odeintWithStats,
  tensorSpace,
  type ArrayField,
  type OdeintOptions,
} from "../src/index.js";
import { ARENSTORF_T, ARENSTORF_Y0, arenstorf, arenstorfPlain, f64, type Body } from "./helpers.js";

interface Problem {
  name: string;
  t: number[];
  y0: number[];
  /** The field on a plain array. */
  plain: ArrayField;
  /** The same field on a tensor state (a tree or a single tensor). */
  tensor: { y0: () => unknown; f: (t: number, y: never) => unknown; read: (y: never) => number[] };
  /** Closed-form (or reference) values at the output times. */
  exact: (t: number) => number[];
}

const bodyOf = (v: readonly number[]): Body => ({ x: f64([v[0]]), y: f64([v[1]]), vx: f64([v[2]]), vy: f64([v[3]]) });
const problems: Problem[] = [
  {
    name: "harmonic oscillator x'' = -4x (tree {x, v})",
    t: [0, 1, 2.5, 4],
    y0: [1, 0.5],
    plain: (_t, y, d) => {
      d[0] = y[1];
      d[1] = -4 * y[0];
    },
    tensor: {
      y0: () => ({ x: f64([1]), v: f64([0.5]) }),
      f: ((_t: number, s: { x: Tensor; v: Tensor }) => ({ x: s.v, v: mul(s.x, -4) })) as (t: number, y: never) => unknown,
      read: ((s: { x: Tensor; v: Tensor }) => [s.x.item(), s.v.item()]) as (y: never) => number[],
    },
    exact: (t) => [Math.cos(2 * t) + 0.25 * Math.sin(2 * t), -2 * Math.sin(2 * t) + 0.5 * Math.cos(2 * t)],
  },
  {
    name: "Riccati y' = -2t y² (returned number[])",
    t: [0, 0.5, 2],
    y0: [1],
    plain: (t, y) => [-(y[0] * y[0]) * (2 * t)], // the tensor field's arithmetic, in its order
    tensor: {
      y0: () => f64([1]),
      f: ((t: number, y: Tensor) => mul(neg(square(y)), 2 * t)) as (t: number, y: never) => unknown,
      read: ((y: Tensor) => [y.item()]) as (y: never) => number[],
    },
    exact: (t) => [1 / (1 + t * t)],
  },
  {
    name: "Arenstorf orbit, one period (tree of 4)",
    t: [0, ARENSTORF_T],
    y0: ARENSTORF_Y0,
    plain: (t, y) => arenstorfPlain(t, y as unknown as number[]),
    tensor: {
      y0: () => bodyOf(ARENSTORF_Y0),
      f: arenstorf as (t: number, y: never) => unknown,
      read: ((s: Body) => [s.x.item(), s.y.item(), s.vx.item(), s.vy.item()]) as (y: never) => number[],
    },
    exact: (t) => (t === 0 ? ARENSTORF_Y0 : ARENSTORF_Y0),
  },
  {
    name: "linear system y' = Ay, A = [[-1, 1], [0, -3]] (one [2] tensor)",
    t: [0, 0.5, 2],
    y0: [1, 2],
    plain: (_t, y, d) => {
      d[0] = -y[0] + y[1];
      d[1] = -3 * y[1];
    },
    tensor: {
      y0: () => f64([1, 2]),
      f: ((_t: number, y: Tensor) => concat([add(neg(slice(y, [0], [1])), slice(y, [1], [2])), mul(slice(y, [1], [2]), -3)])) as (
        t: number,
        y: never,
      ) => unknown,
      read: ((y: Tensor) => Array.from(y.data())) as (y: never) => number[],
    },
    // y2 = 2e^{-3t}, y1 = e^{-t} + (e^{-t} − e^{-3t})
    exact: (t) => [2 * Math.exp(-t) - Math.exp(-3 * t), 2 * Math.exp(-3 * t)],
  },
];

const configs: { method: string; options: () => OdeintOptions; tol: number; bitwise: boolean }[] = [
  { method: "rk4", options: () => ({ stepSizeController: new ConstantStepSize({ dt: 0.02 }) }), tol: 1e-5, bitwise: true },
  {
    method: "bosh3",
    options: () => ({ stepSizeController: new PIDController({ rtol: 1e-5, atol: 1e-5, maxSteps: 1e5 }) }),
    tol: 1e-2,
    bitwise: true,
  },
  { method: "dopri5", options: () => ({ stepSizeController: new PIDController({ rtol: 1e-8, atol: 1e-8 }) }), tol: 1e-3, bitwise: true },
  {
    method: "tsit5",
    options: () => ({ stepSizeController: new PIDController({ rtol: 1e-7, atol: 1e-7, pcoeff: 0.2, icoeff: 0.65 }), denseOutput: false }),
    tol: 1e-2,
    bitwise: true,
  },
  {
    method: "dop853",
    options: () => ({ stepSizeController: new PIDController({ rtol: 1e-9, atol: 1e-9 }) }),
    tol: 1e-4,
    bitwise: true,
  },
  {
    method: "rodas3",
    options: () => ({ stepSizeController: new PIDController({ rtol: 1e-6, atol: 1e-8, maxSteps: 1e5 }) }),
    tol: 2e-3,
    bitwise: false,
  },
];

for (const p of problems) {
  test(`both state kinds, one table: ${p.name}`, () => {
    for (const c of configs) {
      // Arenstorf: only the fifth- and eighth-order methods (the others need thousands of tensor steps)
      if (p.name.startsWith("Arenstorf") && !["dopri5", "tsit5", "dop853"].includes(c.method)) continue;
      const label = `${p.name}, ${c.method}`;
      const plain = odeintWithStats(p.plain, Float64Array.from(p.y0), p.t, { method: c.method, ...c.options() });
      const asNumbers = odeint(p.plain, p.y0, p.t, { method: c.method, ...c.options() });
      const tens = odeintWithStats(p.tensor.f as (t: number, y: unknown) => unknown, p.tensor.y0(), p.t, {
        method: c.method,
        ...c.options(),
      });
      assert.equal(plain.ys.length, p.t.length);
      assert.ok(plain.ys.every((y) => y instanceof Float64Array));
      assert.ok(
        asNumbers.every((y) => Array.isArray(y)),
        `${label}: number[] in, number[][] out`,
      );
      assert.deepEqual(
        asNumbers,
        plain.ys.map((y) => Array.from(y)),
        `${label}: number[] and Float64Array states agree`,
      );
      const scale = Math.max(...p.y0.map(Math.abs));
      for (let i = 0; i < p.t.length; i++) {
        const a = Array.from(plain.ys[i]);
        const b = p.tensor.read(tens.ys[i] as never);
        const ex = p.exact(p.t[i]);
        for (let k = 0; k < a.length; k++) {
          assert.ok(Math.abs(a[k] - ex[k]) <= c.tol * scale, `${label}: plain y[${k}](${p.t[i]}) = ${a[k]}, exact ${ex[k]}`);
          if (c.bitwise) assert.equal(a[k], b[k], `${label}: plain and tensor differ at t = ${p.t[i]}, element ${k}`);
          else assert.ok(Math.abs(a[k] - b[k]) <= 1e-7 * scale, `${label}: plain ${a[k]} vs tensor ${b[k]} at t = ${p.t[i]}`);
        }
      }
      if (c.bitwise) assert.deepEqual(plain.stats, tens.stats, `${label}: the same steps`);
      else {
        assert.ok(
          Math.abs(plain.stats.accepted - tens.stats.accepted) <= 2,
          `${label}: ${plain.stats.accepted} vs ${tens.stats.accepted} steps`,
        );
        assert.ok((plain.stats.njev ?? 0) > 0 && (tens.stats.njev ?? 0) > 0 && (plain.stats.nlu ?? 0) >= (plain.stats.njev ?? 0));
      }
    }
  });
}

test("dopri5 on plain arrays reproduces scipy's RK45 counts on Arenstorf (1e-6 and 1e-9), with error no larger than RK45's", () => {
  // scipy 1.17.1 solve_ivp(method='RK45', rtol=atol=tol), from bench/ode-scipy-reference.py:
  //   1e-6: nfev 1004, 132 accepted, 35 rejected, y(T) = [0.9940240003768492, 0.00010122550127747432, ...]
  //   1e-9: nfev 3056, 501 accepted, 8 rejected, y(T) = [0.9939999339576838, -1.5944534568199976e-07, ...]
  const scipy: Record<string, { nfev: number; accepted: number; rejected: number; y: number[] }> = {
    "1e-6": {
      nfev: 1004,
      accepted: 132,
      rejected: 35,
      y: [0.9940240003768492, 0.00010122550127747432, 0.016266009961470762, -1.9976650669540594],
    },
    "1e-9": {
      nfev: 3056,
      accepted: 501,
      rejected: 8,
      y: [0.9939999339576838, -1.5944534568199976e-7, -2.6199130841383922e-5, -2.0015953875775203],
    },
  };
  for (const tol of [1e-6, 1e-9]) {
    const ref = scipy[tol.toExponential(0).replace("e-", "e-")];
    const r = odeintWithStats((t, y) => arenstorfPlain(t, y as unknown as number[]), ARENSTORF_Y0, [0, ARENSTORF_T], {
      stepSizeController: new PIDController({ rtol: tol, atol: tol }),
    });
    assert.deepEqual(r.stats, { nfev: ref.nfev, accepted: ref.accepted, rejected: ref.rejected }, `tol ${tol}`);
    const err = Math.hypot(...r.ys[1].map((v, i) => v - ARENSTORF_Y0[i]));
    const errScipy = Math.hypot(...ref.y.map((v, i) => v - ARENSTORF_Y0[i]));
    // the same method and steps, arithmetic equal up to rounding: the error agrees to 4 digits and is not larger
    assert.ok(err <= errScipy * (1 + 1e-5), `tol ${tol}: error ${err}, scipy's ${errScipy}`);
    assert.ok(Math.abs(err - errScipy) <= 1e-4 * errScipy, `tol ${tol}: error ${err}, scipy's ${errScipy}`);
  }
});

test("dop853 on plain arrays reproduces scipy's DOP853 counts and dense output on Arenstorf (1e-6 and 1e-9)", () => {
  // scipy 1.17.1 solve_ivp(method='DOP853', rtol=atol=tol), from bench/ode-scipy-reference.py: counts, y(T), and the
  // dense output at t = 3T/10, T/2, 7T/10 (t_eval = linspace(0, T, 11))
  const scipy: Record<string, { nfev: number; accepted: number; rejected: number; y: number[]; dense: number[][] }> = {
    "1e-6": {
      nfev: 1070,
      accepted: 66,
      rejected: 23,
      y: [0.9940190779180692, 4.206066690988844e-5, 0.00690889775288317, -1.998587552905581],
      dense: [
        [0.0022770012244801748, 0.8145545139194244, -0.22448395731674892, -0.44799569921890225],
        [-1.244816942228139, -7.506479058200233e-6, 1.7934812024666957e-6, 0.5539824275972538],
        [0.0023145969958572182, -0.8145702057414488, 0.22446617378075553, -0.4479778802267014],
      ],
    },
    "1e-9": {
      nfev: 2234,
      accepted: 136,
      rejected: 50,
      y: [0.9940000133020114, 4.486647421766748e-8, 7.281852516062559e-6, -2.001583034235351],
      dense: [
        [0.0022854870457362387, 0.8145591306887644, -0.22447760377967035, -0.44799365931658],
        [-1.2448220498895157, -4.904926978466229e-9, -6.832455434757634e-10, 0.5539903047632992],
        [0.0022855032900637416, -0.8145591348829232, 0.22447760154079688, -0.4479936511640082],
      ],
    },
  };
  for (const tol of [1e-6, 1e-9]) {
    const ref = scipy[tol.toExponential(0)];
    const opts = () => ({ method: "dop853", stepSizeController: new PIDController({ rtol: tol, atol: tol }) });
    const r = odeintWithStats((t, y) => arenstorfPlain(t, y as unknown as number[]), ARENSTORF_Y0, [0, ARENSTORF_T], opts());
    assert.deepEqual(r.stats, { nfev: ref.nfev, accepted: ref.accepted, rejected: ref.rejected }, `tol ${tol}`);
    // the same steps, arithmetic equal up to rounding (amplified along the orbit: 1.5e-9 seen at 1e-6)
    for (let k = 0; k < 4; k++)
      assert.ok(Math.abs(r.ys[1][k] - ref.y[k]) <= 1e-8, `tol ${tol}: y[${k}](T) = ${r.ys[1][k]}, scipy ${ref.y[k]}`);
    const ts = Array.from({ length: 11 }, (_, i) => (i * ARENSTORF_T) / 10);
    const d = odeintWithStats((t, y) => arenstorfPlain(t, y as unknown as number[]), ARENSTORF_Y0, ts, opts());
    [3, 5, 7].forEach((i, j) => {
      for (let k = 0; k < 4; k++)
        assert.ok(
          Math.abs(d.ys[i][k] - ref.dense[j][k]) <= 1e-10,
          `tol ${tol}: dense y[${k}](${i}T/10) = ${d.ys[i][k]}, scipy ${ref.dense[j][k]}`,
        );
    });
    // outputs do not change the steps; each step with outputs inside costs the three extra stages, once
    assert.equal(d.stats.accepted, ref.accepted);
    assert.equal(d.stats.rejected, ref.rejected);
    const extra = d.stats.nfev - ref.nfev;
    assert.ok(extra > 0 && extra <= 27 && extra % 3 === 0, `tol ${tol}: ${extra} extra evaluations for 9 interior outputs`);
  }
});

test("arraySpace's sums (combine, stage, hostIncrement) equal tensorSpace's bit for bit, for 0 to 10 terms", () => {
  // the plain-array space forms up to 9 terms in one fused pass and more in passes of 9; the tensor space adds one
  // term after another: per element the same operations in the same order, so the results are identical
  const rand = rng(7);
  const n = 5;
  const vec = () => Float64Array.from({ length: n }, () => (rand() - 0.5) * 10 ** Math.floor(rand() * 6 - 3));
  const asTensors = (v: Float64Array) => [tensor(Float64Array.from(v), { dtype: "float64", shape: [n] })];
  for (let m = 0; m <= 10; m++) {
    for (let trial = 0; trial < 4; trial++) {
      const space = arraySpace(n);
      const y = vec();
      const ks = Array.from({ length: m }, vec);
      // zero coefficients are skipped; trial 3 also has a coefficient whose weight h·c underflows to 0
      const c = Array.from({ length: m }, (_, j) => (trial > 0 && j % 3 === 1 ? 0 : (rand() - 0.5) * 4));
      const h = trial === 3 ? 1e-300 : 0.1 + rand();
      if (trial === 3 && m > 0) c[m - 1] = 1e-30;
      const tks = ks.map(asTensors);
      const ref = tensorSpace.combine(asTensors(y), h, c, tks)[0].data();
      const what = `${m} terms, trial ${trial}`;
      // with and without the list of nonzero coefficients (what the Runge–Kutta step passes for a tableau row)
      const nz = nonzeroIndices(c);
      assert.deepEqual(Array.from(space.combine(y, h, c, ks)), Array.from(ref), `combine: ${what}`);
      assert.deepEqual(Array.from(space.combine(y, h, c, ks, nz)), Array.from(ref), `combine with nonzero: ${what}`);
      assert.deepEqual(Array.from(space.stage(y, h, c, ks)), Array.from(ref), `stage: ${what}`);
      assert.deepEqual(Array.from(space.stage(y, h, c, ks, nz)), Array.from(ref), `stage with nonzero: ${what}`);
      if (c.some((v) => v !== 0)) {
        const inc = tensorSpace.hostIncrement(h, c, tks)[0].data();
        assert.deepEqual(Array.from(space.hostIncrement(h, c, ks)), Array.from(inc), `hostIncrement: ${what}`);
        assert.deepEqual(Array.from(space.hostIncrement(h, c, ks, nz)), Array.from(inc), `hostIncrement with nonzero: ${what}`);
      }
      // a buffer handed back is reused by the next sum, which overwrites it completely
      const again = space.combine(y, h, c, ks);
      space.release(again);
      assert.deepEqual(Array.from(space.combine(y, h, c, ks)), Array.from(ref), `combine into a reused buffer: ${what}`);
    }
  }
});

test("plain-array inputs are checked: f's results, tolerances, options that need tensors", () => {
  const f: ArrayField = (_t, y, d) => {
    d[0] = -y[0];
  };
  assert.throws(() => odeint((_t, _y) => [1, 2], [1], [0, 1]), /odeint: f returned 2 numbers at t = 0; expected 1, one per state element/);
  assert.throws(
    () => odeint(() => 3 as unknown as number[], [1], [0, 1]),
    /odeint: f returned number at t = 0; expected nothing \(dydt filled in\)/,
  );
  assert.throws(
    () => odeint(f, [1, 2], [0, 1], { rtol: [1e-6] }),
    /odeint: rtol has 1 entries; expected a number or 2 numbers, one per state element/,
  );
  assert.throws(() => odeint(f, [1], [0, 1], { atol: -1 }), /atol is -1; expected a finite number >= 0/);
  assert.throws(() => odeint(f, [1], [0, 1], { checkpoint: true }), /odeint: checkpoint is set for a plain-array state/);
  assert.throws(() => odeint(f, [NaN], [0, 1]), /odeint: the initial state is not finite at t = 0 \(leaf 0, element 0 is NaN\)/);
  assert.throws(
    () => odeint((_t: number, y: Tensor) => y, f64([1]), [0, 1], { jac: () => [[1]] }),
    /odeint: options\.jac is given for a tensor state; expected it only with plain-array states/,
  );
  assert.throws(
    () => odeint(f, [1], [0, 1], { method: "rodas3", jac: (() => [1, 2]) as never }),
    /odeint: jac returned 2 numbers; expected 1 \(an 1×1 matrix, row-major\)/,
  );
  // per-element tolerances are used: a loose atol on the second element takes fewer steps than a tight one
  const g: ArrayField = (_t, y, d) => {
    d[0] = -y[0];
    d[1] = Math.cos(y[1]) * 3;
  };
  const loose = odeintWithStats(g, [1, 0], [0, 5], { rtol: 0, atol: [1e-8, 1e-3] }).stats.accepted;
  const tight = odeintWithStats(g, [1, 0], [0, 5], { rtol: 0, atol: [1e-8, 1e-8] }).stats.accepted;
  assert.ok(loose < tight, `${loose} vs ${tight}`);
});

test("maxSteps: an explicit method on a stiff problem stops with a clear error; Rodas3 solves it in few steps", () => {
  const vdp: ArrayField = (_t, y, d) => {
    d[0] = y[1];
    d[1] = 1000 * (1 - y[0] * y[0]) * y[1] - y[0];
  };
  assert.throws(
    () => odeint(vdp, [2, 0], [0, 100], { stepSizeController: new PIDController({ rtol: 1e-6, atol: 1e-6, maxSteps: 3000 }) }),
    /odeint: maximum number of steps \(3000\) exceeded at t = [\d.e-]+ before reaching t = 100 \(\d+ accepted, \d+ rejected, last h = [\d.e-]+\); raise maxSteps or loosen rtol\/atol \(the problem may be stiff\)/,
  );
  const r = odeintWithStats(vdp, [2, 0], [0, 100], { method: "rodas3", stepSizeController: new PIDController({ rtol: 1e-6, atol: 1e-6 }) });
  assert.ok(r.stats.accepted < 300, `${r.stats.accepted} Rodas3 steps`);
});
