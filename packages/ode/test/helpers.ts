/** Shared test problems with closed-form solutions, and small numeric helpers. */
import assert from "node:assert/strict";
import { add, div, mul, neg, pow, square, sub, tensor, type Tensor, type TensorLike } from "@qkvflow/autograd";

/** A float64 tensor. */
export const f64 = (data: number | number[] | number[][], shape?: number[]): Tensor =>
  tensor(data as number[], { dtype: "float64", shape });

/** Host values as a plain array. */
export const arr = (t: Tensor): number[] => Array.from(t.data());

/** Asserts |a − b| <= tol·(1 + |b|) elementwise. */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, msg = ""): void {
  assert.equal(a.length, b.length, `${msg}: lengths differ`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${msg} element ${i}: ${a[i]} vs ${b[i]} (tol ${tol})`);
  }
}

/** Least-squares slope of log(err) against log(h). */
export function loglogSlope(hs: readonly number[], errs: readonly number[]): number {
  const x = hs.map(Math.log),
    y = errs.map(Math.log);
  const mx = x.reduce((s, v) => s + v, 0) / x.length,
    my = y.reduce((s, v) => s + v, 0) / y.length;
  let num = 0,
    den = 0;
  for (let i = 0; i < x.length; i++) {
    num += (x[i] - mx) * (y[i] - my);
    den += (x[i] - mx) ** 2;
  }
  return num / den;
}

/** y' = −2t·y², y(0) = 1 → y(t) = 1/(1 + t²). */
export const riccati = {
  f: (t: number, y: Tensor): Tensor => mul(neg(square(y)), 2 * t),
  exact: (t: number): number => 1 / (1 + t * t),
};

/** Logistic growth y' = r·y(1 − y) → y(t) = 1/(1 + (1/y0 − 1)e^(−rt)). */
export const logistic = {
  f:
    (r: TensorLike) =>
    (_t: number, y: Tensor): Tensor =>
      mul(mul(y, sub(1, y)), r),
  exact: (r: number, y0: number, t: number): number => 1 / (1 + (1 / y0 - 1) * Math.exp(-r * t)),
  /** ∂y(t)/∂y0 */
  dy0: (r: number, y0: number, t: number): number => {
    const y = 1 / (1 + (1 / y0 - 1) * Math.exp(-r * t));
    return (Math.exp(-r * t) * y * y) / (y0 * y0);
  },
  /** ∂y(t)/∂r */
  dr: (r: number, y0: number, t: number): number => {
    const c = 1 / y0 - 1,
      e = Math.exp(-r * t);
    const y = 1 / (1 + c * e);
    return c * t * e * y * y;
  },
};

/** Harmonic oscillator x'' = −ω²x as a tree {x, v}: x = x0 cos ωt + (v0/ω) sin ωt. */
export type Osc = { x: Tensor; v: Tensor };
export const oscillator = {
  f:
    (omega: number) =>
    (_t: number, s: Osc): Osc => ({ x: s.v, v: mul(s.x, -omega * omega) }),
  exact: (omega: number, x0: number, v0: number, t: number): { x: number; v: number } => ({
    x: x0 * Math.cos(omega * t) + (v0 / omega) * Math.sin(omega * t),
    v: -x0 * omega * Math.sin(omega * t) + v0 * Math.cos(omega * t),
  }),
};

/** The restricted three-body problem with the Arenstorf orbit as initial value (periodic with period T). */
export const ARENSTORF_MU = 0.012277471;
export const ARENSTORF_T = 17.0652165601579625588917206249;
export const ARENSTORF_Y0 = [0.994, 0, 0, -2.00158510637908252240537862224];
export type Body = { x: Tensor; y: Tensor; vx: Tensor; vy: Tensor };
export function arenstorf(_t: number, s: Body): Body {
  const mu = ARENSTORF_MU,
    mup = 1 - ARENSTORF_MU;
  const d1 = pow(add(square(add(s.x, mu)), square(s.y)), 1.5);
  const d2 = pow(add(square(sub(s.x, mup)), square(s.y)), 1.5);
  const ax = sub(sub(add(s.x, mul(s.vy, 2)), div(mul(add(s.x, mu), mup), d1)), div(mul(sub(s.x, mup), mu), d2));
  const ay = sub(sub(sub(s.y, mul(s.vx, 2)), div(mul(s.y, mup), d1)), div(mul(s.y, mu), d2));
  return { x: s.vx, y: s.vy, vx: ax, vy: ay };
}
/** Plain-number version of the same field (for independent checks). */
export function arenstorfPlain(_t: number, y: readonly number[]): number[] {
  const mu = ARENSTORF_MU,
    mup = 1 - ARENSTORF_MU;
  const d1 = Math.pow((y[0] + mu) ** 2 + y[1] ** 2, 1.5);
  const d2 = Math.pow((y[0] - mup) ** 2 + y[1] ** 2, 1.5);
  return [
    y[2],
    y[3],
    y[0] + 2 * y[3] - (mup * (y[0] + mu)) / d1 - (mu * (y[0] - mup)) / d2,
    y[1] - 2 * y[2] - (mup * y[1]) / d1 - (mu * y[1]) / d2,
  ];
}
