/**
 * Gradient-checking harness for the property tests: compares reverse mode (VJP) and forward mode (JVP) with
 * central finite differences in float64, and checks the adjoint identity <u, J v> = <Jᵀ u, v>.
 */
import { jvp, tensor, treeFlatten, vjp, type Tensor } from "../src/index.js";

export interface CheckOptions {
  /** finite-difference step */
  h?: number;
  atol?: number;
  rtol?: number;
  /** extra relative tolerance of the adjoint identity (ops that round through float32) */
  adjointRtol?: number;
}

function flatOut(y: unknown): Float64Array {
  const leaves = treeFlatten(y).leaves;
  const n = leaves.reduce((s, t) => s + t.size, 0);
  const out = new Float64Array(n);
  let k = 0;
  for (const t of leaves) {
    const d = t.data();
    for (let i = 0; i < d.length; i++) out[k++] = d[i];
  }
  return out;
}

function dotArr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Deterministic pseudo-random values in [-1, 1) (the harness must not depend on the RNG under test). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

function perturbed(xs: Tensor[], argIdx: number, dir: Float64Array, eps: number): Tensor[] {
  return xs.map((x, i) => {
    if (i !== argIdx) return x;
    const d = Float64Array.from(x.data() as Float64Array);
    for (let j = 0; j < d.length; j++) d[j] += eps * dir[j];
    return tensor(d, { dtype: "float64", shape: [...x.shape] });
  });
}

function close(a: number, b: number, atol: number, rtol: number): boolean {
  return Math.abs(a - b) <= atol + rtol * Math.max(Math.abs(a), Math.abs(b));
}

/**
 * Checks VJP against finite differences element by element, JVP against a finite-difference directional
 * derivative, and the VJP/JVP adjoint identity. Throws with details on the first mismatch.
 */
export function checkGradients(
  name: string,
  f: (...xs: Tensor[]) => unknown,
  inputs: Tensor[],
  diffArgs: number[],
  seed: number,
  opts: CheckOptions = {},
): void {
  const h = opts.h ?? 1e-6;
  const atol = opts.atol ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  const rnd = lcg(seed);
  const y0 = flatOut(f(...inputs));
  const u = Float64Array.from({ length: y0.length }, () => rnd());

  // Reverse mode: gradients of <u, f(x)> for every differentiable argument.
  const g = (...sel: Tensor[]) => {
    const all = [...inputs];
    diffArgs.forEach((a, i) => (all[a] = sel[i]));
    return f(...all);
  };
  const [out, pull] = vjp(g, ...diffArgs.map((a) => inputs[a]));
  const outLeaves = treeFlatten(out);
  let off = 0;
  const ct = outLeaves.unflatten(
    outLeaves.leaves.map((t) => {
      const c = tensor(u.slice(off, off + t.size), { dtype: "float64", shape: [...t.shape] });
      off += t.size;
      return c;
    }),
  );
  const grads = pull(ct) as Tensor[];

  diffArgs.forEach((a, gi) => {
    const x = inputs[a];
    const gv = grads[gi].data();
    if (grads[gi].size !== x.size) throw new Error(`${name}: VJP for argument ${a} has ${grads[gi].size} elements; expected ${x.size}`);
    const e = new Float64Array(x.size);
    for (let j = 0; j < x.size; j++) {
      e.fill(0);
      e[j] = 1;
      const fp = flatOut(f(...perturbed(inputs, a, e, h)));
      const fm = flatOut(f(...perturbed(inputs, a, e, -h)));
      const fd = (dotArr(u, fp) - dotArr(u, fm)) / (2 * h);
      if (!close(gv[j], fd, atol, rtol)) {
        throw new Error(
          `${name}: VJP mismatch for argument ${a} element ${j}: autodiff ${gv[j]} vs finite differences ${fd} (input shapes ${inputs.map((t) => `[${t.shape}]`).join(" ")})`,
        );
      }
    }

    // Forward mode along a random direction.
    const v = Float64Array.from({ length: x.size }, () => rnd());
    const tangents = diffArgs.map((b) =>
      b === a
        ? tensor(v, { dtype: "float64", shape: [...x.shape] })
        : tensor(new Float64Array(inputs[b].size), { dtype: "float64", shape: [...inputs[b].shape] }),
    );
    const [, tOut] = jvp(
      g as (...a: never[]) => unknown,
      diffArgs.map((b) => inputs[b]),
      tangents,
    );
    const jv = flatOut(tOut);
    const fp = flatOut(f(...perturbed(inputs, a, v, h)));
    const fm = flatOut(f(...perturbed(inputs, a, v, -h)));
    for (let i = 0; i < jv.length; i++) {
      const fd = (fp[i] - fm[i]) / (2 * h);
      if (!close(jv[i], fd, atol, rtol)) {
        throw new Error(`${name}: JVP mismatch for argument ${a} output ${i}: autodiff ${jv[i]} vs finite differences ${fd}`);
      }
    }
    // Adjoint identity <u, J v> = <Jᵀ u, v>.
    const lhs = dotArr(u, jv);
    const rhs = dotArr(gv, v);
    if (!close(lhs, rhs, Math.min(atol, 1e-9), Math.min(rtol, 1e-9) + (opts.adjointRtol ?? 0)))
      throw new Error(`${name}: <u, Jv> = ${lhs} but <Jᵀu, v> = ${rhs} for argument ${a}`);
  });
}
