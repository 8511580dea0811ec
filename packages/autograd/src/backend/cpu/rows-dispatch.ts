type F = Float32Array | Float64Array;

/** Softmax or log-softmax of each row of a [rows, cols] matrix. */
export function softmaxRowsK(x: F, out: F, rows: number, cols: number, log: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let j = 0; j < cols; j++) if (x[o + j] > m) m = x[o + j];
    if (m === -Infinity) m = 0;
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(x[o + j] - m);
    if (log) {
      const l = m + Math.log(s);
      for (let j = 0; j < cols; j++) out[o + j] = x[o + j] - l;
    } else {
      const inv = 1 / s;
      for (let j = 0; j < cols; j++) out[o + j] = Math.exp(x[o + j] - m) * inv;
    }
  }
}

/** Per-row negative log-likelihood and log-sum-exp. */
export function crossEntropyRowsK(x: F, t: Int32Array, rows: number, cols: number, ignore: number, loss: F, lse: F): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let j = 0; j < cols; j++) if (x[o + j] > m) m = x[o + j];
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(x[o + j] - m);
    const l = m + Math.log(s);
    lse[r] = l;
    loss[r] = t[r] === ignore ? 0 : l - x[o + t[r]];
  }
}

/** dLogits = g * (softmax - onehot) per row; zero rows where the target is ignored. */
export function crossEntropyBackwardRowsK(x: F, t: Int32Array, lse: F, g: F, out: F, rows: number, cols: number, ignore: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    if (t[r] === ignore) continue;
    const l = lse[r], gr = g[r];
    for (let j = 0; j < cols; j++) out[o + j] = gr * Math.exp(x[o + j] - l);
    out[o + t[r]] -= gr;
  }
}
