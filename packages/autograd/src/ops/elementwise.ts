import type { BinaryOp, UnaryOp } from "../backend/backend.js";
import { record, tracked } from "../autodiff/engine.js";
import { broadcastShapes, shapesEqual } from "../shape.js";
import { Tensor, type TensorLike } from "../tensor.js";
import { asTensor } from "./creation.js";
import { broadcastTo, sumToShape } from "./broadcast.js";
import { requireFloat, sameDType, wrap } from "./util.js";

type Deriv = (x: Tensor, y: Tensor) => Tensor;

function unary(op: UnaryOp, x: Tensor, deriv: Deriv | null, floatOnly = true): Tensor {
  if (floatOnly) requireFloat(op, x);
  const y = wrap(x._backend.unary(op, x.info, x.dtype), x.shape, x.dtype, x);
  if (!deriv) return y;
  return record(y, [x], {
    name: op,
    vjp: (g) => [mul(g, deriv(x, y))],
    jvp: ([t]) => (t ? mul(t, deriv(x, y)) : null),
  });
}

/** −x */
export function neg(x: Tensor): Tensor {
  const y = wrap(x._backend.unary("neg", x.info, x.dtype), x.shape, x.dtype, x);
  return record(y, [x], { name: "neg", vjp: (g) => [neg(g)], jvp: ([t]) => (t ? neg(t) : null) });
}
/** eˣ */
export function exp(x: Tensor): Tensor {
  return unary("exp", x, (_x, y) => y);
}
/** Natural logarithm. */
export function log(x: Tensor): Tensor {
  return unary("log", x, (x) => reciprocal(x));
}
/** log(1 + x), accurate near 0. */
export function log1p(x: Tensor): Tensor {
  return unary("log1p", x, (x) => reciprocal(add(x, 1)));
}
/** √x */
export function sqrt(x: Tensor): Tensor {
  return unary("sqrt", x, (_x, y) => div(0.5, y));
}
/** 1/√x */
export function rsqrt(x: Tensor): Tensor {
  return unary("rsqrt", x, (x, y) => mul(-0.5, div(y, x)));
}
/** |x| */
export function abs(x: Tensor): Tensor {
  return unary("abs", x, (x) => sign(x), false);
}
/** sin x */
export function sin(x: Tensor): Tensor {
  return unary("sin", x, (x) => cos(x));
}
/** cos x */
export function cos(x: Tensor): Tensor {
  return unary("cos", x, (x) => neg(sin(x)));
}
/** tanh x */
export function tanh(x: Tensor): Tensor {
  return unary("tanh", x, (_x, y) => sub(1, mul(y, y)));
}
/** Logistic sigmoid 1/(1+e⁻ˣ). */
export function sigmoid(x: Tensor): Tensor {
  return unary("sigmoid", x, (_x, y) => mul(y, sub(1, y)));
}
/** max(x, 0) */
export function relu(x: Tensor): Tensor {
  return unary("relu", x, (x) => step(x));
}
/** x·sigmoid(x) */
export function silu(x: Tensor): Tensor {
  return unary("silu", x, (x) => {
    const s = sigmoid(x);
    return mul(s, add(1, mul(x, sub(1, s))));
  });
}
/** −1, 0 or 1 (not differentiable: zero gradient). */
export function sign(x: Tensor): Tensor {
  return wrap(x._backend.unary("sign", x.info, x.dtype), x.shape, x.dtype, x);
}
/** 1 where x > 0 else 0, in x's dtype (zero gradient). */
export function step(x: Tensor): Tensor {
  return wrap(x._backend.unary("step", x.info, x.dtype), x.shape, x.dtype, x);
}
/** Largest integer ≤ x (zero gradient). */
export function floor(x: Tensor): Tensor {
  return wrap(x._backend.unary("floor", x.info, x.dtype), x.shape, x.dtype, x);
}
/** Mask of finite elements. */
export function isFinite(x: Tensor): Tensor {
  return wrap(x._backend.unary("isfinite", x.info, "bool"), x.shape, "bool", x);
}
/** x² */
export function square(x: Tensor): Tensor {
  return unary("square", x, (x) => mul(2, x), false);
}
/** 1/x */
export function reciprocal(x: Tensor): Tensor {
  return unary("reciprocal", x, (_x, y) => neg(mul(y, y)));
}

/** Arithmetic that bool masks refuse (NumPy refuses bool subtraction; a 0/1 byte cannot hold 1 + 1). */
const NO_BOOL_ARITHMETIC: ReadonlySet<BinaryOp> = new Set<BinaryOp>(["add", "sub", "mul", "div", "pow"]);

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): { y: Tensor; shape: number[] } {
  const dtype = sameDType(op, a, b);
  if (dtype === "bool" && NO_BOOL_ARITHMETIC.has(op))
    throw new Error(
      `${op}: both operands are bool masks; arithmetic on bool is refused. Expected float or int32 operands: cast first ` +
        "(cast(mask, 'float32') or 'int32'), or use maximum / minimum (logical or / and) or where",
    );
  const shape = broadcastShapes(op, a.shape, b.shape);
  const outDType = op === "eq" || op === "ne" || op === "lt" || op === "le" || op === "gt" || op === "ge" ? "bool" : dtype;
  return { y: wrap(a._backend.binary(op, a.info, b.info, shape, outDType), shape, outDType, a), shape };
}

/** Internal: tangent of an operand broadcast to the output shape. */
function bt(t: Tensor, shape: readonly number[]): Tensor {
  return shapesEqual(t.shape, shape) ? t : broadcastTo(t, shape);
}

function plus(x: Tensor | null, y: Tensor | null): Tensor | null {
  if (!x) return y;
  if (!y) return x;
  return add(x, y);
}

/** a + b with broadcasting. */
export function add(a: TensorLike, b: TensorLike): Tensor {
  const [A, B] = operands(a, b);
  const { y, shape } = binaryRaw("add", A, B);
  return record(y, [A, B], {
    name: "add",
    vjp: (g) => [sumToShape(g, A.shape), sumToShape(g, B.shape)],
    jvp: ([ta, tb]) => (ta && tb ? add(ta, tb) : ta ? bt(ta, shape) : bt(tb!, shape)),
  });
}
/** a − b with broadcasting. */
export function sub(a: TensorLike, b: TensorLike): Tensor {
  const [A, B] = operands(a, b);
  const { y, shape } = binaryRaw("sub", A, B);
  return record(y, [A, B], {
    name: "sub",
    vjp: (g) => [sumToShape(g, A.shape), tracked(B) ? sumToShape(neg(g), B.shape) : null],
    jvp: ([ta, tb]) => (ta && tb ? sub(ta, tb) : ta ? bt(ta, shape) : bt(neg(tb!), shape)),
  });
}
/** a · b elementwise with broadcasting. */
export function mul(a: TensorLike, b: TensorLike): Tensor {
  const [A, B] = operands(a, b);
  const { y } = binaryRaw("mul", A, B);
  return record(y, [A, B], {
    name: "mul",
    vjp: (g) => [tracked(A) ? sumToShape(mul(g, B), A.shape) : null, tracked(B) ? sumToShape(mul(g, A), B.shape) : null],
    jvp: ([ta, tb]) => plus(ta ? mul(ta, B) : null, tb ? mul(A, tb) : null),
  });
}
/** a / b elementwise with broadcasting. */
export function div(a: TensorLike, b: TensorLike): Tensor {
  const [A, B] = operands(a, b);
  const { y } = binaryRaw("div", A, B);
  return record(y, [A, B], {
    name: "div",
    vjp: (g) => [tracked(A) ? sumToShape(div(g, B), A.shape) : null, tracked(B) ? sumToShape(neg(div(mul(g, y), B)), B.shape) : null],
    jvp: ([ta, tb]) => plus(ta ? div(ta, B) : null, tb ? neg(div(mul(tb, y), B)) : null),
  });
}
/** aᵇ elementwise with broadcasting (the gradient in b uses log a, so needs a > 0). */
export function pow(a: TensorLike, b: TensorLike): Tensor {
  const [A, B] = operands(a, b);
  const { y } = binaryRaw("pow", A, B);
  const dA = () => mul(B, pow(A, sub(B, 1)));
  const dB = () => mul(y, log(A));
  return record(y, [A, B], {
    name: "pow",
    vjp: (g) => [tracked(A) ? sumToShape(mul(g, dA()), A.shape) : null, tracked(B) ? sumToShape(mul(g, dB()), B.shape) : null],
    jvp: ([ta, tb]) => plus(ta ? mul(ta, dA()) : null, tb ? mul(tb, dB()) : null),
  });
}
/** Elementwise maximum (ties send the gradient to a). */
export function maximum(a: TensorLike, b: TensorLike): Tensor {
  const [A, B] = operands(a, b);
  const { y, shape } = binaryRaw("maximum", A, B);
  const mask = () => ge(A, B);
  return record(y, [A, B], {
    name: "maximum",
    vjp: (g) => {
      const m = mask();
      return [sumToShape(where(m, g, 0), A.shape), sumToShape(where(m, 0, g), B.shape)];
    },
    jvp: ([ta, tb]) => where(mask(), ta ? bt(ta, shape) : 0, tb ? bt(tb, shape) : 0),
  });
}
/** Elementwise minimum (ties send the gradient to a). */
export function minimum(a: TensorLike, b: TensorLike): Tensor {
  const [A, B] = operands(a, b);
  const { y, shape } = binaryRaw("minimum", A, B);
  const mask = () => le(A, B);
  return record(y, [A, B], {
    name: "minimum",
    vjp: (g) => {
      const m = mask();
      return [sumToShape(where(m, g, 0), A.shape), sumToShape(where(m, 0, g), B.shape)];
    },
    jvp: ([ta, tb]) => where(mask(), ta ? bt(ta, shape) : 0, tb ? bt(tb, shape) : 0),
  });
}
/** Limits x to [lo, hi]. */
export function clamp(x: Tensor, lo: TensorLike | null, hi: TensorLike | null): Tensor {
  let y = x;
  if (lo !== null) y = maximum(y, lo);
  if (hi !== null) y = minimum(y, hi);
  return y;
}

/** cond ? a : b elementwise with broadcasting; cond is a mask (nonzero = true). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  let A: Tensor, B: Tensor;
  if (typeof a === "number" && typeof b === "number") {
    A = asTensor(a, cond.dtype === "bool" ? asTensor(0, cond) : cond);
    B = asTensor(b, A);
  } else [A, B] = operands(a, b);
  sameDType("where", A, B);
  if (cond._backend !== A._backend)
    throw new Error(`where: the mask lives on backend ${cond._backend.name} and the values on ${A._backend.name}; expected one backend`);
  const shape = broadcastShapes("where", cond.shape, A.shape, B.shape);
  const y = wrap(A._backend.where(cond.info, A.info, B.info, shape), shape, A.dtype, A);
  return record(y, [A, B], {
    name: "where",
    vjp: (g) => [tracked(A) ? sumToShape(where(cond, g, 0), A.shape) : null, tracked(B) ? sumToShape(where(cond, 0, g), B.shape) : null],
    jvp: ([ta, tb]) => where(cond, ta ? bt(ta, shape) : 0, tb ? bt(tb, shape) : 0),
  });
}

function compare(op: BinaryOp, a: TensorLike, b: TensorLike): Tensor {
  const [A, B] = operands(a, b);
  return binaryRaw(op, A, B).y;
}
/** Mask a == b. */
export function eq(a: TensorLike, b: TensorLike): Tensor {
  return compare("eq", a, b);
}
/** Mask a != b. */
export function ne(a: TensorLike, b: TensorLike): Tensor {
  return compare("ne", a, b);
}
/** Mask a < b. */
export function lt(a: TensorLike, b: TensorLike): Tensor {
  return compare("lt", a, b);
}
/** Mask a <= b. */
export function le(a: TensorLike, b: TensorLike): Tensor {
  return compare("le", a, b);
}
/** Mask a > b. */
export function gt(a: TensorLike, b: TensorLike): Tensor {
  return compare("gt", a, b);
}
/** Mask a >= b. */
export function ge(a: TensorLike, b: TensorLike): Tensor {
  return compare("ge", a, b);
}

/** Converts number operands to scalar tensors of the other operand's dtype. */
function operands(a: TensorLike, b: TensorLike): [Tensor, Tensor] {
  if (typeof a === "number" && typeof b === "number") {
    throw new Error("binary op: both operands are numbers; expected at least one Tensor");
  }
  checkOperand(a, "first");
  checkOperand(b, "second");
  if (typeof a === "number") return [asTensor(a, b as Tensor), b as Tensor];
  if (typeof b === "number") return [a, asTensor(b, a)];
  return [a, b];
}

/** A binary op's operand must be a Tensor or a number. */
function checkOperand(x: unknown, which: string): void {
  if (typeof x === "number" || x instanceof Tensor) return;
  const what = x === null ? "null" : Array.isArray(x) ? "an array (wrap it with tensor(...))" : typeof x;
  throw new Error(`binary op (add, sub, mul, div, …): the ${which} operand is ${what}; expected a Tensor or a number`);
}
