import {
  backward,
  detached,
  hasActiveTangent,
  identity,
  isRecording,
  leafOf,
  makeCheckpointNodes,
  makeGroupNodes,
  noGrad,
  peekNodeId,
  popForward,
  popReverse,
  probeTracked,
  pushForward,
  pushReverse,
  setTangent,
  tangentOf,
} from "./engine.js";
import { isFloat } from "../dtype.js";
import { fmt, shapesEqual } from "../shape.js";
import { Tensor } from "../tensor.js";
import { treeFlatten, type Tree } from "../tree.js";
import { full } from "../ops/creation.js";
import { reshape, stack } from "../ops/shape-ops.js";

export { noGrad };

function zerosOf(x: Tensor): Tensor {
  return new Tensor(x._backend.zeros(x.dtype, x.size), x.shape, x.dtype, x._backend);
}

/**
 * Reverse mode: evaluates `f(...primals)` and returns its output with a pullback mapping an output cotangent
 * (same tree structure as the output) to cotangents of every primal (same structures as the primals).
 */
export function vjp<A extends unknown[], R>(f: (...args: A) => R, ...primals: A): [R, (cotangent: R) => A] {
  const { level, minId } = pushReverse();
  const flats = primals.map((p) => treeFlatten(p));
  let out: R;
  let leaves: Tensor[][];
  try {
    leaves = flats.map((fl) => fl.leaves.map(leafOf));
    out = f(...(flats.map((fl, i) => fl.unflatten(leaves[i])) as A));
  } finally {
    popReverse(level);
  }
  const outFlat = treeFlatten(out).leaves;
  const pullback = (ct: R): A => {
    const ctFlat = treeFlatten(ct).leaves;
    if (ctFlat.length !== outFlat.length)
      throw new Error(`vjp: cotangent has ${ctFlat.length} tensors; expected ${outFlat.length} (the output's structure)`);
    const roots = outFlat.map((o, i) => {
      const c = ctFlat[i];
      if (!shapesEqual(c.shape, o.shape) || c.dtype !== o.dtype) {
        throw new Error(`vjp: cotangent ${i} is ${c.dtype} ${fmt(c.shape)}; expected ${o.dtype} ${fmt(o.shape)} like the output`);
      }
      return { tensor: o, ct: c };
    });
    const keep = new Set<number>();
    for (const ls of leaves) for (const l of ls) if (l._node) keep.add(l._node.id);
    const grads = backward(roots, minId, keep);
    return flats.map((fl, i) => fl.unflatten(leaves[i].map((l) => (l._node ? grads.get(l._node.id) : undefined) ?? zerosOf(l)))) as A;
  };
  return [out, pullback];
}

/** Options of grad / valueAndGrad. */
export interface GradOptions {
  /** Which positional arguments to differentiate (default 0). An array returns a tuple of gradients. */
  argnums?: number | readonly number[];
  /** `f` returns [loss, aux]; aux is passed through. */
  hasAux?: boolean;
}

function scalarLoss(name: string, v: unknown): Tensor {
  if (!(v instanceof Tensor) || v.size !== 1 || !isFloat(v.dtype)) {
    throw new Error(
      `${name}: the function returned ${v instanceof Tensor ? `${v.dtype} ${fmt(v.shape)}` : typeof v}; expected a float tensor with one element`,
    );
  }
  return v;
}

/** Returns a function computing [value, gradients] of a scalar function. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function valueAndGrad<A extends unknown[]>(f: (...args: A) => unknown, opts: GradOptions = {}): (...args: A) => [any, any] {
  const argnums = opts.argnums ?? 0;
  const list = typeof argnums === "number" ? [argnums] : [...argnums];
  return (...args: A) => {
    for (const a of list)
      if (!Number.isInteger(a) || a < 0 || a >= args.length)
        throw new Error(`grad: argnums ${a} is out of range for ${args.length} arguments`);
    const picked = list.map((a) => args[a]);
    let aux: unknown;
    const gWithAux = (...sel: unknown[]) => {
      const full = [...args] as unknown[];
      list.forEach((a, i) => (full[a] = sel[i]));
      const r = f(...(full as A));
      if (opts.hasAux) {
        if (!Array.isArray(r) || r.length !== 2) throw new Error("grad: hasAux is set but the function did not return [loss, aux]");
        aux = r[1];
        return r[0];
      }
      return r;
    };
    const [value, pull] = vjp(gWithAux, ...picked);
    const loss = scalarLoss("grad", value);
    const grads = pull(full(loss.shape, 1, loss.dtype) as never);
    const result = typeof argnums === "number" ? grads[0] : grads;
    return [opts.hasAux ? [loss, aux] : loss, result];
  };
}

/** Returns a function computing the gradient of a scalar function with respect to `argnums`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function grad<A extends unknown[]>(f: (...args: A) => unknown, opts: GradOptions = {}): (...args: A) => any {
  const vg = valueAndGrad(f, opts);
  return (...args: A) => {
    const [v, g] = vg(...args);
    return opts.hasAux ? [g, v[1]] : g;
  };
}

/**
 * Forward mode: evaluates `f(...primals)` and the directional derivative along `tangents` (same structures as
 * the primals). Returns [output, output tangent].
 */
export function jvp<R>(f: (...args: never[]) => R, primals: readonly Tree[], tangents: readonly Tree[]): [R, R] {
  if (primals.length !== tangents.length)
    throw new Error(`jvp: ${primals.length} primals but ${tangents.length} tangents; expected one tangent per primal`);
  const level = pushForward();
  let out: R;
  try {
    const inputs = primals.map((p, i) => {
      const fp = treeFlatten(p);
      const ft = treeFlatten(tangents[i]).leaves;
      if (ft.length !== fp.leaves.length)
        throw new Error(`jvp: tangent ${i} has ${ft.length} tensors; expected ${fp.leaves.length} like its primal`);
      return fp.unflatten(
        fp.leaves.map((x, j) => {
          const t = ft[j];
          if (!shapesEqual(t.shape, x.shape) || t.dtype !== x.dtype) {
            throw new Error(`jvp: tangent ${t.dtype} ${fmt(t.shape)} does not match primal ${x.dtype} ${fmt(x.shape)}`);
          }
          const w = identity(x);
          if (isFloat(x.dtype)) setTangent(w, level, t);
          return w;
        }),
      );
    });
    out = (f as (...a: unknown[]) => R)(...inputs);
  } finally {
    popForward(level);
  }
  const fo = treeFlatten(out);
  const tangentOut = fo.unflatten(fo.leaves.map((o) => tangentOf(o, level) ?? zerosOf(o)));
  return [out, tangentOut];
}

/** Options of jacobian. */
export interface JacobianOptions {
  /** 'rev' (one VJP per output element, default) or 'fwd' (one JVP per input element). */
  mode?: "rev" | "fwd";
  argnums?: number;
}

/** Jacobian of a tensor function of tensors, shaped out.shape ++ in.shape. */
export function jacobian(f: (...args: Tensor[]) => Tensor, opts: JacobianOptions = {}): (...args: Tensor[]) => Tensor {
  const argnum = opts.argnums ?? 0;
  return (...args: Tensor[]) => {
    const x = args[argnum];
    if (!(x instanceof Tensor)) throw new Error(`jacobian: argument ${argnum} is not a Tensor`);
    const fx = (v: Tensor) => {
      const a = [...args];
      a[argnum] = v;
      return f(...a);
    };
    if ((opts.mode ?? "rev") === "rev") {
      const [y, pull] = vjp(fx, x);
      const rows: Tensor[] = [];
      for (let i = 0; i < y.size; i++) {
        const ct = basis(y, i);
        rows.push(reshape(pull(ct)[0], [x.size]));
      }
      return reshape(stack(rows, 0), [...y.shape, ...x.shape]);
    }
    const cols: Tensor[] = [];
    let yShape: readonly number[] = [];
    for (let j = 0; j < x.size; j++) {
      const [y, t] = jvp(fx as (...a: never[]) => Tensor, [x], [basis(x, j)]);
      yShape = y.shape;
      cols.push(reshape(t, [y.size]));
    }
    if (x.size === 0) return reshape(fx(x), [...fx(x).shape, 0]);
    return reshape(stack(cols, 1), [...yShape, ...x.shape]);
  };
}

function basis(like: Tensor, i: number): Tensor {
  const z = zerosOf(like);
  const d = z.data();
  d[i] = 1;
  return z;
}

/**
 * Wraps `fn` so that its intermediate values are not kept for the backward pass: the forward runs without
 * recording, and the backward pass recomputes it (with recording) when its cotangent is needed. Gradients are
 * the same as for `fn`; memory drops to the inputs and outputs of each checkpointed call.
 */
export function checkpoint<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return (...args: A) => {
    if (!isRecording()) return fn(...args);
    const { value, touched } = probeTracked(() => noGrad(() => fn(...args)));
    if (!touched) return value;
    const flat = treeFlatten(value);
    const outs = flat.leaves.map((o) => {
      const d = detached(o);
      d._tangents = o._tangents;
      return d;
    });
    makeCheckpointNodes(outs, () => treeFlatten(fn(...args)).leaves);
    return flat.unflatten(outs);
  };
}

/**
 * Wraps `fn` so that reverse mode uses a hand-written backward `bwd(cotangent, args, out)`, returning one
 * cotangent tree per argument (shaped like the arguments; non-float leaves are ignored), instead of
 * differentiating through `fn`. `fn` runs without recording, so its intermediates are not kept. Gradients flow
 * to the arguments only (not to tensors `fn` closes over). The backward runs with ordinary ops, so it is itself
 * differentiable when `bwd` is. Forward mode through a customVjp function is refused with an error.
 */
export function customVjp<A extends unknown[], R>(
  fn: (...args: A) => R,
  bwd: (cotangent: R, args: A, out: R) => A,
  name = "customVjp",
): (...args: A) => R {
  return (...args: A): R => {
    const argFlats = args.map((a) => treeFlatten(a));
    const inputs = argFlats.flatMap((f) => f.leaves);
    for (const x of inputs) {
      if (hasActiveTangent(x)) {
        throw new Error(
          `${name}: forward-mode differentiation (jvp) is not supported through this function (an argument ${x} carries a tangent); expected reverse mode (grad / vjp) only`,
        );
      }
    }
    if (!isRecording() || !inputs.some((x) => x._node && isFloat(x.dtype))) return fn(...args);
    const out = noGrad(() => fn(...args));
    const outFlat = treeFlatten(out);
    const outs = outFlat.leaves.map((o) => detached(o));
    const members = outs.filter((o) => isFloat(o.dtype));
    makeGroupNodes(name, members, (cts) => {
      let k = 0;
      const ctTree = outFlat.unflatten(outs.map((o) => (isFloat(o.dtype) ? (cts[k++] ?? zerosOf(o)) : zerosOf(o))));
      const grads = bwd(ctTree, args, out);
      if (!Array.isArray(grads) || grads.length !== args.length) {
        throw new Error(
          `${name}: the backward function returned ${Array.isArray(grads) ? grads.length : typeof grads} cotangents; expected ${args.length}, one per argument`,
        );
      }
      const pairs: { tensor: Tensor; ct: Tensor }[] = [];
      grads.forEach((g, ai) => {
        const leaves = treeFlatten(g).leaves;
        const want = argFlats[ai].leaves;
        if (leaves.length !== want.length)
          throw new Error(
            `${name}: the cotangent of argument ${ai} has ${leaves.length} tensors; expected ${want.length} like the argument`,
          );
        leaves.forEach((c, li) => {
          const x = want[li];
          if (!isFloat(x.dtype)) return;
          if (c.dtype !== x.dtype || !shapesEqual(c.shape, x.shape)) {
            throw new Error(
              `${name}: the cotangent of argument ${ai}, leaf ${li} is ${c.dtype} ${fmt(c.shape)}; expected ${x.dtype} ${fmt(x.shape)} like the argument`,
            );
          }
          pairs.push({ tensor: x, ct: c });
        });
      });
      return pairs;
    });
    return outFlat.unflatten(outs);
  };
}

/** Internal: exposes the node counter for tests of graph bounds. */
export const _peekNodeId = peekNodeId;
