import { test } from "node:test";
import assert from "node:assert/strict";
import { mul, square, type Tensor } from "@qkvflow/autograd";
import {
  ConstantStepSize,
  PIDController,
  RK4,
  odeint,
  odeintAdjointVjp,
  odeintWithStats,
  selectInitialStep,
  type AdaptiveStepSizeController,
  type ControllerStart,
  type FixedStepSizeController,
  type OdeintOptions,
  type PIDState,
} from "../src/index.js";
import { arr, f64, oscillator, type Osc } from "./helpers.js";

const OMEGA = 2,
  T = 10;
const f = oscillator.f(OMEGA);
const y0 = (): Osc => ({ x: f64([1]), v: f64([0.5]) });

/** Solution values and counters of one solve, for exact comparison. */
function run(method: string, options: OdeintOptions, ts: number[] = [0, 1, 2.5, T]) {
  const r = odeintWithStats(f, y0(), ts, { method, ...options });
  return { ys: r.ys.map((y) => [...arr(y.x), ...arr(y.v)]), stats: r.stats };
}

function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail("expected an error");
}

/**
 * The classic I controller written out independently, with scipy's rule that the first accepted step after a
 * rejection does not grow: the reference the default must reproduce bit for bit.
 */
function referenceI(
  o: { safety?: number; factorMin?: number; factorMax?: number; firstStep?: number } = {},
): AdaptiveStepSizeController<{ k: number; rej: boolean }> {
  const safety = o.safety ?? 0.9,
    fmin = o.factorMin ?? 0.2,
    fmax = o.factorMax ?? 10;
  return {
    kind: "adaptive",
    name: "reference I controller",
    maxSteps: 10000,
    init: (start: ControllerStart) => ({ h: o.firstStep ?? selectInitialStep(start), state: { k: start.errorOrder + 1, rej: false } }),
    adapt: ({ h, ratio }, s) => {
      if (ratio <= 1) {
        let factor = ratio === 0 ? fmax : Math.min(fmax, Math.max(fmin, safety * Math.pow(ratio, -1 / s.k)));
        if (s.rej) factor = Math.min(1, factor);
        return { accept: true, h: h * factor, state: { k: s.k, rej: false } };
      }
      const factor = Number.isFinite(ratio) ? Math.min(safety, Math.max(fmin, safety * Math.pow(ratio, -1 / s.k))) : fmin;
      return { accept: false, h: h * factor, state: { k: s.k, rej: true } };
    },
  };
}

/** Hairer's PI controller written out independently (previous accepted error, clipped at 1e-4; no growth after a rejection). */
function referencePI(pcoeff: number, icoeff: number): AdaptiveStepSizeController<{ k: number; prev: number; rej: boolean }> {
  return {
    kind: "adaptive",
    name: "reference PI controller",
    maxSteps: 10000,
    init: (start) => ({ h: selectInitialStep(start), state: { k: start.errorOrder + 1, prev: 1, rej: false } }),
    adapt: ({ h, ratio }, s) => {
      if (ratio <= 1) {
        const raw = ratio === 0 ? 10 : 0.9 * Math.pow(ratio, -(pcoeff + icoeff) / s.k) * Math.pow(s.prev, pcoeff / s.k);
        const factor = Math.min(s.rej ? 1 : 10, Math.max(0.2, raw));
        return { accept: true, h: h * factor, state: { k: s.k, prev: Math.max(ratio, 1e-4), rej: false } };
      }
      return {
        accept: false,
        h: h * (Number.isFinite(ratio) ? Math.min(0.9, Math.max(0.2, 0.9 * Math.pow(ratio, -1 / s.k))) : 0.2),
        state: { ...s, rej: true },
      };
    },
  };
}

test("the default step control is the classic I controller: PIDController() and PIDController with zero pcoeff/dcoeff match an independent I controller bit for bit", () => {
  for (const method of ["bosh3", "dopri5", "tsit5", "dop853"]) {
    for (const tol of [1e-3, 1e-6]) {
      const ref = run(method, { stepSizeController: Object.assign(referenceI(), { rtol: tol, atol: tol }) });
      assert.ok(ref.stats.accepted > 5, `${method}: too few steps to compare`);
      assert.deepEqual(run(method, { rtol: tol, atol: tol }), ref, `${method} tol ${tol}: flat options`);
      assert.deepEqual(
        run(method, { stepSizeController: new PIDController({ rtol: tol, atol: tol }) }),
        ref,
        `${method} tol ${tol}: PIDController()`,
      );
      assert.deepEqual(
        run(method, { stepSizeController: new PIDController({ rtol: tol, atol: tol, pcoeff: 0, icoeff: 1, dcoeff: 0 }) }),
        ref,
        `${method} tol ${tol}: explicit I`,
      );
    }
  }
  // with rejections (loose tolerance on dopri5 rejects a few steps) and a user-given first step
  const opts = { safety: 0.8, factorMin: 0.3, factorMax: 4, firstStep: 0.7 };
  const ref = run("dopri5", { stepSizeController: Object.assign(referenceI(opts), { rtol: 1e-4, atol: 1e-4 }) });
  assert.ok(ref.stats.rejected > 0, "expected rejected steps with firstStep 0.7");
  assert.deepEqual(run("dopri5", { stepSizeController: new PIDController({ rtol: 1e-4, atol: 1e-4, ...opts }) }), ref);
  // the evaluation counts documented for the default controller (packages/ode/README.md); they are also scipy
  // 1.17.1's solve_ivp counts for RK45 (dopri5) and RK23 (bosh3) on this problem: bench/ode-scipy-reference.py
  const counts = (method: string, tol: number) =>
    odeintWithStats(f, y0(), [0, T], { method, stepSizeController: new PIDController({ rtol: tol, atol: tol }) }).stats;
  assert.deepEqual(counts("dopri5", 1e-4), { nfev: 200, accepted: 31, rejected: 2 });
  assert.deepEqual(counts("dopri5", 1e-6), { nfev: 470, accepted: 78, rejected: 0 });
  assert.deepEqual(counts("tsit5", 1e-4), { nfev: 170, accepted: 27, rejected: 1 });
  assert.deepEqual(counts("bosh3", 1e-4), { nfev: 347, accepted: 115, rejected: 0 });
  assert.deepEqual(counts("bosh3", 1e-6), { nfev: 1610, accepted: 536, rejected: 0 });
});

test("PIDController with pcoeff > 0 matches an independent PI controller bit for bit, and differs from the I controller", () => {
  for (const method of ["dopri5", "tsit5"]) {
    const ref = run(method, { stepSizeController: Object.assign(referencePI(0.2, 0.65), { rtol: 1e-7, atol: 1e-7 }) });
    const pi = run(method, { stepSizeController: new PIDController({ rtol: 1e-7, atol: 1e-7, pcoeff: 0.2, icoeff: 0.65 }) });
    assert.deepEqual(pi, ref);
    assert.deepEqual(run(method, { rtol: 1e-7, atol: 1e-7, pcoeff: 0.2, icoeff: 0.65 }), ref, "flat pcoeff/icoeff");
    assert.notDeepEqual(pi.stats, run(method, { stepSizeController: new PIDController({ rtol: 1e-7, atol: 1e-7 }) }).stats);
  }
});

test("PIDController.adapt: accepted steps follow the closed-form PID factor", () => {
  const start = { errorOrder: 0 } as ControllerStart; // k = 1: exponents are the coefficients themselves
  // safety 1 and wide factor bounds: the factor is the bare PID product
  const c = new PIDController({ pcoeff: 0.5, icoeff: 1, dcoeff: 0.25, safety: 1, factorMin: 1e-3, factorMax: 1e3, firstStep: 1 });
  let { h, state } = c.init(start);
  assert.equal(h, 1);
  assert.deepEqual(state, { k: 1, prev: 1, prevPrev: 1, rejected: false });
  const errs = [0.5, 0.25, 0.125, 0.5];
  const hist = [1, 1]; // ε_{n-1}, ε_{n-2}
  for (const e of errs) {
    const d = c.adapt({ t: 0, h, ratio: e }, state);
    // factor = ε_n^-(p+i+d) · ε_{n-1}^(p+2d) · ε_{n-2}^(-d)
    const expected = Math.pow(e, -1.75) * Math.pow(hist[0], 1) * Math.pow(hist[1], -0.25);
    assert.equal(d.accept, true);
    assert.equal(d.h, h * expected, `ε = ${e}`);
    assert.deepEqual(d.state, { k: 1, prev: e, prevPrev: hist[0], rejected: false });
    hist.unshift(e);
    h = d.h;
    state = d.state;
  }
  // k = errorOrder + 1 divides the exponents: I controller, k = 5, ε = 2^-10 → factor 0.9·2^2, within the bounds
  const i5 = new PIDController();
  const s5: PIDState = { k: 5, prev: 1, prevPrev: 1, rejected: false };
  assert.equal(i5.adapt({ t: 0, h: 0.5, ratio: 2 ** -10 }, { ...s5 }).h, 0.5 * 0.9 * 4);
  // factors are clipped to [factorMin, factorMax], then h to [dtmin, dtmax]; ε = 0 gives factorMax
  assert.equal(i5.adapt({ t: 0, h: 0.5, ratio: 0 }, s5).h, 5);
  assert.equal(i5.adapt({ t: 0, h: 0.5, ratio: 1e-30 }, s5).h, 5);
  assert.equal(i5.adapt({ t: 0, h: 0.5, ratio: 1 }, s5).h, 0.5 * 0.9);
  const capped = new PIDController({ dtmax: 0.6, dtmin: 0.4 });
  assert.equal(capped.adapt({ t: 0, h: 0.5, ratio: 2 ** -10 }, s5).h, 0.6);
  assert.equal(capped.adapt({ t: 0, h: 0.1, ratio: 1 }, s5).h, 0.4);
  // the error memory is clipped below at 1e-4
  assert.equal(i5.adapt({ t: 0, h: 1, ratio: 1e-9 }, s5).state.prev, 1e-4);
});

test("PIDController.adapt: rejected steps shrink by clip(safety·ε^(-1/k), factorMin, safety) and keep the error memory", () => {
  const c = new PIDController({ pcoeff: 0.3, icoeff: 0.4, safety: 0.9, factorMin: 0.2 });
  const s: PIDState = { k: 2, prev: 0.5, prevPrev: 0.25, rejected: false };
  const sr: PIDState = { ...s, rejected: true };
  const d = c.adapt({ t: 0, h: 1, ratio: 4 }, s); // 0.9 · 4^(-1/2) = 0.45
  assert.deepEqual(d, { accept: false, h: 0.45, state: sr });
  assert.equal(
    c.adapt({ t: 0, h: 1, ratio: 1.0001 }, s).h,
    0.9 * Math.pow(1.0001, -1 / 2),
    "a barely failed step shrinks by about the safety factor",
  );
  assert.equal(c.adapt({ t: 0, h: 1, ratio: 1e6 }, s).h, 0.2, "a badly failed step shrinks by factorMin");
  for (const bad of [NaN, Infinity]) assert.deepEqual(c.adapt({ t: 0, h: 1, ratio: bad }, s), { accept: false, h: 0.2, state: sr });
  // the accepted step after a rejection does not grow (factor min(1, ·)); the one after that may again
  const i1 = new PIDController();
  const after = i1.adapt({ t: 0, h: 1, ratio: 1e-6 }, { ...sr, k: 5 });
  assert.equal(after.h, 1, "no growth right after a rejection");
  assert.equal(after.state.rejected, false);
  assert.equal(i1.adapt({ t: 0, h: 1, ratio: 1e-2 }, after.state).h, 0.9 * Math.pow(1e-2, -1 / 5));
  assert.equal(
    i1.adapt({ t: 0, h: 1, ratio: 0.5 }, { ...sr, k: 5 }).h,
    Math.min(1, 0.9 * Math.pow(0.5, -1 / 5)),
    "shrinking is not affected",
  );
  assert.equal(
    new PIDController({ growAfterReject: true }).adapt({ t: 0, h: 1, ratio: 1e-2 }, { ...sr, k: 5 }).h,
    0.9 * Math.pow(1e-2, -1 / 5),
    "growAfterReject: true lifts the rule",
  );
  // dtmin: a rejection may shrink down to dtmin once; failing at dtmin ends the solve
  const m = new PIDController({ dtmin: 0.5 });
  assert.deepEqual(m.adapt({ t: 0, h: 1, ratio: 1e6 }, s), { accept: false, h: 0.5, state: sr });
  const fail = m.adapt({ t: 0, h: 0.5, ratio: 1e6 }, s);
  assert.equal(fail.accept, false);
  assert.match(
    fail.failure ?? "",
    /a step of h = 0\.5 failed the error test \(error ratio 1\.00e\+6\) and the step size cannot go below dtmin = 0\.5/,
  );
});

test("selectInitialStep: Hairer–Nørsett–Wanner's estimate in closed form for y' = λy (one evaluation)", () => {
  const lam = -3,
    yv = 2,
    rtol = 1e-6,
    atol = 1e-8,
    order = 5;
  let calls = 0;
  const start: ControllerStart = {
    f: (_t, y) => {
      calls++;
      return [mul(y[0], lam)];
    },
    t0: 0,
    tEnd: 10,
    y0: [f64([yv])],
    f0: [f64([lam * yv])],
    rtol: [rtol],
    atol: [atol],
    order,
    errorOrder: 4,
  };
  const sc = atol + rtol * Math.abs(yv);
  const d0 = Math.abs(yv) / sc,
    d1 = Math.abs(lam * yv) / sc;
  const h0 = (0.01 * d0) / d1; // = 0.01 / |λ|
  const d2 = Math.abs(lam * (yv + h0 * lam * yv) - lam * yv) / sc / h0; // = λ²|y0| / sc
  // exponent 1/(errorOrder + 1) = 1/order for dopri5, as Hairer's HINIT and scipy's select_initial_step
  const expected = Math.min(100 * h0, Math.pow(0.01 / Math.max(d1, d2), 1 / (start.errorOrder + 1)));
  const h = selectInitialStep(start);
  assert.equal(calls, 1);
  assert.ok(Math.abs(h - expected) <= 1e-14 * expected, `h = ${h}; closed form ${expected}`);
  // the default controller starts with it; a given firstStep is used as is (clipped to dtmax)
  assert.equal(new PIDController().init(start).h, h);
  assert.equal(new PIDController({ firstStep: 0.25 }).init(start).h, 0.25);
  assert.equal(new PIDController({ firstStep: 0.25, dtmax: 0.125 }).init(start).h, 0.125);
});

test("ConstantStepSize with n steps takes exactly n steps per interval and reproduces a hand-written RK4 loop", () => {
  const n = 13,
    ts = [0, 1.5];
  const sol = odeintWithStats(f, y0(), ts, { method: "rk4", stepSizeController: new ConstantStepSize({ steps: n }) });
  assert.deepEqual(sol.stats, { nfev: 4 * n, accepted: n, rejected: 0 });
  // the same method by hand on plain numbers: x' = v, v' = −ω²x
  const F = (x: number, v: number): [number, number] => [v, -OMEGA * OMEGA * x];
  const h = (ts[1] - ts[0]) / n,
    b = RK4.b;
  let x = 1,
    v = 0.5;
  for (let k = 0; k < n; k++) {
    const k1 = F(x, v);
    const k2 = F(x + k1[0] * (h * 0.5), v + k1[1] * (h * 0.5));
    const k3 = F(x + k2[0] * (h * 0.5), v + k2[1] * (h * 0.5));
    const k4 = F(x + k3[0] * h, v + k3[1] * h);
    x = x + k1[0] * (h * b[0]) + k2[0] * (h * b[1]) + k3[0] * (h * b[2]) + k4[0] * (h * b[3]);
    v = v + k1[1] * (h * b[0]) + k2[1] * (h * b[1]) + k3[1] * (h * b[2]) + k4[1] * (h * b[3]);
  }
  assert.equal(sol.ys[1].x.item(), x);
  assert.equal(sol.ys[1].v.item(), v);
  // per interval: three output intervals of 13 steps each
  assert.deepEqual(
    odeintWithStats(f, y0(), [0, 0.5, 1, 3], { method: "euler", stepSizeController: new ConstantStepSize({ steps: n }) }).stats,
    { nfev: 3 * n, accepted: 3 * n, rejected: 0 },
  );
  // an adaptive method under ConstantStepSize takes fixed steps (dopri5 is FSAL: 7 evaluations, then 6 per step)
  assert.deepEqual(odeintWithStats(f, y0(), ts, { method: "dopri5", stepSizeController: new ConstantStepSize({ steps: n }) }).stats, {
    nfev: 7 + 6 * (n - 1),
    accepted: n,
    rejected: 0,
  });
  // and matches the flat shorthand bit for bit
  assert.deepEqual(run("rk4", { stepSizeController: new ConstantStepSize({ steps: 7 }) }), run("rk4", { steps: 7 }));
  assert.deepEqual(run("dopri5", { stepSizeController: new ConstantStepSize({ dt: 0.13 }) }), run("dopri5", { dt: 0.13 }));
});

test("ConstantStepSize with dt cuts each interval into ceil(|Δt|/dt) steps; without settings it takes one step per interval", () => {
  const c = new ConstantStepSize({ dt: 0.1 });
  assert.equal(c.stepsBetween(0, 0.3), 3, "0.3/0.1 is 2.9999999999999996 in floating point: still 3 steps");
  assert.equal(c.stepsBetween(0, 1), 10);
  assert.equal(c.stepsBetween(1, 0.75), 3, "backwards intervals count |Δt|");
  assert.equal(c.stepsBetween(0, 0.01), 1);
  assert.equal(new ConstantStepSize().stepsBetween(0, 100), 1);
  assert.deepEqual(odeintWithStats(f, y0(), [0, 0.3, 1], { method: "heun", stepSizeController: c }).stats, {
    nfev: 2 * 10,
    accepted: 10,
    rejected: 0,
  });
  assert.deepEqual(odeintWithStats(f, y0(), [0, 0.3, 1, 5], { method: "rk4", stepSizeController: new ConstantStepSize() }).stats, {
    nfev: 12,
    accepted: 3,
    rejected: 0,
  });
  // a user-written fixed controller: steps in proportion to the interval length
  const perUnit: FixedStepSizeController = { kind: "fixed", name: "per unit", stepsBetween: (a, b) => Math.round(4 * Math.abs(b - a)) };
  assert.deepEqual(odeintWithStats(f, y0(), [0, 1, 3], { method: "euler", stepSizeController: perUnit }).stats, {
    nfev: 12,
    accepted: 12,
    rejected: 0,
  });
  const zero: FixedStepSizeController = { kind: "fixed", name: "broken grid", stepsBetween: () => 0 };
  assert.throws(
    () => odeint(f, y0(), [0, 1], { method: "euler", stepSizeController: zero }),
    /odeint: the broken grid gave 0 steps from t = 0 to t = 1; expected a positive integer/,
  );
});

test("maxSteps of a controller: a clear error naming the limit, the time reached and the counts", () => {
  const msg = thrown(() => odeint(f, y0(), [0, 100], { method: "dopri5", stepSizeController: new PIDController({ maxSteps: 12 }) }));
  assert.match(
    msg,
    /^odeint: maximum number of steps \(12\) exceeded at t = [\d.e-]+ before reaching t = 100 \(\d+ accepted, \d+ rejected, last h = [\d.e-]+\); raise maxSteps/,
  );
  const fixed = thrown(() =>
    odeint(f, y0(), [0, 1, 2], { method: "rk4", stepSizeController: new ConstantStepSize({ dt: 0.01, maxSteps: 150 }) }),
  );
  assert.match(fixed, /^odeint: maximum number of steps \(150\) exceeded at t = 1\.5 before reaching t = 2 \(fixed step h = 0\.01\)/);
  // exactly maxSteps steps are allowed
  assert.equal(
    odeintWithStats(f, y0(), [0, 1], { method: "rk4", stepSizeController: new ConstantStepSize({ steps: 20, maxSteps: 20 }) }).stats
      .accepted,
    20,
  );
});

test("dtmin and dtmax bound the adaptive steps; failing the error test at dtmin ends the solve", () => {
  const capped = odeintWithStats(f, y0(), [0, T], {
    method: "dopri5",
    stepSizeController: new PIDController({ rtol: 1e-6, atol: 1e-6, dtmax: 0.05 }),
  });
  assert.ok(capped.stats.accepted >= T / 0.05, `dtmax 0.05 on [0, ${T}] needs >= ${T / 0.05} steps; got ${capped.stats.accepted}`);
  const ex = oscillator.exact(OMEGA, 1, 0.5, T);
  assert.ok(Math.abs(capped.ys[1].x.item() - ex.x) < 1e-5);
  // y' = y², y(0) = 1 blows up at t = 1: with dtmin the solve stops there with the controller's reason
  const msg = thrown(() =>
    odeint((_t: number, y: Tensor) => square(y), f64([1]), [0, 2], {
      method: "dopri5",
      stepSizeController: new PIDController({ rtol: 1e-6, atol: 1e-6, dtmin: 1e-4 }),
    }),
  );
  assert.match(
    msg,
    /^odeint: the PIDController stopped at t = ([\d.e-]+) before reaching t = 2: a step of h = [\d.e-]+ failed the error test .* cannot go below dtmin = 0\.0001/,
  );
  const t = Number(/stopped at t = ([\d.e-]+)/.exec(msg)![1]);
  assert.ok(t > 0.99 && t < 1, `stopped at t = ${t}; the singularity is at t = 1`);
});

test("PID coefficients (dcoeff > 0) give a different step sequence and the same answer", () => {
  const ex = oscillator.exact(OMEGA, 1, 0.5, T);
  const err = (o: PIDControllerSettings) => {
    const r = odeintWithStats(f, y0(), [0, T], {
      method: "dopri5",
      stepSizeController: new PIDController({ rtol: 1e-8, atol: 1e-8, ...o }),
    });
    return { stats: r.stats, err: Math.hypot(r.ys[1].x.item() - ex.x, r.ys[1].v.item() - ex.v) };
  };
  const i = err({}),
    pid = err({ pcoeff: 1 / 18, icoeff: 1 / 9, dcoeff: 1 / 18 });
  assert.notDeepEqual(pid.stats, i.stats);
  assert.ok(pid.err < 1e-6 && i.err < 1e-6, `errors: I ${i.err}, PID ${pid.err}`);
});
type PIDControllerSettings = ConstructorParameters<typeof PIDController>[0];

test("odeintAdjoint takes the controller for the forward and the backward solve; flat shorthand and controller agree exactly", () => {
  const field = (_t: number, y: Osc, p: Tensor): Osc => ({ x: y.v, v: mul(y.x, mul(p, -1)) });
  const grads = (o: object) => {
    const sol = odeintAdjointVjp(field, y0(), [0, 1, 3], f64([4]), o);
    const b = sol.backward([null, { x: f64([1]), v: f64([0.3]) }, { x: f64([-1]), v: f64([2]) }]);
    return {
      ys: sol.ys.map((y) => [...arr(y.x), ...arr(y.v)]),
      stats: sol.stats,
      y0: [...arr(b.y0.x), ...arr(b.y0.v)],
      p: arr(b.params),
      bstats: b.stats,
    };
  };
  const flat = grads({ rtol: 1e-8, atol: 1e-8, pcoeff: 0.2, icoeff: 0.65 });
  assert.deepEqual(grads({ stepSizeController: new PIDController({ rtol: 1e-8, atol: 1e-8, pcoeff: 0.2, icoeff: 0.65 }) }), flat);
  assert.deepEqual(
    grads({ stepSizeController: new PIDController({ rtol: 1e-8, atol: 1e-8 }), adjoint: { rtol: 1e-5, atol: 1e-5 } }),
    grads({ rtol: 1e-8, atol: 1e-8, adjoint: { rtol: 1e-5, atol: 1e-5 } }),
    "adjoint tolerances override a forward controller",
  );
  // a backward controller of its own: numbers as tolerances for the augmented state
  const own = grads({
    stepSizeController: new PIDController({ rtol: 1e-8, atol: 1e-8 }),
    adjoint: { stepSizeController: new PIDController({ rtol: 1e-5, atol: 1e-5, pcoeff: 0.1 }) },
  });
  assert.deepEqual(own, grads({ rtol: 1e-8, atol: 1e-8, adjoint: { rtol: 1e-5, atol: 1e-5, pcoeff: 0.1 } }));
  const fixed = grads({ method: "rk4", stepSizeController: new ConstantStepSize({ steps: 10 }) });
  assert.deepEqual(fixed, grads({ method: "rk4", steps: 10 }));
  assert.deepEqual(fixed.bstats, { nfev: 80, accepted: 20, rejected: 0 });
  // a looser backward solve changes the gradient only within its tolerance
  assert.ok(Math.abs(flat.p[0] - own.p[0]) < 1e-3, `∂L/∂p: ${flat.p[0]} vs ${own.p[0]}`);
  // mixing a forward controller with flat backward step options, or trees as backward tolerances, is refused
  assert.throws(
    () => grads({ stepSizeController: new PIDController(), adjoint: { steps: 5 } }),
    /odeintAdjoint \(backward solve\): options\.adjoint gives the step options steps but the forward solve uses a stepSizeController; expected options\.adjoint\.stepSizeController/,
  );
  assert.throws(
    () => grads({ adjoint: { stepSizeController: new PIDController({ rtol: { x: 1e-6, v: 1e-6 } }) } }),
    /backward solve's rtol is a tree; expected one number/,
  );
  assert.throws(
    () => grads({ adjoint: { stepSizeController: new PIDController(), rtol: 1e-6 } }),
    /options give both stepSizeController and the step options rtol/,
  );
});

test("bad controllers and controller settings are rejected with what was expected", () => {
  const cases: [() => unknown, RegExp][] = [
    [() => new PIDController({ rtol: -1 }), /^PIDController: rtol is -1; expected a finite number >= 0/],
    [() => new PIDController({ atol: "1e-6" as unknown as number }), /^PIDController: atol is string; expected a number >= 0 or a tree/],
    [() => new PIDController({ rtol: 0, atol: 0 }), /rtol and atol are both 0/],
    [
      () => new PIDController({ maxStep: 0.1 } as PIDControllerSettings),
      /^PIDController: unknown option 'maxStep'; expected one of rtol, atol, pcoeff, icoeff, dcoeff, safety, factorMin, factorMax, dtmin, dtmax, firstStep, maxSteps/,
    ],
    [() => new PIDController({ dcoeff: NaN }), /dcoeff is NaN; expected a finite number/],
    [() => new PIDController({ icoeff: 0 }), /pcoeff \+ icoeff \+ dcoeff is 0; expected a positive sum/],
    [() => new PIDController({ pcoeff: -1, icoeff: 0.5 }), /pcoeff \+ icoeff \+ dcoeff is -0\.5; expected a positive sum/],
    [() => new PIDController({ growAfterReject: 1 as unknown as boolean }), /growAfterReject is 1; expected true or false/],
    [() => new PIDController({ safety: 1.5 }), /safety is 1\.5; expected a factor in \(0, 1\]/],
    [() => new PIDController({ factorMin: 1 }), /factorMin is 1; expected a factor in \(0, 1\)/],
    [() => new PIDController({ factorMax: 0.5 }), /factorMax is 0\.5; expected a factor > 1/],
    [() => new PIDController({ dtmin: -1 }), /dtmin is -1; expected a finite number >= 0/],
    [() => new PIDController({ dtmax: 0 }), /dtmax is 0; expected a finite number > 0/],
    [() => new PIDController({ dtmin: 1, dtmax: 0.5 }), /dtmin \(1\) is larger than dtmax \(0\.5\)/],
    [() => new PIDController({ firstStep: 0 }), /firstStep is 0; expected a finite number > 0/],
    [() => new PIDController({ maxSteps: 2.5 }), /maxSteps is 2\.5; expected a positive integer/],
    [() => new PIDController(null as unknown as PIDControllerSettings), /^PIDController: options is null; expected an object/],
    [
      () => new ConstantStepSize({ dt: 0.1, steps: 3 }),
      /^ConstantStepSize: both dt \(0\.1\) and steps \(3\) are given; expected at most one/,
    ],
    [() => new ConstantStepSize({ steps: 0 }), /^ConstantStepSize: steps is 0; expected a positive integer/],
    [() => new ConstantStepSize({ dt: NaN }), /^ConstantStepSize: dt is NaN; expected a finite number > 0/],
    [() => new ConstantStepSize({ step: 3 } as object), /^ConstantStepSize: unknown option 'step'; expected one of dt, steps, maxSteps/],
    [
      () => odeint(f, y0(), [0, 1], { stepSizeController: new PIDController(), rtol: 1e-6, maxStep: 1 }),
      /^odeint: options give both stepSizeController and the step options rtol, maxStep; expected one or the other/,
    ],
    [
      () => odeint(f, y0(), [0, 1], { stepSizeController: "pid" as unknown as PIDController }),
      /^odeint: stepSizeController is string; expected a ConstantStepSize, a PIDController/,
    ],
    [
      () => odeint(f, y0(), [0, 1], { stepSizeController: {} as PIDController }),
      /^odeint: stepSizeController\.kind is undefined; expected 'fixed' .* or 'adaptive'/,
    ],
    [
      () =>
        odeint(f, y0(), [0, 1], {
          stepSizeController: {
            kind: "adaptive",
            name: "x",
            init: () => ({ h: 1, state: 0 }),
            adapt: () => ({ accept: true, h: 1, state: 0 }),
          } as unknown as PIDController,
        }),
      /adaptive' has no maxSteps; expected a positive integer/,
    ],
    [
      () => odeint(f, y0(), [0, 1], { stepSizeController: { kind: "fixed", name: "x" } as unknown as ConstantStepSize }),
      /of kind 'fixed' has no stepsBetween method/,
    ],
    [
      () => odeint(f, y0(), [0, 1], { method: "euler", stepSizeController: new PIDController() }),
      /^odeint: the PIDController chooses steps from an error estimate, but method 'euler' has none; expected an adaptive method \(bosh3, dopri5, tsit5.*\) or a ConstantStepSize/,
    ],
  ];
  for (const [fn, re] of cases) assert.match(thrown(fn), re);
  // a user-written controller that proposes an invalid step size is caught by the driver
  const broken: AdaptiveStepSizeController<null> = {
    kind: "adaptive",
    name: "broken controller",
    maxSteps: 100,
    init: () => ({ h: 0.1, state: null }),
    adapt: () => ({ accept: true, h: NaN, state: null }),
  };
  assert.match(
    thrown(() => odeint(f, y0(), [0, 1], { stepSizeController: broken })),
    /^odeint: the broken controller chose a next step of h = NaN at t = 0\.1; expected a finite number > 0/,
  );
  const noStart: AdaptiveStepSizeController<null> = { ...broken, init: () => ({ h: -1, state: null }) };
  assert.throws(() => odeint(f, y0(), [0, 1], { stepSizeController: noStart }), /chose a first step of h = -1 at t = 0/);
  // whatever a controller says, a step that produced NaN/Inf is not kept
  const accepting: AdaptiveStepSizeController<null> = {
    ...broken,
    maxSteps: 1000,
    init: () => ({ h: 0.125, state: null }),
    adapt: () => ({ accept: true, h: 0.125, state: null }),
  };
  const nanAfter = (t: number, y: Tensor) => (t > 0.5 ? mul(y, NaN) : mul(y, -1));
  assert.match(
    thrown(() => odeint(nanAfter, f64([1]), [0, 1], { stepSizeController: accepting })),
    /^odeint: non-finite state at t = 0\.5: a dopri5 step to t = 0\.625 produced NaN\/Inf .*in 41 consecutive attempts/,
  );
});

test("PIDController takes diffrax-style negative coefficients: the closed-form factor, and an accurate solve", () => {
  // p + i + d = 1.0 > 0 with a negative derivative (and proportional) coefficient
  const c = new PIDController({ pcoeff: -0.2, icoeff: 1.4, dcoeff: -0.2, safety: 1, factorMin: 1e-3, factorMax: 1e3, firstStep: 1 });
  let { h, state } = c.init({ errorOrder: 0 } as ControllerStart);
  const hist = [1, 1];
  for (const e of [0.5, 0.25, 0.8]) {
    const d = c.adapt({ t: 0, h, ratio: e }, state);
    // ε_n^-(p+i+d) · ε_{n-1}^(p+2d) · ε_{n-2}^(-d) with p = d = -0.2, i = 1.4
    const expected = Math.pow(e, -1) * Math.pow(hist[0], -0.6) * Math.pow(hist[1], 0.2);
    assert.ok(Math.abs(d.h - h * expected) <= 1e-15 * h * expected, `ε = ${e}: ${d.h} vs ${h * expected}`);
    hist.unshift(e);
    h = d.h;
    state = d.state;
  }
  const sol = odeint(f, y0(), [0, T], {
    stepSizeController: new PIDController({ rtol: 1e-8, atol: 1e-8, pcoeff: -0.1, icoeff: 1.2, dcoeff: -0.05 }),
  });
  const ex = oscillator.exact(OMEGA, 1, 0.5, T);
  assert.ok(Math.abs(arr(sol[1].x)[0] - ex.x) < 1e-6 && Math.abs(arr(sol[1].v)[0] - ex.v) < 1e-6);
});
