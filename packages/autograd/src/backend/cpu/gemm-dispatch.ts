/** GEMM entry point of the CPU backend (row-major, optional transposes, optional batching). */
export interface GemmCall<T extends Float32Array | Float64Array> {
  transA: boolean; transB: boolean; m: number; n: number; k: number;
  a: T; aOffset?: number; b: T; bOffset?: number; c: T; cOffset?: number;
  batch?: number; strideA?: number; strideB?: number; strideC?: number;
}

/** Reference GEMM in plain TypeScript (the portable path). */
export function gemm<T extends Float32Array | Float64Array>(g: GemmCall<T>): void {
  const { transA, transB, m, n, k, a, b, c } = g;
  const batch = g.batch ?? 1;
  const row = new Float64Array(n);
  for (let bi = 0; bi < batch; bi++) {
    const oa = (g.aOffset ?? 0) + bi * (g.strideA ?? 0);
    const ob = (g.bOffset ?? 0) + bi * (g.strideB ?? 0);
    const oc = (g.cOffset ?? 0) + bi * (g.strideC ?? 0);
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let p = 0; p < k; p++) {
        const av = transA ? a[oa + p * m + i] : a[oa + i * k + p];
        if (av === 0) continue;
        if (!transB) {
          const base = ob + p * n;
          for (let j = 0; j < n; j++) row[j] += av * b[base + j];
        } else {
          for (let j = 0; j < n; j++) row[j] += av * b[ob + j * k + p];
        }
      }
      for (let j = 0; j < n; j++) c[oc + i * n + j] = row[j];
    }
  }
}
