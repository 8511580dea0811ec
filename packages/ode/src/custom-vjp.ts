/**
 * customVjp: a function with a hand-written backward pass, built on the public surface of @qkvflow/autograd
 * (the `Tensor._node` slot and the `GradNode` shape). The forward runs without recording; the outputs are
 * attached to one hidden node whose rule calls `bwd` once with the cotangents of all outputs together.
 *
 * How it fits the engine: node ids grow with creation and the backward walk visits nodes in descending id
 * order, so a hub node created after the inputs and before the outputs is reached after every output. Each
 * output's rule stores its cotangent and passes a dummy scalar cotangent to the hub; the hub's rule then runs
 * `bwd` with all stored cotangents. Fresh ids are taken from the engine by running a trivial op on a tracked
 * tensor. First-order reverse mode only: forward mode (jvp) through a customVjp function is refused.
 */
import { mul, noGrad, stopGradient, Tensor, treeFlatten, zeros, type GradNode } from "@qkvflow/autograd";

function isFloat(x: Tensor): boolean {
  return x.dtype === "float32" || x.dtype === "float64";
}

/** A fresh node id from the engine, or null when nothing is being recorded for `tracked`. */
function freshId(tracked: Tensor): number | null {
  const probe = mul(tracked, 0);
  return probe._node ? probe._node.id : null;
}

/**
 * Wraps `fn` so that reverse-mode autodiff uses `bwd(cotangent, args, out)` (returning one cotangent tree per
 * argument, shaped like the arguments) instead of differentiating through `fn`. `fn` runs without recording.
 */
export function customVjp<A extends unknown[], R>(
  fn: (...args: A) => R,
  bwd: (cotangent: R, args: A, out: R) => A,
  name = "customVjp",
): (...args: A) => R {
  return (...args: A): R => {
    const argFlats = args.map((a) => treeFlatten(a));
    const inputs: Tensor[] = [];
    for (const fl of argFlats) inputs.push(...fl.leaves);
    for (const x of inputs) {
      if (x._tangents && x._tangents.size > 0) {
        throw new Error(`${name}: forward-mode differentiation (jvp) is not supported through this function (argument tensor [${x.shape.join(", ")}] carries a tangent); expected reverse mode (grad / vjp) only`);
      }
    }
    const out = noGrad(() => fn(...args));
    const tracked = inputs.filter((x) => x._node !== undefined && isFloat(x));
    if (tracked.length === 0) return out;
    const hubId = freshId(tracked[0]);
    if (hubId === null) return out; // inside noGrad: nothing to record

    const outFlat = treeFlatten(out);
    const stash = new Map<number, Tensor>();
    const hub = zeros([], "float32");
    const dummy = zeros([], "float32");
    const hubNode: GradNode = {
      id: hubId,
      name,
      parents: inputs,
      vjp: () => {
        const cts = outFlat.leaves.map((o, i) => stash.get(i) ?? zeros(o.shape, o.dtype));
        stash.clear();
        const ctTree = outFlat.unflatten(cts);
        const grads = bwd(ctTree, args, out);
        if (!Array.isArray(grads) || grads.length !== args.length) {
          throw new Error(`${name}: the backward function returned ${Array.isArray(grads) ? grads.length : typeof grads} cotangents; expected ${args.length}, one per argument`);
        }
        const result: (Tensor | null)[] = [];
        grads.forEach((g, ai) => {
          const leaves = treeFlatten(g).leaves;
          const want = argFlats[ai].leaves;
          if (leaves.length !== want.length) throw new Error(`${name}: the cotangent of argument ${ai} has ${leaves.length} tensors; expected ${want.length} like the argument`);
          leaves.forEach((c, li) => {
            const x = want[li];
            if (!isFloat(x)) {
              result.push(null);
              return;
            }
            if (c.dtype !== x.dtype || c.size !== x.size) {
              throw new Error(`${name}: the cotangent of argument ${ai}, leaf ${li} is ${c.dtype} [${c.shape.join(", ")}]; expected ${x.dtype} [${x.shape.join(", ")}] like the argument`);
            }
            result.push(c);
          });
        });
        return result;
      },
    };
    hub._node = hubNode;

    const outs = outFlat.leaves.map((o, i) => {
      if (!isFloat(o)) return o;
      const id = freshId(hub);
      const y = stopGradient(o); // a new tensor sharing storage, so an output that aliases an input keeps the input's node
      if (id === null) return y;
      y._node = {
        id,
        name: `${name}.output`,
        parents: [hub],
        vjp: (g: Tensor) => {
          stash.set(i, g);
          return [dummy];
        },
      };
      return y;
    });
    return outFlat.unflatten(outs);
  };
}
