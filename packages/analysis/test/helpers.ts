/** Shared test helpers: naive references, a character codec and a tiny Adam training loop for micro models. */
import assert from "node:assert/strict";
import { random, tensor, valueAndGrad, type Tensor } from "@qkvflow/autograd";
import type { AnyModel } from "@qkvflow/models";
import type { TextCodec } from "../src/index.js";

/** max |a − b| over two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "lengths differ");
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** Naive row-major matrix product. */
export function naiveMatmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
      c[i * n + j] = s;
    }
  return c;
}

/** Sorts complex numbers by (re, im) for order-independent comparison. */
export function sortComplex(re: readonly number[], im: readonly number[]): [number, number][] {
  return re.map((r, i) => [r, im[i]] as [number, number]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** Asserts two multisets of complex numbers agree within tol (after sorting). */
export function assertComplexClose(
  got: { re: readonly number[]; im: readonly number[] },
  want: [number, number][],
  tol: number,
  what: string,
): void {
  const g = sortComplex(got.re, got.im);
  const w = [...want].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  assert.equal(g.length, w.length, `${what}: ${g.length} eigenvalues, expected ${w.length}`);
  g.forEach((z, i) => {
    const d = Math.hypot(z[0] - w[i][0], z[1] - w[i][1]);
    assert.ok(d <= tol, `${what}: eigenvalue ${z[0]}+${z[1]}i vs expected ${w[i][0]}+${w[i][1]}i (|diff| ${d} > ${tol})`);
  });
}

/** A character-level codec over a fixed alphabet (unknown characters map to the last symbol). */
export function charCodec(alphabet: string): TextCodec & { vocabSize: number } {
  const chars = [...alphabet];
  const index = new Map(chars.map((c, i) => [c, i]));
  return {
    vocabSize: chars.length,
    encode: (text: string) => [...text].map((c) => index.get(c) ?? index.get(c.toLowerCase()) ?? chars.length - 1),
    decode: (ids: ArrayLike<number>) => Array.from(ids, (i) => chars[i] ?? "?").join(""),
  };
}

/** B random training windows of length T (inputs and next-token targets), deterministic given the seed. */
function batch(ids: readonly number[], T: number, B: number, seed: number): { x: Tensor; y: Tensor } {
  const key = random.key(seed);
  const starts = Array.from(random.uniform(key, [B], { dtype: "float64" }).data() as ArrayLike<number>, (u) =>
    Math.floor(u * (ids.length - T - 1)),
  );
  const x = new Int32Array(B * T),
    y = new Int32Array(B * T);
  starts.forEach((s, b) => {
    for (let t = 0; t < T; t++) {
      x[b * T + t] = ids[s + t];
      y[b * T + t] = ids[s + t + 1];
    }
  });
  return { x: tensor(x, { shape: [B, T], dtype: "int32" }), y: tensor(y, { shape: [B, T], dtype: "int32" }) };
}

/** Trains a model in place with plain Adam for `steps` steps; returns the loss of every step. */
export function trainTiny(
  model: AnyModel,
  ids: readonly number[],
  opts: { steps: number; lr: number; T: number; B: number; seed?: number },
): number[] {
  const names = Object.keys(model.parameters());
  const m = new Map<string, Float64Array>(),
    v = new Map<string, Float64Array>();
  const losses: number[] = [];
  const lossOf = (p: Record<string, Tensor>, x: Tensor, y: Tensor): Tensor => {
    model.setParameters(p);
    return model.loss(x, y, { training: false });
  };
  const vg = valueAndGrad(lossOf);
  for (let step = 1; step <= opts.steps; step++) {
    const { x, y } = batch(ids, opts.T, opts.B, (opts.seed ?? 0) * 100_003 + step);
    const params = model.parameters();
    const [loss, grads] = vg(params, x, y) as [Tensor, Record<string, Tensor>];
    losses.push(loss.item());
    const next: Record<string, Tensor> = {};
    for (const n of names) {
      const p = params[n],
        g = grads[n].data();
      const pd = p.data();
      const mm = m.get(n) ?? new Float64Array(p.size),
        vv = v.get(n) ?? new Float64Array(p.size);
      m.set(n, mm);
      v.set(n, vv);
      const out = p.dtype === "float64" ? new Float64Array(p.size) : new Float32Array(p.size);
      const b1 = 0.9,
        b2 = 0.999;
      for (let i = 0; i < p.size; i++) {
        mm[i] = b1 * mm[i] + (1 - b1) * g[i];
        vv[i] = b2 * vv[i] + (1 - b2) * g[i] * g[i];
        const mh = mm[i] / (1 - b1 ** step),
          vh = vv[i] / (1 - b2 ** step);
        out[i] = pd[i] - (opts.lr * mh) / (Math.sqrt(vh) + 1e-8);
      }
      next[n] = tensor(out, { shape: [...p.shape], dtype: p.dtype });
    }
    model.setParameters(next);
  }
  return losses;
}
