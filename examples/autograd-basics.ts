/**
 * A tour of @qkvflow/autograd: tensors, grad, forward mode, a tiny regression fitted by gradient descent.
 * Run: npx tsx examples/autograd-basics.ts
 */
import * as ag from "@qkvflow/autograd";

// Gradients of a scalar function (float64 for exact comparison with the closed form).
const x = ag.tensor([0.5, 1.0, 2.0], { dtype: "float64" });
const f = (x: ag.Tensor) => ag.sum(ag.mul(ag.sin(x), x));
const g: ag.Tensor = ag.grad(f)(x);
console.log(
  "d/dx Σ x·sin x      =",
  Array.from(g.data())
    .map((v) => v.toFixed(6))
    .join(", "),
);
console.log("closed form sin+x·cos =", [0.5, 1, 2].map((v) => (Math.sin(v) + v * Math.cos(v)).toFixed(6)).join(", "));

// Forward mode: a Jacobian-vector product, and a Hessian-vector product (forward over reverse).
const v = ag.onesLike(x);
const [, jv] = ag.jvp((x: ag.Tensor) => ag.mul(ag.sin(x), x), [x], [v]);
const [, hv] = ag.jvp((x: ag.Tensor) => ag.grad(f)(x), [x], [v]);
console.log(
  "J·1 =",
  Array.from((jv as ag.Tensor).data())
    .map((v) => v.toFixed(6))
    .join(", "),
);
console.log(
  "H·1 =",
  Array.from((hv as ag.Tensor).data())
    .map((v) => v.toFixed(6))
    .join(", "),
);

// Fit y = 3x − 2 with noise by gradient descent on a parameter tree.
const key = ag.random.key(0);
const [kx, kn] = ag.random.split(key, 2);
const xs = ag.random.uniform(kx, [256, 1], { low: -1, high: 1 });
const ys = ag.add(ag.sub(ag.mul(xs, 3), 2), ag.random.normal(kn, [256, 1], { std: 0.1 }));
let params = { w: ag.zeros([1, 1]), b: ag.zeros([1]) };
const loss = (p: typeof params) => ag.mean(ag.square(ag.sub(ag.add(ag.matmul(xs, p.w), p.b), ys)));
const step = ag.valueAndGrad(loss);
for (let i = 0; i <= 200; i++) {
  const [l, grads] = step(params);
  params = ag.treeZip(params, grads, (p, gp) => ag.sub(p, ag.mul(gp, 0.1)));
  if (i % 50 === 0) console.log(`step ${i.toString().padStart(3)}  loss ${l.item().toFixed(5)}`);
}
console.log(`fitted w = ${params.w.item().toFixed(3)} (true 3), b = ${params.b.item().toFixed(3)} (true −2)`);
