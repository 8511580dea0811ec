/**
 * Per-sentence token-sensitivity analysis and its aggregation over a corpus: statistics of the Lyapunov heat-map
 * scalar per token id, per position and per distance to the query, and rank correlations with the saliency
 * baselines (so a claim like "punctuation is sensitive" can be checked over many inputs, not one sentence).
 */
import type { DynamicsModel } from "./dynamics.js";
import { sentenceLyapunov, type LyapunovOptions, type RunningExponent } from "./lyapunov.js";
import { gradTimesInput, rolloutSaliency, type GradInputSaliency } from "./saliency.js";

/** Count, mean and (population) standard deviation. */
export interface Stat {
  count: number;
  mean: number;
  std: number;
}

/** Welford accumulator of count / mean / variance. */
export class RunningStat {
  private n = 0;
  private m = 0;
  private s = 0;

  /** Adds one finite value (non-finite values are ignored). */
  add(x: number): void {
    if (!Number.isFinite(x)) return;
    this.n++;
    const d = x - this.m;
    this.m += d / this.n;
    this.s += d * (x - this.m);
  }

  /** The current statistics (mean and std are 0 when empty). */
  get(): Stat {
    return { count: this.n, mean: this.n ? this.m : 0, std: this.n ? Math.sqrt(this.s / this.n) : 0 };
  }
}

/** Everything computed for one input sequence. */
export interface SentenceAnalysis {
  /** Token ids. */
  ids: number[];
  /** Decoded text of each token. */
  tokens: string[];
  /** Query token j (the last one). */
  query: number;
  /** Max over each token's Lyapunov spectrum (the heat-map scalar), k = 0..j. */
  maxExponent: number[];
  /** Sum of each token's spectrum. */
  sumExponent: number[];
  /** Kaplan–Yorke dimension of each token's spectrum. */
  kaplanYorke: number[];
  /** Full sorted spectra, when requested. */
  exponents?: number[][];
  /** The max exponent of each token over the integration time (its last entry is `maxExponent`), to judge convergence. */
  running?: RunningExponent;
  /** Attention-rollout saliency of each token for the query. */
  rollout: number[];
  /** Gradient × input of the query's top prediction (or the given next token). */
  gradInput: GradInputSaliency;
}

/** Options of `analyzeSentence`. */
export interface SentenceOptions extends Pick<LyapunovOptions, "chunk"> {
  /** Keep the full spectra in the result. */
  keepSpectra?: boolean;
  /** Token predicted at the query for gradient × input (default: the model's top prediction). */
  target?: number;
  /** Text of a token id (for labels). */
  decode?: (id: number) => string;
}

/** Lyapunov spectra (query = last token), attention rollout and gradient × input of one sequence. */
export function analyzeSentence(dm: DynamicsModel, ids: readonly number[], opts: SentenceOptions = {}): SentenceAnalysis {
  if (ids.length < 2) throw new Error(`analyzeSentence: ${ids.length} token(s); expected at least 2 (sources and a query)`);
  const ly = sentenceLyapunov(dm, ids, { chunk: opts.chunk });
  const dec = opts.decode ?? ((id: number) => `#${id} `);
  return {
    ids: [...ids],
    tokens: ids.map(dec),
    query: ly.query,
    maxExponent: ly.maxExponent,
    sumExponent: ly.sumExponent,
    kaplanYorke: ly.kaplanYorke,
    ...(opts.keepSpectra ? { exponents: ly.exponents } : {}),
    running: ly.running,
    rollout: rolloutSaliency(dm, ids, ly.query),
    gradInput: gradTimesInput(dm, ids, { query: ly.query, target: opts.target }),
  };
}

/** Per-token-id statistics of the heat-map scalar. */
export interface TokenStat extends Stat {
  id: number;
  token: string;
}

/** Corpus-level statistics (the query token of each sentence is excluded: its entry is a self-sensitivity). */
export interface CorpusStats {
  sentences: number;
  /** Over all source tokens. */
  overall: Stat;
  /** Per token id, sorted by descending mean. */
  byToken: TokenStat[];
  /** byPosition[k]: tokens at position k. */
  byPosition: Stat[];
  /** byDistance[d]: tokens d positions before the query (d ≥ 1; entry 0 is empty). */
  byDistance: Stat[];
  /** Spearman rank correlation per sentence between the maps, summarised over sentences. */
  correlation: { lyapunovVsRollout: Stat; lyapunovVsGradInput: Stat; rolloutVsGradInput: Stat };
}

/** Ranks (1-based, ties averaged) of a list of numbers. */
export function ranks(x: readonly number[]): number[] {
  const idx = x.map((_, i) => i).sort((a, b) => x[a] - x[b]);
  const r = new Array<number>(x.length);
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && x[idx[j + 1]] === x[idx[i]]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}

/** Spearman rank correlation (NaN when fewer than 3 values or a constant input). */
export function spearman(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new Error(`spearman: lengths ${a.length} and ${b.length} differ; expected equal lengths`);
  const n = a.length;
  if (n < 3) return NaN;
  const ra = ranks(a),
    rb = ranks(b);
  const m = (n + 1) / 2;
  let sab = 0,
    saa = 0,
    sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (ra[i] - m) * (rb[i] - m);
    saa += (ra[i] - m) ** 2;
    sbb += (rb[i] - m) ** 2;
  }
  return saa === 0 || sbb === 0 ? NaN : sab / Math.sqrt(saa * sbb);
}

/** Aggregates sentence analyses: stats of maxExponent per token id, position and distance, and map correlations. */
export function aggregateCorpus(sentences: readonly SentenceAnalysis[]): CorpusStats {
  const overall = new RunningStat();
  const byId = new Map<number, { token: string; s: RunningStat }>();
  const byPos: RunningStat[] = [];
  const byDist: RunningStat[] = [];
  const cr = { lr: new RunningStat(), lg: new RunningStat(), rg: new RunningStat() };
  for (const s of sentences) {
    const j = s.query;
    for (let k = 0; k < j; k++) {
      const v = s.maxExponent[k];
      overall.add(v);
      let e = byId.get(s.ids[k]);
      if (!e) byId.set(s.ids[k], (e = { token: s.tokens[k], s: new RunningStat() }));
      e.s.add(v);
      (byPos[k] ??= new RunningStat()).add(v);
      (byDist[j - k] ??= new RunningStat()).add(v);
    }
    const ly = s.maxExponent.slice(0, j),
      ro = s.rollout.slice(0, j),
      gi = s.gradInput.abs.slice(0, j);
    cr.lr.add(spearman(ly, ro));
    cr.lg.add(spearman(ly, gi));
    cr.rg.add(spearman(ro, gi));
  }
  const fill = (a: RunningStat[]): Stat[] => Array.from({ length: a.length }, (_, i) => (a[i] ?? new RunningStat()).get());
  return {
    sentences: sentences.length,
    overall: overall.get(),
    byToken: [...byId.entries()].map(([id, e]) => ({ id, token: e.token, ...e.s.get() })).sort((a, b) => b.mean - a.mean || a.id - b.id),
    byPosition: fill(byPos),
    byDistance: fill(byDist),
    correlation: { lyapunovVsRollout: cr.lr.get(), lyapunovVsGradInput: cr.lg.get(), rolloutVsGradInput: cr.rg.get() },
  };
}
