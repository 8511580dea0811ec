/**
 * `vmap`: the batched form of a per-example function, and the Jacobians built on it (`jacfwd`, `jacrev`).
 *
 * Inside `vmap(f)` each mapped argument is a tensor of the per-example shape whose storage holds the whole batch
 * (a `BatchedBuf`, see batching.ts); `f` runs once, its ops run unchanged, and every kernel they call is batched by
 * the rules of batching.ts. Moving a tensor into and out of the batch are recorded ops (`vmapIn`, `vmapOut`), so
 * `grad`, `vjp`, `jvp` compose with `vmap` in either order, and `vmap` nests.
 */
import { record, setCotangentAdapter } from "../autodiff/engine.js";
import { jvp, vjp } from "../autodiff/transforms.js";
import { getBackend } from "../backend/registry.js";
import { fmt, normAxis } from "../shape.js";
import { Tensor } from "../tensor.js";
import { treeFlatten } from "../tree.js";
import { broadcastTo, sum } from "../ops/broadcast.js";
import { eye } from "../ops/creation.js";
import { expandDims, reshape, transpose } from "../ops/shape-ops.js";
import { BatchedBuf, BatchInterpreter } from "./batching.js";
import { interpose, nextLevel } from "./staging.js";

/** Which axis of an argument is mapped: a number (negative counts from the end), null (not mapped), or a tree of those matching the argument. */
export type AxisSpec = number | null | readonly AxisSpec[] | { readonly [key: string]: AxisSpec };

/** `perm` moving axis `from` of a rank-r tensor to position `to`. */
function moveAxisPerm(r: number, from: number, to: number): number[] {
  const rest = Array.from({ length: r }, (_, i) => i).filter((i) => i !== from);
  rest.splice(to, 0, from);
  return rest;
}

function moveAxis(x: Tensor, from: number, to: number): Tensor {
  return from === to ? x : transpose(x, moveAxisPerm(x.rank, from, to));
}

/** A tensor [B, ...S] as the batched tensor of shape S at `interp` (recorded: cotangents and tangents follow). */
function intoBatch(x: Tensor, interp: BatchInterpreter): Tensor {
  const y = new Tensor(new BatchedBuf(interp, x._buf), x.shape.slice(1), x.dtype, x._backend);
  return record(y, [x], {
    name: "vmapIn",
    vjp: (g) => [outOfBatch(g, interp)],
    jvp: ([t]) => (t ? intoBatch(t, interp) : null),
  });
}

/** A tensor of shape S (batched at `interp`, or shared by the whole batch) as the tensor [B, ...S] (recorded). */
function outOfBatch(y: Tensor, interp: BatchInterpreter): Tensor {
  const B = interp.size;
  const buf = y._buf;
  if (!(buf instanceof BatchedBuf && buf.interp === interp)) return broadcastTo(expandDims(y, 0), [B, ...y.shape]);
  const z = new Tensor(buf.inner, [B, ...y.shape], y.dtype, y._backend);
  return record(z, [y], {
    name: "vmapOut",
    vjp: (g) => [intoBatch(g, interp)],
    jvp: ([t]) => (t ? outOfBatch(t, interp) : null),
  });
}

function batchedAt(buf: unknown, interp: BatchInterpreter): boolean {
  for (let b = buf; b instanceof BatchedBuf; b = b.inner) if (b.interp === interp) return true;
  return false;
}

/**
 * A tensor shared by every slice of a vmap (not batched at its level) and used inside it gets a cotangent per
 * slice from the ops inside; when that vmap ran inside the differentiated function (it has returned by the time
 * the backward pass runs) the tensor's cotangent is their sum. A vmap still running when the backward pass runs
 * maps the pass itself (vmap of a pullback: one cotangent per slice), and its batch is kept.
 */
setCotangentAdapter((t, ct) => {
  let c = ct;
  while (c._buf instanceof BatchedBuf && !c._buf.interp.active && !batchedAt(t._buf, c._buf.interp)) {
    c = sum(outOfBatch(c, c._buf.interp), 0);
  }
  return c;
});

/** The axis (or null) of every tensor leaf of `arg` under `spec`. */
function leafAxes(spec: AxisSpec, arg: unknown, path: string, out: (number | null)[]): void {
  if (spec === null || typeof spec === "number") {
    for (const _ of treeFlatten(arg).leaves) out.push(spec);
    return;
  }
  if (Array.isArray(spec)) {
    if (!Array.isArray(arg) || arg.length !== spec.length) {
      throw new Error(
        `vmap: inAxes at ${path} is a list of ${spec.length}; expected the argument there to be an array of ${spec.length} (got ${describe(arg)})`,
      );
    }
    spec.forEach((s, i) => leafAxes(s, arg[i], `${path}[${i}]`, out));
    return;
  }
  if (arg === null || typeof arg !== "object" || arg instanceof Tensor || Array.isArray(arg)) {
    throw new Error(`vmap: inAxes at ${path} is an object; expected the argument there to be a plain object (got ${describe(arg)})`);
  }
  const o = arg as Record<string, unknown>;
  const keys = Object.keys(o);
  const sk = Object.keys(spec);
  if (keys.length !== sk.length || keys.some((k) => !(k in spec))) {
    throw new Error(`vmap: inAxes at ${path} has keys {${sk.join(", ")}}; expected the argument's keys {${keys.join(", ")}}`);
  }
  for (const k of keys) leafAxes((spec as Record<string, AxisSpec>)[k], o[k], `${path}.${k}`, out);
}

function describe(x: unknown): string {
  if (x instanceof Tensor) return `${x.dtype} ${fmt(x.shape)}`;
  if (Array.isArray(x)) return `an array of ${x.length}`;
  return x === null ? "null" : typeof x;
}

/**
 * Vectorising map: `vmap(f, inAxes, outAxes)(...args)` applies `f` to every slice of the mapped arguments along
 * their mapped axes and stacks the results along `outAxes`, in one call of `f` whose kernels run on the whole batch.
 *
 * - `inAxes`: a number or null for every argument, or an array with one entry per argument, each a number, null
 *   (not mapped: the argument is shared by every slice) or a tree of those matching the argument's structure.
 *   Default 0.
 * - `outAxes`: where the batch axis goes in each output tensor (a number, or a tree matching the output); default 0.
 *
 * Tensors `f` closes over are shared by every slice. Composes with `grad`, `vjp`, `jvp`, `jacobian` and itself
 * (nested vmap). A mapped value cannot be read on the host inside `f` (`data()`, `item()`, or an op that reads host
 * values such as crossEntropy's targets): that is refused with an error.
 */
export function vmap<A extends unknown[], R>(
  f: (...args: A) => R,
  inAxes: AxisSpec | readonly AxisSpec[] = 0,
  outAxes: AxisSpec = 0,
): (...args: A) => R {
  return (...args: A): R => {
    const axes: (number | null)[] = [];
    if (Array.isArray(inAxes)) {
      if (inAxes.length !== args.length)
        throw new Error(`vmap: inAxes has ${inAxes.length} entries for ${args.length} arguments; expected one entry per argument`);
      args.forEach((a, i) => leafAxes(inAxes[i], a, `argument ${i}`, axes));
    } else args.forEach((a, i) => leafAxes(inAxes as AxisSpec, a, `argument ${i}`, axes));
    const flat = treeFlatten(args);
    let B = -1;
    let first = "";
    flat.leaves.forEach((x, i) => {
      const ax = axes[i];
      if (ax === null) return;
      if (!Number.isInteger(ax)) throw new Error(`vmap: inAxes entry ${ax} for tensor leaf ${i} is not an integer or null`);
      if (x.rank === 0)
        throw new Error(`vmap: tensor leaf ${i} is a scalar but inAxes maps its axis ${ax}; expected a tensor of rank >= 1`);
      const a = normAxis("vmap", ax, x.rank);
      const n = x.shape[a];
      if (B < 0) {
        B = n;
        first = `leaf ${i} ${fmt(x.shape)} axis ${a}`;
      } else if (n !== B) {
        throw new Error(
          `vmap: mapped axes have different sizes: ${first} has ${B}, leaf ${i} ${fmt(x.shape)} axis ${a} has ${n}; expected one batch size`,
        );
      }
    });
    if (B < 0) throw new Error("vmap: no argument is mapped (every inAxes entry is null); expected at least one mapped tensor");
    interpose(getBackend());
    for (const x of flat.leaves) interpose(x._backend);
    const interp = new BatchInterpreter(nextLevel(), B);
    const inner = flat.unflatten(
      flat.leaves.map((x, i) => {
        const ax = axes[i];
        return ax === null ? x : intoBatch(moveAxis(x, normAxis("vmap", ax, x.rank), 0), interp);
      }),
    );
    let out: R;
    try {
      out = f(...(inner as unknown as A));
    } finally {
      interp.active = false;
    }
    const fo = treeFlatten(out);
    const oAxes: (number | null)[] = [];
    leafAxes(outAxes, out, "output", oAxes);
    return fo.unflatten(
      fo.leaves.map((y, i) => {
        const ax = oAxes[i];
        if (ax === null) {
          if (y._buf instanceof BatchedBuf && y._buf.interp === interp)
            throw new Error(
              `vmap: output leaf ${i} ${fmt(y.shape)} depends on the mapped inputs but outAxes is null; expected an axis for it`,
            );
          return y;
        }
        const z = outOfBatch(y, interp);
        return moveAxis(z, 0, normAxis("vmap (outAxes)", ax, z.rank));
      }),
    );
  };
}

/** Forward-mode Jacobian by vmap over JVPs of the basis: shaped out.shape ++ in.shape (argument `argnums`, default 0). */
export function jacfwd(f: (...args: Tensor[]) => Tensor, argnums = 0): (...args: Tensor[]) => Tensor {
  return (...args: Tensor[]) => {
    const x = args[argnums];
    if (!(x instanceof Tensor)) throw new Error(`jacfwd: argument ${argnums} is not a Tensor`);
    const fx = (v: Tensor) => {
      const a = [...args];
      a[argnums] = v;
      return f(...a);
    };
    const basis = reshape(eye(x.size, x.size, x.dtype), [x.size, ...x.shape]);
    const cols = vmap((t: Tensor) => jvp(fx as (...a: never[]) => Tensor, [x], [t])[1], 0, -1)(basis);
    return reshape(cols, [...cols.shape.slice(0, -1), ...x.shape]);
  };
}

/** Reverse-mode Jacobian by vmap over VJPs of the basis: shaped out.shape ++ in.shape (argument `argnums`, default 0). */
export function jacrev(f: (...args: Tensor[]) => Tensor, argnums = 0): (...args: Tensor[]) => Tensor {
  return (...args: Tensor[]) => {
    const x = args[argnums];
    if (!(x instanceof Tensor)) throw new Error(`jacrev: argument ${argnums} is not a Tensor`);
    const fx = (v: Tensor) => {
      const a = [...args];
      a[argnums] = v;
      return f(...a);
    };
    const [y, pull] = vjp(fx, x);
    const basis = reshape(eye(y.size, y.size, y.dtype), [y.size, ...y.shape]);
    const rows = vmap((u: Tensor) => pull(u)[0])(basis);
    return reshape(rows, [...y.shape, ...x.shape]);
  };
}
