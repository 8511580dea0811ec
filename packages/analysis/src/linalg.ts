/**
 * Small dense float64 helpers over the linear-algebra kernels of @qkvflow/autograd (Householder QR with
 * diag R ≥ 0, Hessenberg + Francis-QR eigenvalues). Host-side arithmetic without autodiff.
 */
import { eigvalsRaw, qrPositive, type Tensor } from "@qkvflow/autograd";

/** Copies any float tensor's data into a fresh Float64Array. */
export function toFloat64(x: Tensor): Float64Array {
  const d = x.data();
  return Float64Array.from(d as ArrayLike<number>);
}

/** Complex eigenvalues as two parallel arrays. */
export interface ComplexValues {
  re: number[];
  im: number[];
}

/** C = A·B for row-major A [m, k] and B [k, n] (float64). */
export function matmulRaw(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      if (av === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] += av * b[bp + j];
    }
  }
  return c;
}

/**
 * Eigenvalues of the product A·B with A [m, k] and B [k, m]. When k < m the product has rank ≤ k and its
 * nonzero eigenvalues are those of B·A [k, k] (Sylvester), so only the k×k problem is solved unless `full` is
 * set; either way the min(m, k) eigenvalues of largest modulus are returned (the other m − k are zero).
 */
export function productEigvals(a: Float64Array, b: Float64Array, m: number, k: number, full = false): ComplexValues {
  if (a.length !== m * k || b.length !== k * m) {
    throw new Error(
      `productEigvals: A has ${a.length} and B ${b.length} entries; expected A [${m}, ${k}] (${m * k}) and B [${k}, ${m}] (${k * m})`,
    );
  }
  const r = Math.min(m, k);
  let res;
  if (!full && k < m) res = eigvalsRaw(matmulRaw(b, a, k, m, k), k);
  else res = eigvalsRaw(matmulRaw(a, b, m, k, m), m);
  return { re: Array.from(res.re.subarray(0, r)), im: Array.from(res.im.subarray(0, r)) };
}

/** Householder QR with diag(R) ≥ 0 of one n×n row-major matrix: [Q, diag(R)]. */
export function qrSquarePositive(a: Float64Array, n: number): [Float64Array, Float64Array] {
  const { q, r } = qrPositive(a, 1, n, n, "reduced");
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = r[i * n + i];
  return [q, d];
}
