import { test } from "node:test";
import assert from "node:assert/strict";
import * as ag from "../src/index.js";
import type { Tensor } from "../src/index.js";
import { record } from "../src/autodiff/engine.js";
import { checkGradients } from "./gradcheck.js";

const f64 = (data: number[] | number[][], shape?: number[]) => ag.tensor(data as number[], { dtype: "float64", shape });
const arr = (t: Tensor) => Array.from(t.data() as Float64Array);
function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-7, msg = "") {
  assert.equal(a.length, b.length, `${msg} lengths differ`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${msg} element ${i}: ${a[i]} vs ${b[i]}`);
  }
}

test("the gradient harness detects a wrong VJP rule", () => {
  // x ↦ 2x with a deliberately wrong cotangent rule (3g)
  const bad = (x: Tensor) => {
    const y = ag.mul(ag.stopGradient(x), 2);
    return record(y, [x], { name: "bad", vjp: (g) => [ag.mul(g, 3)], jvp: ([t]) => (t ? ag.mul(t, 2) : null) });
  };
  assert.throws(() => checkGradients("bad", bad, [f64([1, 2, 3])], [0], 1), /VJP mismatch/);
  const badJvp = (x: Tensor) => {
    const y = ag.mul(ag.stopGradient(x), 2);
    return record(y, [x], { name: "badJvp", vjp: (g) => [ag.mul(g, 2)], jvp: ([t]) => (t ? ag.mul(t, 5) : null) });
  };
  assert.throws(() => checkGradients("badJvp", badJvp, [f64([1, 2, 3])], [0], 1), /JVP mismatch/);
});

test("closed-form gradients: d/dx sum(x·tanh x) and its second derivative", () => {
  const x = f64([0.3, -1.2, 2.0]);
  const f = (x: Tensor) => ag.sum(ag.mul(x, ag.tanh(x)));
  const g = ag.grad(f)(x);
  const d1 = (v: number) => Math.tanh(v) + v * (1 - Math.tanh(v) ** 2);
  const d2 = (v: number) => {
    const s = 1 - Math.tanh(v) ** 2;
    return 2 * s - 2 * v * Math.tanh(v) * s;
  };
  assertClose(arr(g), [0.3, -1.2, 2.0].map(d1));
  const h = ag.grad((x: Tensor) => ag.sum(ag.grad(f)(x)))(x);
  assertClose(arr(h), [0.3, -1.2, 2.0].map(d2));
});

test("grad-of-grad of matmul: Hessian-vector product equals finite differences of the gradient", () => {
  const A = f64([
    [0.5, -1, 0.2],
    [0.1, 0.3, -0.7],
  ]);
  const B = f64([
    [1, 2],
    [-0.5, 0.4],
    [0.3, 0.9],
  ]);
  const f = (a: Tensor) => ag.sum(ag.tanh(ag.matmul(ag.matmul(a, B), a)));
  const v = f64([
    [0.2, -0.1, 0.4],
    [0.3, 0.5, -0.6],
  ]);
  const hvp = ag.grad((a: Tensor) => ag.sum(ag.mul(ag.grad(f)(a), v)))(A);
  const h = 1e-5;
  const gp = ag.grad(f)(ag.add(A, ag.mul(v, h)));
  const gm = ag.grad(f)(ag.sub(A, ag.mul(v, h)));
  const fd = arr(ag.div(ag.sub(gp, gm), 2 * h));
  assertClose(arr(hvp), fd, 1e-6);
  // forward-over-reverse gives the same Hessian-vector product
  const [, hvp2] = ag.jvp((a: Tensor) => ag.grad(f)(a), [A], [v]);
  assertClose(arr(hvp2 as Tensor), fd, 1e-6);
});

test("nested forward mode gives second derivatives", () => {
  const x = f64([0.7]);
  const one = f64([1]);
  const df = (x: Tensor) => ag.jvp((y: Tensor) => ag.sin(ag.mul(y, y)), [x], [one])[1] as Tensor;
  const [, d2] = ag.jvp(df as (...a: never[]) => Tensor, [x], [one]);
  // d²/dx² sin(x²) = 2cos(x²) − 4x² sin(x²)
  const v = 0.7;
  assertClose(arr(d2 as Tensor), [2 * Math.cos(v * v) - 4 * v * v * Math.sin(v * v)]);
});

test("perturbation confusion is avoided: d/dx [x · d/dy (x + y)] = 1", () => {
  const g = ag.grad((x: Tensor) => ag.sum(ag.mul(x, ag.grad((y: Tensor) => ag.sum(ag.add(x, y)))(f64([1])))))(f64([3]));
  assertClose(arr(g), [1]);
});

test("reverse and forward Jacobians agree with each other and with finite differences", () => {
  const W = f64([
    [1, 2, 0.5],
    [0.3, -1, 2],
  ]);
  const f = (x: Tensor) => ag.softmax(ag.matmul(W, ag.sin(x)));
  const x = f64([0.1, 0.5, -0.3]);
  const jr = ag.jacobian(f, { mode: "rev" })(x);
  const jf = ag.jacobian(f, { mode: "fwd" })(x);
  assert.deepEqual(jr.shape, [2, 3]);
  assertClose(arr(jr), arr(jf), 1e-12);
  const h = 1e-6;
  const cols: number[][] = [];
  for (let j = 0; j < 3; j++) {
    const e = [0, 0, 0];
    e[j] = h;
    const p = arr(f(ag.add(x, f64(e)))),
      m = arr(f(ag.sub(x, f64(e))));
    cols.push(p.map((v, i) => (v - m[i]) / (2 * h)));
  }
  const fd = [0, 1].flatMap((i) => [0, 1, 2].map((j) => cols[j][i]));
  assertClose(arr(jr), fd, 1e-6);
});

test("checkpoint gives the same gradients as the plain function, including closed-over tracked tensors", () => {
  const x0 = f64([
    [0.2, -0.4],
    [1.1, 0.3],
  ]);
  const p0 = f64([
    [0.5, 1.5],
    [-0.7, 0.2],
  ]);
  const body = (x: Tensor, p: Tensor) => ag.tanh(ag.matmul(ag.exp(ag.mul(x, 0.5)), p));
  const plain = (x: Tensor, p: Tensor) => ag.sum(ag.mul(body(body(x, p), p), 1.3));
  const ck = (x: Tensor, p: Tensor) => {
    const step = ag.checkpoint((h: Tensor) => body(h, p)); // p is closed over
    return ag.sum(ag.mul(step(step(x)), 1.3));
  };
  const [gx1, gp1] = ag.grad(plain, { argnums: [0, 1] })(x0, p0);
  const [gx2, gp2] = ag.grad(ck, { argnums: [0, 1] })(x0, p0);
  assertClose(arr(gx2), arr(gx1), 1e-12);
  assertClose(arr(gp2), arr(gp1), 1e-12);
  // second order through checkpoint
  const h1 = ag.grad((x: Tensor) => ag.sum(ag.grad(plain)(x, p0)))(x0);
  const h2 = ag.grad((x: Tensor) => ag.sum(ag.grad(ck)(x, p0)))(x0);
  assertClose(arr(h2), arr(h1), 1e-12);
  // tree outputs through checkpoint
  const two = ag.checkpoint((x: Tensor) => ({ a: ag.sin(x), b: [ag.cos(x)] }));
  const g3 = ag.grad((x: Tensor) => {
    const o = two(x);
    return ag.sum(ag.mul(o.a, o.b[0]));
  })(x0);
  assertClose(
    arr(g3),
    arr(x0).map((v) => Math.cos(2 * v)),
    1e-12,
  );
});

test("grad over trees, argnums and hasAux", () => {
  const params = {
    w: f64([
      [1, 2],
      [3, 4],
    ]),
    b: [f64([0.5, -0.5])],
  };
  const x = f64([1, -1]);
  const loss = (p: typeof params, x: Tensor) => {
    const y = ag.add(ag.matmul(p.w, x), p.b[0]);
    return [ag.sum(ag.mul(y, y)), y] as const;
  };
  const [[value, aux], g] = ag.valueAndGrad(loss, { hasAux: true })(params, x);
  // y = W x + b = [-1+0.5, -1-0.5] = [-0.5, -1.5]; dL/dy = 2y; dL/dW = 2y xᵀ; dL/db = 2y
  assertClose(arr(aux), [-0.5, -1.5]);
  assert.equal(value.item(), 0.25 + 2.25);
  assertClose(arr(g.w), [-1, 1, -3, 3]);
  assertClose(arr(g.b[0]), [-1, -3]);
  const gx = ag.grad((p: typeof params, x: Tensor) => loss(p, x)[0], { argnums: 1 })(params, x);
  // dL/dx = Wᵀ 2y = [1*-1 + 3*-3, 2*-1 + 4*-3]
  assertClose(arr(gx), [-10, -14]);
});

test("noGrad and stopGradient block gradients", () => {
  const x = f64([2]);
  const g = ag.grad((x: Tensor) => ag.add(ag.mul(x, x), ag.mul(ag.stopGradient(x), x)))(x);
  assertClose(arr(g), [2 * 2 + 2]);
  const g2 = ag.grad((x: Tensor) =>
    ag.add(
      ag.sum(x),
      ag.noGrad(() => ag.sum(ag.mul(x, 100))),
    ),
  )(x);
  assertClose(arr(g2), [1]);
});

test("softmax, logSoftmax, crossEntropy and logsumexp stay finite for logits of magnitude 1e4", () => {
  for (const dtype of ["float32", "float64"] as const) {
    const logits = ag.tensor(
      [
        [1e4, -1e4, 0],
        [-1e4, -1e4, -1e4],
        [5e3, 1e4, 1e4],
      ],
      { dtype },
    );
    const sm = Array.from(ag.softmax(logits).data());
    assertClose(sm, [1, 0, 0, 1 / 3, 1 / 3, 1 / 3, 0, 0.5, 0.5], 1e-6);
    const ls = Array.from(ag.logSoftmax(logits).data());
    assertClose(ls, [0, -2e4, -1e4, -Math.log(3), -Math.log(3), -Math.log(3), -5e3 - Math.log(2), -Math.log(2), -Math.log(2)], 1e-6);
    const lse = Array.from(ag.logsumexp(logits, -1).data());
    assertClose(lse, [1e4, -1e4 + Math.log(3), 1e4 + Math.log(2)], 1e-6);
    const t = ag.tensor([1, 0, 2], { dtype: "int32" });
    const ce = ag.crossEntropy(logits, t, { reduction: "none" });
    assertClose(Array.from(ce.data()), [2e4, Math.log(3), Math.log(2)], 1e-6);
    const g = ag.grad((z: Tensor) => ag.crossEntropy(z, t))(logits);
    assert.ok(Array.from(g.data()).every(Number.isFinite));
    assertClose(
      Array.from(g.data()),
      [1 / 3, -1 / 3, 0, (1 / 3 - 1) / 3, 1 / 9, 1 / 9, 0, 1 / 6, (0.5 - 1) / 3],
      dtype === "float32" ? 1e-3 : 1e-12,
    );
    // float32 carries ~7 significant digits, so at |logit| = 1e4 log-sum-exp is only known to ~1e-3 (as in any float32 framework)
  }
});

test("crossEntropy ignores ignoreIndex targets and matches −log softmax", () => {
  const logits = f64([
    [1, 2, 3],
    [0.5, 0.1, -1],
    [2, 2, 2],
  ]);
  const t = ag.tensor([2, -100, 0], { dtype: "int32" });
  const l = ag.crossEntropy(logits, t).item();
  const lsm = (row: number[], k: number) => row[k] - Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
  assertClose([l], [-(lsm([1, 2, 3], 2) + lsm([2, 2, 2], 0)) / 2], 1e-12);
  assertClose([ag.crossEntropy(logits, t, { reduction: "sum" }).item()], [-(lsm([1, 2, 3], 2) + lsm([2, 2, 2], 0))], 1e-12);
});

test("layerNorm normalises the last axis", () => {
  const x = f64([
    [1, 2, 3, 4],
    [2, 2, 2, 6],
  ]);
  const y = arr(ag.layerNorm(x, null, null, 0));
  const norm = (r: number[]) => {
    const m = r.reduce((a, b) => a + b) / r.length;
    const v = r.reduce((a, b) => a + (b - m) ** 2, 0) / r.length;
    return r.map((e) => (e - m) / Math.sqrt(v));
  };
  assertClose(y, [...norm([1, 2, 3, 4]), ...norm([2, 2, 2, 6])], 1e-12);
});

test("layerNorm: gamma/beta layouts give the hand-computed affine result and shape; bad input is refused", () => {
  const x = f64([
    [1, 2, 3, 4],
    [2, 2, 2, 6],
  ]);
  const norm = (r: number[]) => {
    const m = r.reduce((a, b) => a + b) / r.length;
    const v = r.reduce((a, b) => a + (b - m) ** 2, 0) / r.length;
    return r.map((e) => (e - m) / Math.sqrt(v + 1e-5));
  };
  const xh = [...norm([1, 2, 3, 4]), ...norm([2, 2, 2, 6])];
  const g = [0.5, 1, 1.5, 2],
    b = [0, 1, 0, -1];
  const want = xh.map((v, i) => v * g[i % 4] + b[i % 4]);
  // [E] (fused), [1, 1, E] (fused, broadcasting the result up to rank 3), full-shape gamma (ordinary ops)
  assertClose(arr(ag.layerNorm(x, f64(g), f64(b))), want, 1e-12, "[E]");
  const y3 = ag.layerNorm(x, f64(g, [1, 1, 4]), f64(b, [1, 4]));
  assert.deepEqual(y3.shape, [1, 2, 4]);
  assertClose(arr(y3), want, 1e-12, "[1,1,E]");
  assertClose(arr(ag.layerNorm(x, f64([...g, ...g], [2, 4]), f64(b))), want, 1e-12, "full gamma");
  // float32 (WebAssembly kernels) agrees with float64 to float32 accuracy
  const y32 = ag.layerNorm(ag.cast(x, "float32"), ag.tensor(g), ag.tensor(b)).data();
  assertClose(Array.from(y32), want, 1e-6, "float32");
  assert.throws(() => ag.layerNorm(x, f64([1, 2, 3])), /layerNorm: gamma has shape \[3\]; expected a last axis of 4/);
  assert.throws(() => ag.layerNorm(x, null, null, -1), /layerNorm: eps is -1; expected a finite number >= 0/);
  assert.throws(() => ag.layerNorm(f64([1]).reshape([]) as Tensor), /layerNorm: got a scalar/);
  assert.throws(() => ag.layerNorm(x, ag.tensor(g)), /layerNorm: dtype mismatch/);
});

test("gelu and its gradient in float32 match the float64 values, and large |x| stays finite", () => {
  const xs = [-100, -12, -3, -0.5, 0, 0.5, 3, 12, 100];
  const ref = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  const dref = (v: number) => (ref(v + 1e-6) - ref(v - 1e-6)) / 2e-6;
  const x32 = ag.tensor(xs);
  const [y, gx] = ag.valueAndGrad((x: Tensor) => ag.sum(ag.gelu(x)))(x32);
  assertClose([y.item()], [xs.reduce((a, v) => a + ref(v), 0)], 1e-6);
  assertClose(Array.from(gx.data()), xs.map(dref), 1e-5, "gelu′");
  assert.ok(Array.from(gx.data()).every(Number.isFinite));
});

test("dropout is deterministic per key, scales kept values and keeps the expected fraction", () => {
  const x = ag.ones([10000]);
  const k = ag.random.key(3);
  const a = ag.dropout(x, 0.25, k).data();
  const b = ag.dropout(x, 0.25, k).data();
  assert.deepEqual(Array.from(a), Array.from(b));
  const kept = Array.from(a).filter((v) => v !== 0);
  assert.ok(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6));
  assert.ok(Math.abs(kept.length / 10000 - 0.75) < 0.02, `kept fraction ${kept.length / 10000}`);
  assert.equal(ag.dropout(x, 0.25, null, false), x);
});

test("oneHot and causalMask", () => {
  assert.deepEqual(ag.oneHot(ag.tensor([2, 0], { dtype: "int32" }), 3).toArray(), [
    [0, 0, 1],
    [1, 0, 0],
  ]);
  assert.deepEqual(ag.causalMask(3).toArray(), [
    [1, 0, 0],
    [1, 1, 0],
    [1, 1, 1],
  ]);
});

test("comparisons return boolean masks", () => {
  const a = f64([1, 2, 3]);
  const m = ag.gt(a, 1.5);
  assert.equal(m.dtype, "bool");
  assert.deepEqual(m.toArray(), [0, 1, 1]);
  assert.deepEqual(ag.where(m, a, ag.neg(a)).toArray(), [-1, 2, 3]);
});

test("errors name the op, the shapes and what was expected", () => {
  assert.throws(
    () => ag.matmul(ag.zeros([2, 3]), ag.zeros([4, 5])),
    /matmul: inner dimensions differ: \[2, 3\] · \[4, 5\] contracts 3 with 4/,
  );
  assert.throws(() => ag.add(ag.zeros([2, 3]), ag.zeros([4])), /add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
  assert.throws(() => ag.add(ag.zeros([2], "float32"), ag.zeros([2], "float64")), /add: dtype mismatch: float32 \[2\] and float64 \[2\]/);
  assert.throws(() => ag.reshape(ag.zeros([2, 3]), [4]), /reshape: cannot reshape \[2, 3\] \(6 elements\) to \[4\]/);
  assert.throws(() => ag.take(ag.zeros([3]), ag.tensor([3], { dtype: "int32" })), /take: index 3 is out of range for axis 0 of size 3/);
  assert.throws(
    () => ag.crossEntropy(ag.zeros([2, 3]), ag.tensor([1, 2, 0], { dtype: "int32" })),
    /crossEntropy: logits \[2, 3\] and targets \[3\]/,
  );
  assert.throws(
    () => ag.grad((x: Tensor) => ag.mul(x, 2))(ag.zeros([3])),
    /grad: the function returned float32 \[3\]; expected a float tensor with one element/,
  );
});

test("matmul follows NumPy's 1-D and broadcasting rules", () => {
  const a = f64([1, 2, 3]);
  const M = f64([
    [1, 0, 2],
    [0, 1, 1],
  ]);
  assert.deepEqual(ag.matmul(a, a).shape, []);
  assert.equal(ag.matmul(a, a).item(), 14);
  assert.deepEqual(ag.matmul(M, a).toArray(), [7, 5]);
  assert.deepEqual(ag.matmul(f64([1, 1]), M).toArray(), [1, 1, 3]);
  const batch = ag.reshape(f64(Array.from({ length: 12 }, (_, i) => i)), [2, 2, 3]);
  const r = ag.matmul(batch, ag.mT(M));
  assert.deepEqual(r.shape, [2, 2, 2]);
  assert.deepEqual(r.toArray(), [
    [
      [4, 3],
      [13, 9],
    ],
    [
      [22, 15],
      [31, 21],
    ],
  ]);
});

test("customVjp uses the hand-written backward once for all outputs", () => {
  let calls = 0;
  const f = ag.customVjp(
    (x: Tensor, y: Tensor) => [ag.mul(x, y), ag.add(x, y)] as Tensor[],
    (ct: Tensor[], [x, y]: [Tensor, Tensor]) => {
      calls++;
      return [ag.add(ag.mul(ct[0], y), ct[1]), ag.add(ag.mul(ct[0], x), ct[1])] as [Tensor, Tensor];
    },
  );
  const x = f64([1, 2]),
    y = f64([3, -1]);
  const loss = (x: Tensor, y: Tensor) => {
    const [p, s] = f(x, y);
    return ag.sum(ag.add(ag.mul(p, 2), ag.mul(s, s)));
  };
  const [gx, gy] = ag.grad(loss, { argnums: [0, 1] })(x, y);
  assert.equal(calls, 1);
  // d/dx [2xy + (x+y)²] = 2y + 2(x+y)
  assertClose(arr(gx), [2 * 3 + 2 * 4, 2 * -1 + 2 * 1]);
  assertClose(arr(gy), [2 * 1 + 2 * 4, 2 * 2 + 2 * 1]);
  assert.throws(() => ag.jvp((x: Tensor) => f(x, y)[0], [x], [x]), /forward-mode differentiation \(jvp\) is not supported/);
});
