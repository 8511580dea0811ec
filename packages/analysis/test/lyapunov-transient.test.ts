import { test } from "node:test";
import assert from "node:assert/strict";
import { matmul, tensor, type Tensor } from "@qkvflow/autograd";
import { tokenLyapunov, type FieldStep } from "../src/index.js";
import { rng } from "../../../test/helpers/rng.js";

function det(m: number[][]): number {
  const n = m.length;
  const a = m.map((r) => r.slice());
  let d = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    if (a[p]![c] === 0) return 0;
    if (p !== c) {
      [a[p], a[c]] = [a[c]!, a[p]!];
      d = -d;
    }
    d *= a[c]![c]!;
    for (let r = c + 1; r < n; r++) {
      const f = a[r]![c]! / a[c]![c]!;
      for (let k = c; k < n; k++) a[r]![k]! -= f * a[c]![k]!;
    }
  }
  return d;
}

function inverse(m: number[][]): number[][] {
  const n = m.length;
  const a = m.map((r, i) => [...r, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    [a[p], a[c]] = [a[c]!, a[p]!];
    const piv = a[c]![c]!;
    for (let k = 0; k < 2 * n; k++) a[c]![k]! /= piv;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r]![c]!;
      for (let k = 0; k < 2 * n; k++) a[r]![k]! -= f * a[c]![k]!;
    }
  }
  return a.map((r) => r.slice(n));
}

const mm = (a: number[][], b: number[][]) => a.map((r) => b[0]!.map((_, j) => r.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const cols = (m: number[][], p: number) => m.map((r) => r.slice(0, p));
const transpose = (m: number[][]) => m[0]!.map((_, j) => m.map((r) => r[j]!));

/** The linear field x ↦ A x on states [1, 1, n] (x·Aᵀ). */
function linearSteps(A: number[][], T: number, n: number): FieldStep[] {
  const E = A.length;
  const At = tensor(Float64Array.from(transpose(A).flat()), { shape: [E, E], dtype: "float64" });
  const field = (x: Tensor) => matmul(x, At);
  return Array.from({ length: n }, (_, i) => ({ t: ((i + 1) * T) / n, dt: T / n, field }));
}

test("Lyapunov transient on random linear systems: exponent_p(T) = log(1 + dt·λ_p)/dt + (C_p − C_{p−1})/T, C_p from the eigenvectors", () => {
  // For x' = A x, A = V diag(λ) V⁻¹ (real, distinct, descending), the Euler map is M = V diag(μ) V⁻¹ with μ = 1 + dt·λ.
  // QR from Q₀ = I accumulates S_p(n) = log vol_p(Mⁿ e_1…e_p) = n Σ_{i≤p} log μ_i + C_p + O(max (μ_{i+1}/μ_i)ⁿ), with
  // C_p = log( vol_p(v_1…v_p) · |det (V⁻¹)_{1:p,1:p}| ) (unchanged by rescaling the eigenvectors). So the finite-time
  // error of exponent p is exactly (C_p − C_{p−1})/T: it decays as 1/T, and its size depends on how the initial
  // frame sits relative to the eigenvectors (the minors of V⁻¹), which log κ(V) does not bound.
  const r = rng(16);
  const T = 20;
  const n = 800;
  const dt = T / n;
  for (let s = 0; s < 5; s++) {
    const lam = [0.6 + 0.3 * r(), 0.1 * r(), -0.4 - 0.3 * r()];
    const V = [0, 1, 2].map((i) => [0, 1, 2].map((j) => (i === j ? 1 : 0) + 1.2 * (r() - 0.5)));
    const Vi = inverse(V);
    const A = mm(
      mm(
        V,
        lam.map((l, i) => lam.map((_, j) => (i === j ? l : 0))),
      ),
      Vi,
    );
    const C = [0, 1, 2, 3].map((p) => {
      if (p === 0) return 0;
      const Vp = cols(V, p);
      const vol = Math.sqrt(det(mm(transpose(Vp), Vp)));
      return Math.log(vol * Math.abs(det(Vi.slice(0, p).map((row) => row.slice(0, p)))));
    });
    const res = tokenLyapunov(linearSteps(A, T, n), tensor(Float64Array.from([0.3, -0.2, 0.5]), { shape: [1, 1, 3], dtype: "float64" }));
    const got = res.exponents[0]!;
    for (let p = 0; p < 3; p++) {
      const want = Math.log(1 + dt * lam[p]!) / dt + (C[p + 1]! - C[p]!) / T;
      assert.ok(Math.abs(got[p]! - want) < 2e-4, `system ${s} exponent ${p}: ${got[p]} vs ${want}`);
    }
  }
});
