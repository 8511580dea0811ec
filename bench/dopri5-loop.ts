/**
 * A hand-written adaptive Dormand–Prince 5(4) solve on Float64Array states: the floor for odeint's dopri5 on plain
 * arrays (the per-step overhead of odeint's generic core is its time minus this loop's, at the same steps).
 *
 * It takes exactly odeint's steps: the coefficients come from @qkvflow/ode's DOPRI5 tableau, the stage sums are
 * formed in the same order (((y + k₀·hc₀) + k₁·hc₁) + …, zero coefficients skipped), and the controller is
 * PIDController's default I controller (safety 0.9, factors in [0.2, 10], no growth right after a rejection, the
 * error norm RMS(err / (atol + rtol·max(|y₀|, |y₁|))), Hairer's first step). Only the end state is returned (no
 * output times in between, so no interpolation).
 */
import { DOPRI5, type ArrayField } from "@qkvflow/ode";

const A = DOPRI5.a;
const bErr = DOPRI5.bErr;
if (!bErr) throw new Error("dopri5 loop: the DOPRI5 tableau has no error weights (bErr); expected dopri5's");
const [c2, c3, c4, c5] = [DOPRI5.c[1], DOPRI5.c[2], DOPRI5.c[3], DOPRI5.c[4]];
const a21 = A[1][0];
const [a31, a32] = A[2];
const [a41, a42, a43] = A[3];
const [a51, a52, a53, a54] = A[4];
const [a61, a62, a63, a64, a65] = A[5];
const [a71, , a73, a74, a75, a76] = A[6];
const [e1, e2, e3, e4, e5, e6, e7] = bErr;
if (A[6][1] !== 0 || e2 !== 0) throw new Error("dopri5 loop: expected a₇₂ = 0 and bErr₂ = 0 (dopri5's tableau)");

/** Counters of one solve, as odeint's stats. */
export interface LoopStats {
  nfev: number;
  accepted: number;
  rejected: number;
}

/** Solves y' = f(t, y) from t0 to t1 (t1 > t0) at rtol = atol = tol; returns y(t1) and the counters. */
export function dopri5Loop(f: ArrayField, y0: Float64Array, t0: number, t1: number, tol: number): { y: Float64Array; stats: LoopStats } {
  const n = y0.length;
  let y = Float64Array.from(y0);
  let y1 = new Float64Array(n);
  let k1 = new Float64Array(n);
  const k2 = new Float64Array(n),
    k3 = new Float64Array(n),
    k4 = new Float64Array(n),
    k5 = new Float64Array(n),
    k6 = new Float64Array(n);
  let k7 = new Float64Array(n);
  const z = new Float64Array(n);
  f(t0, y, k1);
  let nfev = 1;
  // first step (Hairer, Nørsett & Wanner II.4), as PIDController's selectInitialStep
  let d0 = 0,
    d1 = 0;
  for (let i = 0; i < n; i++) {
    const sc = tol + tol * Math.abs(y[i]);
    const r0 = y[i] / sc,
      r1 = k1[i] / sc;
    d0 += r0 * r0;
    d1 += r1 * r1;
  }
  d0 = Math.sqrt(d0 / n);
  d1 = Math.sqrt(d1 / n);
  let h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : (0.01 * d0) / d1;
  h0 = Math.min(h0, t1 - t0);
  for (let i = 0; i < n; i++) z[i] = y[i] + h0 * k1[i];
  f(t0 + h0, z, k2);
  nfev++;
  let d2 = 0;
  for (let i = 0; i < n; i++) {
    const r = (k2[i] + -1 * k1[i]) / (tol + tol * Math.abs(y[i]));
    d2 += r * r;
  }
  d2 = Math.sqrt(d2 / n) / h0;
  const m = Math.max(d1, d2);
  const hFirst = Math.min(100 * h0, m <= 1e-15 ? Math.max(1e-6, h0 * 1e-3) : Math.pow(0.01 / m, 1 / 5));
  let h = Number.isFinite(hFirst) && hFirst > 0 ? hFirst : h0;

  let t = t0,
    accepted = 0,
    rejected = 0,
    lastRejected = false;
  while (t < t1) {
    let hs = h;
    let tn = t + hs;
    if (tn - t1 >= 0) {
      hs = t1 - t;
      tn = t1;
    }
    const w21 = hs * a21;
    for (let i = 0; i < n; i++) z[i] = y[i] + k1[i] * w21;
    f(t + c2 * hs, z, k2);
    const w31 = hs * a31,
      w32 = hs * a32;
    for (let i = 0; i < n; i++) z[i] = y[i] + k1[i] * w31 + k2[i] * w32;
    f(t + c3 * hs, z, k3);
    const w41 = hs * a41,
      w42 = hs * a42,
      w43 = hs * a43;
    for (let i = 0; i < n; i++) z[i] = y[i] + k1[i] * w41 + k2[i] * w42 + k3[i] * w43;
    f(t + c4 * hs, z, k4);
    const w51 = hs * a51,
      w52 = hs * a52,
      w53 = hs * a53,
      w54 = hs * a54;
    for (let i = 0; i < n; i++) z[i] = y[i] + k1[i] * w51 + k2[i] * w52 + k3[i] * w53 + k4[i] * w54;
    f(t + c5 * hs, z, k5);
    const w61 = hs * a61,
      w62 = hs * a62,
      w63 = hs * a63,
      w64 = hs * a64,
      w65 = hs * a65;
    for (let i = 0; i < n; i++) z[i] = y[i] + k1[i] * w61 + k2[i] * w62 + k3[i] * w63 + k4[i] * w64 + k5[i] * w65;
    f(t + hs, z, k6);
    const w71 = hs * a71,
      w73 = hs * a73,
      w74 = hs * a74,
      w75 = hs * a75,
      w76 = hs * a76;
    for (let i = 0; i < n; i++) y1[i] = y[i] + k1[i] * w71 + k3[i] * w73 + k4[i] * w74 + k5[i] * w75 + k6[i] * w76;
    f(tn, y1, k7);
    nfev += 6;
    const v1 = hs * e1,
      v3 = hs * e3,
      v4 = hs * e4,
      v5 = hs * e5,
      v6 = hs * e6,
      v7 = hs * e7;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const err = 0 + v1 * k1[i] + v3 * k3[i] + v4 * k4[i] + v5 * k5[i] + v6 * k6[i] + v7 * k7[i];
      const r = err / (tol + tol * Math.max(Math.abs(y[i]), Math.abs(y1[i])));
      acc += r * r;
    }
    const ratio = Math.sqrt(acc / n);
    if (ratio <= 1) {
      let factor = ratio === 0 ? 10 : 0.9 * Math.pow(ratio, -1 / 5);
      factor = Math.min(10, Math.max(0.2, factor));
      if (lastRejected) factor = Math.min(1, factor);
      h = Math.abs(hs) * factor;
      lastRejected = false;
      accepted++;
      t = tn;
      [y, y1] = [y1, y];
      [k1, k7] = [k7, k1];
    } else if (Number.isFinite(ratio)) {
      h = Math.abs(hs) * Math.min(0.9, Math.max(0.2, 0.9 * Math.pow(ratio, -1 / 5)));
      lastRejected = true;
      rejected++;
    } else throw new Error(`dopri5 loop: non-finite error at t = ${t}`);
  }
  return { y, stats: { nfev, accepted, rejected } };
}
