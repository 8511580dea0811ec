/**
 * The batching rules of `vmap`: one per backend kernel that takes operands (the table `BATCHING_RULES`, typed over
 * every such kernel, so a kernel without a rule does not compile). A batched buffer holds B values of a tensor's
 * logical shape S as one dense buffer of shape [B, ...S] (the batch axis always first, so a reshape of S is a
 * reshape of the physical buffer too). Operands not batched at a level are shared by all B values (broadcast),
 * which keeps values that do not depend on the mapped inputs unbatched.
 */
import type { Backend, Buffer, TensorInfo } from "../backend/backend.js";
import type { DType } from "../dtype.js";
import { fmt } from "../shape.js";
import { composite, fused } from "../ops/fused.js";
import { type Interpreter, type KernelName, StagedBuf } from "./staging.js";

/** The storage of a batched tensor: `inner` is the dense [size, ...shape] buffer. */
export class BatchedBuf extends StagedBuf {
  constructor(
    override readonly interp: BatchInterpreter,
    readonly inner: Buffer,
  ) {
    super(interp);
  }
}

/** Helpers a rule gets: the backend, the batch size, and conversions between logical and physical operands. */
export class BatchInterpreter implements Interpreter {
  /** Whether the vmapped function is running (false once vmap returned). */
  active = true;
  constructor(
    readonly level: number,
    readonly size: number,
  ) {}

  run(be: Backend, method: KernelName, args: unknown[]): unknown {
    const rule = BATCHING_RULES[method] as (c: BatchCtx, ...a: unknown[]) => unknown;
    return rule(new BatchCtx(this, be), ...args);
  }
}

class BatchCtx {
  constructor(
    readonly interp: BatchInterpreter,
    readonly be: Backend,
  ) {}
  get B(): number {
    return this.interp.size;
  }
  batched(x: TensorInfo | null): boolean {
    return x !== null && x.buf instanceof BatchedBuf && x.buf.interp === this.interp;
  }
  /** The physical [B, ...shape] operand of a batched tensor. */
  phys(x: TensorInfo): TensorInfo {
    return { buf: (x.buf as BatchedBuf).inner, shape: [this.B, ...x.shape], dtype: x.dtype };
  }
  /** A batched operand as [B, 1.., ...shape] of rank `rank` + 1 (a view), an unbatched one as it is (it broadcasts). */
  aligned(x: TensorInfo, rank: number): TensorInfo {
    if (!this.batched(x)) return x;
    return {
      buf: (x.buf as BatchedBuf).inner,
      shape: [this.B, ...new Array<number>(rank - x.shape.length).fill(1), ...x.shape],
      dtype: x.dtype,
    };
  }
  /** The physical [B, ...shape] operand, materialising the broadcast of an unbatched one. */
  full(x: TensorInfo): TensorInfo {
    if (this.batched(x)) return this.phys(x);
    const shape = [this.B, ...x.shape];
    return { buf: this.be.broadcastTo(x, shape), shape, dtype: x.dtype };
  }
  /** The [rows·B, ...] view of a physical operand whose first logical axis holds rows. */
  rows(x: TensorInfo): TensorInfo {
    const p = this.full(x);
    return { buf: p.buf, shape: [p.shape[0] * (p.shape[1] ?? 1), ...p.shape.slice(2)], dtype: p.dtype };
  }
  out(buf: Buffer): BatchedBuf {
    return new BatchedBuf(this.interp, buf);
  }
  /** Moves physical axis `from` of `x` to the front. */
  toFront(x: TensorInfo, from: number): TensorInfo {
    if (from === 0) return x;
    const r = x.shape.length;
    const perm = [from, ...Array.from({ length: r }, (_, i) => i).filter((i) => i !== from)];
    return { buf: this.be.transpose(x, perm), shape: perm.map((p) => x.shape[p]), dtype: x.dtype };
  }
  /** Moves the front physical axis of `x` to position `to`. */
  fromFront(x: TensorInfo, to: number): TensorInfo {
    if (to === 0) return x;
    const r = x.shape.length;
    const rest = Array.from({ length: r - 1 }, (_, i) => i + 1);
    const perm = [...rest.slice(0, to), 0, ...rest.slice(to)];
    return { buf: this.be.transpose(x, perm), shape: perm.map((p) => x.shape[p]), dtype: x.dtype };
  }
  /** int32 indices [B, ...shape] plus b·n for batch element b (flat positions in a [B·n] axis). */
  offsetIndices(idx: TensorInfo, n: number): TensorInfo {
    const p = this.full(idx);
    const off = new Int32Array(this.B);
    for (let b = 0; b < this.B; b++) off[b] = b * n;
    const offInfo: TensorInfo = {
      buf: this.be.fromArray(off, "int32"),
      shape: [this.B, ...new Array<number>(idx.shape.length).fill(1)],
      dtype: "int32",
    };
    return { buf: this.be.binary("add", p, offInfo, p.shape, "int32"), shape: p.shape, dtype: "int32" };
  }
  /** Runs the composite of a fused kernel on the (batched) operands: its ops reach the primitive rules. */
  composite(name: Parameters<typeof composite>[1], args: unknown[]): unknown {
    return (composite as (be: Backend, n: string, ...a: unknown[]) => unknown)(this.be, name, ...args);
  }
}

type Rule<F> = F extends (...a: infer A) => infer R ? (c: BatchCtx, ...a: A) => R : never;
type Kernels = Required<Backend>;

/** One rule per kernel with operands (the creation kernels take none: their results are never batched). */
export const BATCHING_RULES: { [K in KernelName]: Rule<Kernels[K]> } = {
  read: (c, x) => {
    throw new Error(
      `vmap: the values of a batched tensor (${x.dtype} ${fmt(x.shape)}, batch of ${c.B}) were read on the host inside vmap (data(), item(), toArray(), or an op that reads host values such as crossEntropy's targets); expected no host reads of mapped values (pass such tensors unmapped with inAxes null)`,
    );
  },
  dispose: (c, buf) => c.be.dispose((buf as BatchedBuf).inner),
  cast: (c, x, to) => c.out(c.be.cast(c.phys(x), to)),
  unary: (c, op, x, outDType) => c.out(c.be.unary(op, c.phys(x), outDType)),
  binary: (c, op, a, b, outShape, outDType) => {
    const r = outShape.length;
    return c.out(c.be.binary(op, c.aligned(a, r), c.aligned(b, r), [c.B, ...outShape], outDType));
  },
  where: (c, cond, a, b, outShape) => {
    const r = outShape.length;
    return c.out(c.be.where(c.aligned(cond, r), c.aligned(a, r), c.aligned(b, r), [c.B, ...outShape]));
  },
  reduce: (c, op, x, axes) =>
    c.out(
      c.be.reduce(
        op,
        c.phys(x),
        axes.map((a) => a + 1),
      ),
    ),
  matmul: (c, a, b, transA, transB, outShape) => {
    const r = outShape.length;
    return c.out(c.be.matmul(c.aligned(a, r), c.aligned(b, r), transA, transB, [c.B, ...outShape]));
  },
  transpose: (c, x, perm) => c.out(c.be.transpose(c.phys(x), [0, ...perm.map((p) => p + 1)])),
  broadcastTo: (c, x, shape) => c.out(c.be.broadcastTo(c.aligned(x, shape.length), [c.B, ...shape])),
  slice: (c, x, begin, size, step) => c.out(c.be.slice(c.phys(x), [0, ...begin], [c.B, ...size], [1, ...step])),
  pad: (c, x, outShape, begin, step) => c.out(c.be.pad(c.phys(x), [c.B, ...outShape], [0, ...begin], [1, ...step])),
  concat: (c, xs, axis, outShape) =>
    c.out(
      c.be.concat(
        xs.map((x) => c.full(x)),
        axis + 1,
        [c.B, ...outShape],
      ),
    ),
  gather: (c, x, idx, axis) => {
    if (!c.batched(idx)) return c.out(c.be.gather(c.phys(x), idx, axis + 1));
    const pre = x.shape.slice(0, axis),
      post = x.shape.slice(axis + 1),
      n = x.shape[axis];
    if (!c.batched(x)) {
      // out = x[:axis] + [B, ...idx] + x[axis+1:]: the batch axis lands at `axis`
      const p = c.phys(idx);
      const flat = { ...p, shape: [p.shape.reduce((s, d) => s * d, 1)] };
      const r: TensorInfo = { buf: c.be.gather(x, flat, axis), shape: [...pre, ...p.shape, ...post], dtype: x.dtype };
      return c.out(c.toFront(r, axis).buf);
    }
    // both batched: gather from the [..., B·n, ...] view of x at indices offset by b·n
    const xf = c.fromFront(c.phys(x), axis);
    const xv: TensorInfo = { buf: xf.buf, shape: [...pre, c.B * n, ...post], dtype: x.dtype };
    const io = c.offsetIndices(idx, n);
    const flat = { ...io, shape: [io.shape.reduce((s, d) => s * d, 1)] };
    const r: TensorInfo = { buf: c.be.gather(xv, flat, axis), shape: [...pre, ...io.shape, ...post], dtype: x.dtype };
    return c.out(c.toFront(r, axis).buf);
  },
  scatterAdd: (c, updates, idx, axis, outShape) => {
    if (!c.batched(idx)) return c.out(c.be.scatterAdd(c.phys(updates), idx, axis + 1, [c.B, ...outShape]));
    const pre = outShape.slice(0, axis),
      post = outShape.slice(axis + 1),
      n = outShape[axis];
    const u = c.fromFront(c.full(updates), axis);
    const io = c.offsetIndices(idx, n);
    const flat = { ...io, shape: [io.shape.reduce((s, d) => s * d, 1)] };
    const r: TensorInfo = {
      buf: c.be.scatterAdd(u, flat, axis, [...pre, c.B * n, ...post]),
      shape: [...pre, c.B, n, ...post],
      dtype: updates.dtype,
    };
    return c.out(c.toFront(r, axis).buf);
  },
  softmax: (c, x, log) => c.out(fused(c.be, "softmax", c.phys(x), log)),
  crossEntropy: (c, logits, targets, ignore) => {
    const r = fused(c.be, "crossEntropy", c.rows(logits), c.rows(targets), ignore);
    return { loss: c.out(r.loss), lse: c.out(r.lse) };
  },
  crossEntropyBackward: (c, logits, targets, lse, g, ignore) =>
    c.out(fused(c.be, "crossEntropyBackward", c.rows(logits), c.rows(targets), c.rows(lse), c.rows(g), ignore)),
  layerNorm: (c, x, gamma, beta, eps) => {
    if (c.batched(gamma) || c.batched(beta)) return c.composite("layerNorm", [x, gamma, beta, eps]) as ReturnType<Kernels["layerNorm"]>;
    const r = fused(c.be, "layerNorm", c.full(x), gamma, beta, eps);
    return { y: c.out(r.y), mean: c.out(r.mean), rstd: c.out(r.rstd) };
  },
  layerNormBackward: (c, x, gamma, mean, rstd, dy, withParams) => {
    // parameter gradients sum over rows, which must stay per batch element: the composite keeps them apart
    if (withParams || c.batched(gamma))
      return c.composite("layerNormBackward", [x, gamma, mean, rstd, dy, withParams]) as ReturnType<Kernels["layerNormBackward"]>;
    const r = fused(c.be, "layerNormBackward", c.full(x), gamma, c.full(mean), c.full(rstd), c.full(dy), false);
    return { dx: c.out(r.dx), dgamma: null, dbeta: null };
  },
  geluBackward: (c, x, dy) => c.out(fused(c.be, "geluBackward", c.full(x), c.full(dy))),
  // one mask for every batch element (the key is not mapped): the composite draws it at the logical size
  dropout: (c, x, k0, k1, rate) => c.composite("dropout", [x, k0, k1, rate]) as Buffer,
  linearCrossEntropy: (c, ...a) => c.composite("linearCrossEntropy", a) as ReturnType<Kernels["linearCrossEntropy"]>,
  linearCrossEntropyBackward: (c, ...a) =>
    c.composite("linearCrossEntropyBackward", a) as ReturnType<Kernels["linearCrossEntropyBackward"]>,
  linearCrossEntropyWithGrad: (c, ...a) =>
    c.composite("linearCrossEntropyWithGrad", a) as ReturnType<Kernels["linearCrossEntropyWithGrad"]>,
};

/** Physical buffer of a tensor batched at `interp` (or null when it is not batched there). */
export function innerOf(buf: Buffer, interp: BatchInterpreter): Buffer | null {
  return buf instanceof BatchedBuf && buf.interp === interp ? buf.inner : null;
}

export type { DType };
