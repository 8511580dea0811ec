import { record, tracked } from "../autodiff/engine.js";
import { broadcastShapes, fmt } from "../shape.js";
import { Tensor } from "../tensor.js";
import { add } from "./elementwise.js";
import { sumToShape } from "./broadcast.js";
import { expandDims, squeeze } from "./shape-ops.js";
import { requireFloat, sameDType, wrap } from "./util.js";

/**
 * Batched op(A)·op(B) over the last two axes, batch axes broadcast; op transposes when the flag is set.
 * Both operands must have rank >= 2.
 */
export function matmulT(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  sameDType("matmul", a, b);
  requireFloat("matmul", a);
  if (a.rank < 2 || b.rank < 2)
    throw new Error(`matmul: operands ${fmt(a.shape)} and ${fmt(b.shape)}; expected rank >= 2 (use matmul for 1-D)`);
  const [am, ak] = transA ? [a.shape[a.rank - 1], a.shape[a.rank - 2]] : [a.shape[a.rank - 2], a.shape[a.rank - 1]];
  const [bk, bn] = transB ? [b.shape[b.rank - 1], b.shape[b.rank - 2]] : [b.shape[b.rank - 2], b.shape[b.rank - 1]];
  if (ak !== bk) {
    throw new Error(
      `matmul: inner dimensions differ: ${fmt(a.shape)}${transA ? "ᵀ" : ""} · ${fmt(b.shape)}${transB ? "ᵀ" : ""} contracts ${ak} with ${bk}; expected equal sizes`,
    );
  }
  const batch = broadcastShapes("matmul (batch axes)", a.shape.slice(0, -2), b.shape.slice(0, -2));
  const outShape = [...batch, am, bn];
  const y = wrap(a._backend.matmul(a.info, b.info, transA, transB, outShape), outShape, a.dtype, a);
  return record(y, [a, b], {
    name: "matmul",
    vjp: (g) => {
      let da: Tensor | null = null,
        db: Tensor | null = null;
      if (tracked(a)) da = sumToShape(transA ? matmulT(b, g, transB, true) : matmulT(g, b, false, !transB), a.shape);
      if (tracked(b)) db = sumToShape(transB ? matmulT(g, a, true, transA) : matmulT(a, g, !transA, false), b.shape);
      return [da, db];
    },
    jvp: ([ta, tb]) => {
      const l = ta ? matmulT(ta, b, transA, transB) : null;
      const r = tb ? matmulT(a, tb, transA, transB) : null;
      return l && r ? add(l, r) : (l ?? r);
    },
  });
}

/** Matrix product with NumPy's rules: 1-D operands are promoted (and the added axis removed), batch axes broadcast. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank === 0 || b.rank === 0)
    throw new Error(`matmul: scalar operand (${fmt(a.shape)} · ${fmt(b.shape)}); expected rank >= 1 (use mul)`);
  const A = a.rank === 1 ? expandDims(a, 0) : a;
  const B = b.rank === 1 ? expandDims(b, 1) : b;
  let y = matmulT(A, B);
  if (a.rank === 1) y = squeeze(y, y.rank - 2);
  if (b.rank === 1) y = squeeze(y, y.rank - 1);
  return y;
}

/** Inner product of two 1-D tensors, or matmul otherwise. */
export function dot(a: Tensor, b: Tensor): Tensor {
  return matmul(a, b);
}
