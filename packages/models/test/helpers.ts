/**
 * Test helpers: deterministic parameter perturbation, comparisons, and a naive plain-JavaScript reference
 * implementation of the model equations (float64 loops, no autograd) used as an independent check.
 */
import { tensor, type Tensor } from "@qkvflow/autograd";

/** Deterministic pseudo-random numbers in [-1, 1) (independent of the library's RNG). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

/** Replaces every parameter by uniform values of the given scale (LayerNorm-like scales near 1). */
export function perturbed(params: Record<string, Tensor>, seed: number, scale = 0.3): Record<string, Tensor> {
  const r = lcg(seed);
  const out: Record<string, Tensor> = {};
  for (const [n, p] of Object.entries(params)) {
    const a = p.dtype === "float64" ? new Float64Array(p.size) : new Float32Array(p.size);
    const near1 = /(ln_[12fam]|ln_a|ln_m)\.weight$/.test(n);
    for (let i = 0; i < a.length; i++) a[i] = (near1 ? 1 : 0) + scale * r();
    out[n] = tensor(a, { shape: [...p.shape], dtype: p.dtype });
  }
  return out;
}

/** Largest absolute difference of two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths ${a.length} and ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Largest absolute value. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

// ---------------------------------------------------------------- naive reference (row-major number arrays)

type Mat = number[][];

function get(p: Record<string, Tensor>, n: string): number[] {
  const t = p[n];
  if (!t) throw new Error(`reference: missing parameter ${n}`);
  return Array.from(t.data());
}

function mat(p: Record<string, Tensor>, n: string): Mat {
  const t = p[n];
  const flat = get(p, n);
  const [r, c] = t.shape;
  return Array.from({ length: r }, (_, i) => flat.slice(i * c, (i + 1) * c));
}

function vecMat(x: number[], W: Mat): number[] {
  const out = new Array<number>(W[0].length).fill(0);
  for (let i = 0; i < x.length; i++) for (let j = 0; j < out.length; j++) out[j] += x[i] * W[i][j];
  return out;
}

function addv(a: number[], b: number[]): number[] {
  return a.map((v, i) => v + b[i]);
}

function ln(x: number[], g: number[], b: number[], eps: number): number[] {
  const mu = x.reduce((s, v) => s + v, 0) / x.length;
  const v = x.reduce((s, u) => s + (u - mu) ** 2, 0) / x.length;
  return x.map((u, i) => ((u - mu) / Math.sqrt(v + eps)) * g[i] + b[i]);
}

function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** Causal attention over a sequence of rows X [T][E] with given per-row linear maps. */
function attention(X: Mat, H: number, Wqkv: Mat, bqkv: number[], Wo: Mat, bo: number[]): Mat {
  const T = X.length,
    E = X[0].length,
    D = E / H;
  const qkv = X.map((x) => addv(vecMat(x, Wqkv), bqkv));
  const out: Mat = X.map(() => new Array<number>(E).fill(0));
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < T; i++) {
      const s: number[] = [];
      for (let j = 0; j <= i; j++) {
        let d = 0;
        for (let c = 0; c < D; c++) d += qkv[i][h * D + c] * qkv[j][E + h * D + c];
        s.push(d / Math.sqrt(D));
      }
      const m = Math.max(...s);
      const e = s.map((v) => Math.exp(v - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j <= i; j++) for (let c = 0; c < D; c++) out[i][h * D + c] += (e[j] / z) * qkv[j][2 * E + h * D + c];
    }
  }
  return out.map((y) => addv(vecMat(y, Wo), bo));
}

function mlp(X: Mat, Wfc: Mat, bfc: number[], Wp: Mat, bp: number[]): Mat {
  return X.map((x) => addv(vecMat(addv(vecMat(x, Wfc), bfc).map(geluTanh), Wp), bp));
}

function embed(p: Record<string, Tensor>, ids: number[]): Mat {
  const wte = mat(p, "wte.weight"),
    wpe = mat(p, "wpe.weight");
  return ids.map((id, t) => addv(wte[id], wpe[t]));
}

function head(p: Record<string, Tensor>, X: Mat, eps: number): Mat {
  const wte = mat(p, "wte.weight");
  const g = get(p, "ln_f.weight"),
    b = get(p, "ln_f.bias");
  return X.map((x) => {
    const y = ln(x, g, b, eps);
    return wte.map((row) => row.reduce((s, v, i) => s + v * y[i], 0));
  });
}

/** Naive e(t): [t, sin(1000 t f_k), cos(1000 t f_k)], f_k = 10000^(−k/S). */
export function refTimeEmbedding(t: number, S: number): number[] {
  const s: number[] = [],
    c: number[] = [];
  for (let k = 0; k < S; k++) {
    const a = 1000 * t * Math.pow(10000, -k / S);
    s.push(Math.sin(a));
    c.push(Math.cos(a));
  }
  return [t, ...s, ...c];
}

/** Naive h(t) = lin2(silu(lin1(e(t)))) of the module at `path`. */
export function refHyper(p: Record<string, Tensor>, path: string, t: number, S: number): number[] {
  const e = refTimeEmbedding(t, S);
  const a = addv(vecMat(e, mat(p, `${path}.lin1.weight`)), get(p, `${path}.lin1.bias`)).map(silu);
  return addv(vecMat(a, mat(p, `${path}.lin2.weight`)), get(p, `${path}.lin2.bias`));
}

/** Naive W(t) = B_W + Σ_k h_k A_k and b(t) = h·F_b of a temporal linear. */
export function refTemporalLinear(p: Record<string, Tensor>, path: string, t: number, S: number): { W: Mat; b: number[] } {
  const h = refHyper(p, path, t, S);
  const A = p[`${path}.f_W.weight`];
  const [d, I, O] = A.shape;
  const a = get(p, `${path}.f_W.weight`);
  const W = mat(p, `${path}.f_W.bias`).map((r) => [...r]);
  for (let k = 0; k < d; k++) for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) W[i][o] += h[k] * a[(k * I + i) * O + o];
  const b = vecMat(h, mat(p, `${path}.f_b`));
  return { W, b };
}

/** Naive γ(t) = 1 + Γ h(t), β(t) = B h(t) of a temporal LayerNorm. */
export function refTemporalNorm(p: Record<string, Tensor>, path: string, t: number, S: number): { g: number[]; b: number[] } {
  const h = refHyper(p, path, t, S);
  const G = mat(p, `${path}.gamma`),
    Bm = mat(p, `${path}.beta`);
  return {
    g: G.map((row) => 1 + row.reduce((s, v, k) => s + v * h[k], 0)),
    b: Bm.map((row) => row.reduce((s, v, k) => s + v * h[k], 0)),
  };
}

/** Logits [T][V] of one sequence under GPT-2 (sequential pre-LN blocks). */
export function refGpt2Logits(p: Record<string, Tensor>, ids: number[], nLayer: number, nHead: number, eps = 1e-5): Mat {
  let X = embed(p, ids);
  for (let l = 0; l < nLayer; l++) {
    const q = `h.${l}`;
    const a = attention(
      X.map((x) => ln(x, get(p, `${q}.ln_1.weight`), get(p, `${q}.ln_1.bias`), eps)),
      nHead,
      mat(p, `${q}.attn.c_attn.weight`),
      get(p, `${q}.attn.c_attn.bias`),
      mat(p, `${q}.attn.c_proj.weight`),
      get(p, `${q}.attn.c_proj.bias`),
    );
    X = X.map((x, i) => addv(x, a[i]));
    const m = mlp(
      X.map((x) => ln(x, get(p, `${q}.ln_2.weight`), get(p, `${q}.ln_2.bias`), eps)),
      mat(p, `${q}.mlp.c_fc.weight`),
      get(p, `${q}.mlp.c_fc.bias`),
      mat(p, `${q}.mlp.c_proj.weight`),
      get(p, `${q}.mlp.c_proj.bias`),
    );
    X = X.map((x, i) => addv(x, m[i]));
  }
  return head(p, X, eps);
}

/** The DiffEqFormer vector field at time t for one sequence X [T][E]. */
export function refField(p: Record<string, Tensor>, X: Mat, t: number, nHead: number, S: number, eps = 1e-5): Mat {
  const la = refTemporalNorm(p, "block.ln_a", t, S),
    lm = refTemporalNorm(p, "block.ln_m", t, S);
  const ca = refTemporalLinear(p, "block.attn.c_attn", t, S),
    ap = refTemporalLinear(p, "block.attn.c_proj", t, S);
  const fc = refTemporalLinear(p, "block.mlp.c_fc", t, S),
    mp = refTemporalLinear(p, "block.mlp.c_proj", t, S);
  const a = attention(
    X.map((x) => ln(x, la.g, la.b, eps)),
    nHead,
    ca.W,
    ca.b,
    ap.W,
    ap.b,
  );
  const m = mlp(
    X.map((x) => ln(x, lm.g, lm.b, eps)),
    fc.W,
    fc.b,
    mp.W,
    mp.b,
  );
  return a.map((v, i) => addv(v, m[i]));
}

/** Logits [T][V] of one sequence under DiffEqFormer with the paper's Euler grid of L steps (t_i = (i+1)/L). */
export function refDiffEqFormerLogits(p: Record<string, Tensor>, ids: number[], L: number, nHead: number, S: number, eps = 1e-5): Mat {
  let X = embed(p, ids);
  for (let i = 0; i < L; i++) {
    const f = refField(p, X, (i + 1) / L, nHead, S, eps);
    X = X.map((x, r) => x.map((v, c) => v + f[r][c] / L));
  }
  return head(p, X, eps);
}
