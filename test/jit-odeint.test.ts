/**
 * A jitted vector field in odeint: the solution equals the one with the eager field bit for bit (same steps, same
 * values: the jitted program is bit-identical to op-by-op execution), and gradients through the solve (the
 * jitted field runs op by op under grad) equal the eager gradients.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { add, grad, jit, mul, split, concat, sub, sum, square, tensor, type Tensor } from "@qkvflow/autograd";
import { odeintWithStats } from "@qkvflow/ode";

/** Van der Pol oscillator, mu = 2, as a field on a float64 [2] state. */
const vdp = (y: Tensor): Tensor => {
  const [x, v] = split(y, 2, 0);
  return concat([v, sub(mul(mul(sub(1, square(x)), v), 2), x)]);
};

test("odeint with a jitted field: bit-identical solution and the same gradients as the eager field", () => {
  const jf = jit(vdp);
  const y0 = tensor([2, 0], { dtype: "float64" });
  const opts = { method: "dopri5", rtol: 1e-8, atol: 1e-8 };
  const eager = odeintWithStats((_t: number, y: Tensor) => vdp(y), y0, [0, 3], opts);
  const fast = odeintWithStats((_t: number, y: Tensor) => jf(y), y0, [0, 3], opts);
  assert.deepEqual(fast.stats, eager.stats);
  assert.deepEqual(Array.from(fast.ys[1].data()), Array.from(eager.ys[1].data()));
  assert.equal(jf.cacheSize, 1, "one program for every evaluation");
  const loss = (field: (y: Tensor) => Tensor) => (y: Tensor) =>
    sum(square(add(odeintWithStats((_t: number, s: Tensor) => field(s), y, [0, 0.5], opts).ys[1], 0)));
  const ge = grad(loss(vdp))(y0) as Tensor;
  const gj = grad(loss(jf))(y0) as Tensor;
  assert.deepEqual(Array.from(gj.data()), Array.from(ge.data()));
});
