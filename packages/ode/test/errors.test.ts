import { test } from "node:test";
import assert from "node:assert/strict";
import { mul, square, tensor, type Tensor } from "@qkvflow/autograd";
import { explicitRK, odeint, odeintAdjoint, odeintAdjointVjp, registerSolver, unregisterSolver, validateTableau } from "../src/index.js";
import { f64, oscillator } from "./helpers.js";

const blowup = (_t: number, y: Tensor) => square(y); // y' = y², y(0) = 1 → y = 1/(1 − t), singular at t = 1

function timeIn(msg: string, re: RegExp): number {
  const m = re.exec(msg);
  assert.ok(m, `message does not match ${re}: ${msg}`);
  return Number(m[1]);
}

function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail("expected an error");
}

test("non-finite state with fixed steps: reported at the output time (default) or at the step ('step')", () => {
  const msg = thrown(() => odeint(blowup, f64([1]), [0, 0.5, 3], { method: "euler", steps: 60 }));
  assert.match(msg, /^odeint: non-finite state at t = 3 \(leaf 0, element 0 is (NaN|Infinity)\); it was finite at t = 0\.5/);
  const msg2 = thrown(() => odeint(blowup, f64([1]), [0, 3], { method: "euler", steps: 60, checkFinite: "step" }));
  const t = timeIn(msg2, /non-finite state at t = ([\d.e-]+) /);
  assert.ok(t > 1 && t < 3, `blow-up reported at t = ${t}`);
  // the reported step is the first non-finite one: one step earlier the state was finite
  const before = odeint(blowup, f64([1]), [0, t - 0.05], { method: "euler", steps: Math.round((t - 0.05) / 0.05) });
  assert.ok(Number.isFinite(before[1].item()));
  // 'off' skips the check
  const ys = odeint(blowup, f64([1]), [0, 3], { method: "euler", steps: 60, checkFinite: "off" });
  assert.ok(!Number.isFinite(ys[1].item()));
});

test("adaptive solve into a singularity fails with a step size underflow naming the time reached", () => {
  const msg = thrown(() => odeint(blowup, f64([1]), [0, 2], { method: "dopri5", rtol: 1e-6, atol: 1e-6, maxSteps: 100000 }));
  assert.match(msg, /^odeint: step size underflow at t = /);
  const t = timeIn(msg, /at t = ([\d.e-]+) /);
  assert.ok(Math.abs(t - 1) < 1e-3, `stopped at t = ${t}; the singularity is at t = 1`);
  assert.match(msg, /before reaching t = 2/);
});

test("adaptive solve where f turns NaN: the failure names the time and the non-finite values", () => {
  const f = (t: number, y: Tensor) => (t > 1.5 ? mul(y, NaN) : mul(y, -1));
  const msg = thrown(() => odeint(f, f64([1]), [0, 3], { method: "dopri5" }));
  const t = timeIn(msg, /at t = ([\d.e-]+)/);
  assert.ok(Math.abs(t - 1.5) < 1e-6, `stopped at t = ${t}; f is NaN after t = 1.5`);
  assert.match(msg, /NaN/);
});

test("maximum number of steps exceeded", () => {
  const msg = thrown(() => odeint(oscillator.f(1), { x: f64([1]), v: f64([0]) }, [0, 100], { method: "dopri5", maxSteps: 10 }));
  assert.match(msg, /^odeint: maximum number of steps \(10\) exceeded at t = [\d.e-]+ before reaching t = 100 \(10 accepted, 0 rejected/);
  const msg2 = thrown(() => odeint(blowup, f64([0.1]), [0, 1], { method: "rk4", dt: 0.01, maxSteps: 50 }));
  assert.match(msg2, /maximum number of steps \(50\) exceeded at t = 0\.5/);
});

test("ts must be finite and strictly monotonic", () => {
  const f = (_t: number, y: Tensor) => y;
  assert.throws(
    () => odeint(f, f64([1]), [0, 1, 0.5]),
    /odeint: ts is not strictly monotonic: ts\[1\] = 1, ts\[2\] = 0\.5 while the times increase/,
  );
  assert.throws(() => odeint(f, f64([1]), [1, 0, 0.5]), /ts\[1\] = 0, ts\[2\] = 0\.5 while the times decrease/);
  assert.throws(() => odeint(f, f64([1]), [0, 0]), /ts is not strictly monotonic: ts\[0\] = ts\[1\] = 0/);
  assert.throws(() => odeint(f, f64([1]), [0, NaN]), /ts\[1\] is NaN; expected a finite number/);
  assert.throws(() => odeint(f, f64([1]), []), /ts is empty/);
  // a single time returns the initial state
  const y0 = f64([1]);
  assert.equal(odeint(f, y0, [0])[0], y0);
  // Float64Array times are accepted
  assert.ok(Math.abs(odeint(f, y0, Float64Array.from([0, 1]), { method: "rk4", steps: 50 })[1].item() - Math.E) < 1e-8);
});

test("unknown method lists the registered ones", () => {
  const f = (_t: number, y: Tensor) => y;
  assert.throws(
    () => odeint(f, f64([1]), [0, 1], { method: "rk45" }),
    /odeint: unknown method 'rk45'; registered methods: euler, midpoint, heun, rk4, bosh3, dopri5, tsit5/,
  );
  assert.throws(
    () => odeintAdjoint((_t: number, y: Tensor) => y, f64([1]), [0, 1], {}, { method: "nope" }),
    /odeintAdjoint: unknown method 'nope'/,
  );
});

test("bad states, derivatives and options are rejected with what was expected", () => {
  const f = (_t: number, y: Tensor) => y;
  assert.throws(() => odeint(f, f64([1, NaN]), [0, 1]), /initial state is not finite at t = 0 \(leaf 0, element 1 is NaN\)/);
  assert.throws(
    () => odeint(f, tensor([1, 2], { dtype: "int32" }), [0, 1]),
    /y0 leaf 0 is a int32 tensor \[2\]; expected float32 or float64/,
  );
  const id = <Y>(_t: number, y: Y): Y => y;
  assert.throws(() => odeint(id, {}, [0, 1]), /y0 contains no tensors/);
  assert.throws(
    () => odeint((_t: number, _y: Tensor) => f64([1, 2]), f64([1, 2, 3]), [0, 1]),
    /f returned float64 \[2\] for leaf 0 at t = 0; expected float64 \[3\]/,
  );
  assert.throws(
    () =>
      odeint((_t: number, y: { a: Tensor; b: Tensor }) => ({ a: y.a }) as { a: Tensor; b: Tensor }, { a: f64([1]), b: f64([2]) }, [0, 1]),
    /f returned 1 tensors at t = 0; expected 2/,
  );
  assert.throws(() => odeint(f, f64([1]), [0, 1], { dt: 0.1, steps: 3 }), /both dt \(0\.1\) and steps \(3\) are given/);
  assert.throws(() => odeint(f, f64([1]), [0, 1], { dt: -1 }), /dt is -1; expected a finite number > 0/);
  assert.throws(() => odeint(f, f64([1]), [0, 1], { steps: 2.5 }), /steps is 2\.5; expected a positive integer/);
  assert.throws(() => odeint(f, f64([1]), [0, 1], { factorMax: 0.5 }), /factorMax is 0\.5; expected a factor > 1/);
  assert.throws(() => odeint(id, { a: f64([1]), b: f64([1]) }, [0, 1], { rtol: { a: 1e-6 } }), /rtol has no key 'b'/);
  assert.throws(() => odeint(id, { a: f64([1]) }, [0, 1], { atol: { a: -1 } }), /atol\.a is -1; expected a finite number >= 0/);
  assert.throws(() => odeint(f, f64([1]), [0, 1], { rtol: 0, atol: 0 }), /rtol and atol are both 0 for state leaf 0/);
  assert.throws(() => odeint(f, f64([1]), [0, 1], { checkFinite: "always" as "step" }), /checkFinite is "always"/);
});

test("bad tableaux and registrations are rejected", () => {
  assert.throws(
    () => validateTableau({ name: "x", order: 1, c: [0, 0.5], a: [[], [0.4]], b: [0, 1] }),
    /row 1 of a sums to 0\.4; expected c\[1\] = 0\.5/,
  );
  assert.throws(
    () =>
      validateTableau({
        name: "x",
        order: 1,
        c: [0, 1],
        a: [
          [0, 1],
          [1, 0],
        ],
        b: [0.5, 0.5],
      }),
    /a\[0\]\[1\] = 1 is on or above the diagonal; expected an explicit/,
  );
  assert.throws(() => validateTableau({ name: "x", order: 1, c: [0, 1], a: [[], [1]], b: [0.5, 0.6] }), /the weights b sum to 1\.1/);
  assert.throws(() => validateTableau({ name: "x", order: 1, c: [0.1], a: [[]], b: [1] }), /c\[0\] is 0\.1; expected 0/);
  assert.throws(
    () => validateTableau({ name: "x", order: 2, c: [0, 1], a: [[], [1]], b: [0.5, 0.5], bErr: [0.5, 0.4] }),
    /error weights bErr sum to 0\.9/,
  );
  assert.throws(
    () => validateTableau({ name: "x", order: 2, c: [0, 1], a: [[], [1]], b: [0.5, 0.5], interp: [[0.5], [0.4]] }),
    /interp\[1\] evaluates to 0\.4 at θ = 1; expected b\[1\] = 0\.5/,
  );
  const heun = { name: "x", order: 2, c: [0, 1], a: [[], [1]], b: [0.5, 0.5] };
  assert.throws(() => validateTableau({ ...heun, bErr2: [0.5, -0.5] }), /bErr2 is given without bErr/);
  assert.throws(() => validateTableau({ ...heun, bErr: [0.5, -0.5], bErr2: [0.5, -0.25] }), /error weights bErr2 sum to 0\.25/);
  assert.throws(() => validateTableau({ ...heun, denseStages: { c: [0.5], a: [[0.25, 0.2]] } }), /row 0 of denseStages\.a sums to 0\.45/);
  assert.throws(() => validateTableau({ ...heun, denseStages: { c: [0.5], a: [[0.25, 0.25]] } }), /denseStages is given without interp/);
  assert.throws(
    () => validateTableau({ ...heun, denseStages: { c: [0.5], a: [[0.25, 0.25]] }, interp: [[0.5], [0.5]] }),
    /interp has 2 polynomials; expected 3 \(one per stage and extra dense stage\)/,
  );
  assert.throws(
    () => validateTableau({ ...heun, denseStages: { c: [0.5], a: [[0.25, 0.25]] }, interp: [[0.5], [0.5], [0.1]] }),
    /interp\[2\] evaluates to 0\.1 at θ = 1; expected 0 \(an extra dense stage\)/,
  );
  assert.throws(() => explicitRK({ name: "", order: 1, c: [0], a: [[]], b: [1] }), /tableau name is ""/);
  assert.throws(
    () => registerSolver("rk4", { name: "rk4", order: 1, c: [0], a: [[]], b: [1] }),
    /'rk4' is a built-in method and cannot be replaced/,
  );
  registerSolver("euler-copy-test", { name: "euler-copy-test", order: 1, c: [0], a: [[]], b: [1] });
  try {
    assert.throws(
      () => registerSolver("euler-copy-test", { name: "euler-copy-test", order: 1, c: [0], a: [[]], b: [1] }),
      /already registered; pass \{override: true\}/,
    );
  } finally {
    unregisterSolver("euler-copy-test");
  }
  assert.throws(() => registerSolver("bad name!", { name: "b", order: 1, c: [0], a: [[]], b: [1] }), /name "bad name!" is invalid/);
});

test("a fixed-step method without dt/steps takes one step per interval; adaptive backward cotangents are checked", () => {
  const sol = odeintAdjointVjp((_t: number, y: Tensor, p: Tensor) => mul(y, p), f64([1]), [0, 1], f64([-1]));
  assert.throws(() => sol.backward([null]), /odeintAdjoint \(backward solve\): got 1 cotangents; expected 2/);
  assert.throws(() => sol.backward([null, f64([1, 2])]), /cotangent 1 does not match the state: .*expected float64 \[1\]/);
});
