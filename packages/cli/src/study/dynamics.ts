/**
 * Experiments 2 and 3 on the main comparison's trained models: eigenvalue spectra of QK, OV and the FFN over
 * depth (paper §3.1), and Lyapunov token sensitivity with attention rollout and gradient × input over a corpus of
 * test sequences (§3.2).
 */
import {
  analyzeModel,
  barPlot,
  dynamicsOf,
  escapeXml,
  linePlot,
  spearman,
  spectraOverDepth,
  type AnalysisResult,
  type AnalyzableModel,
  type LineSeries,
  type SpectrumKind,
} from "@qkvflow/analysis";
import { gpt2Tokenizer, loadModelFrom } from "@qkvflow/train";
import * as path from "node:path";
import { mainRun, type MainModel } from "./main-comparison.js";
import { cached, fx, meanStd, type StudyContext } from "./runner.js";

const KINDS: SpectrumKind[] = ["qk", "ov", "ffn"];
const KIND_LABEL: Record<SpectrumKind, string> = { qk: "QK", ov: "OV", ffn: "FFN" };

/** Per model and seed: t, per-head spectral radius, mean |λ| and mean Re λ of each family. */
export interface SpectraCurve {
  model: MainModel;
  seed: number;
  t: number[];
  radius: Record<SpectrumKind, number[][]>;
  meanRe: Record<SpectrumKind, number[]>;
  fracPositiveRe: Record<SpectrumKind, number[]>;
  /** Spearman ρ of each head's max|λ| against t. */
  rho: Record<SpectrumKind, number[]>;
}

/** Result of experiment 2. */
export interface SpectraExperiment {
  curves: SpectraCurve[];
  /** Per model and family: ρ over all heads and seeds (mean ± std), and the fraction of heads with ρ > 0. */
  summary: { model: MainModel; kind: SpectrumKind; rho: { mean: number; std: number; n: number }; positive: number; meanRe: number }[];
}

function spectraCurve(model: AnalyzableModel, which: MainModel, seed: number, times: number): SpectraCurve {
  const dm = dynamicsOf(model);
  const ts = Array.from({ length: times }, (_, i) => i / (times - 1));
  const s = spectraOverDepth(dm, which === "diffeqformer" ? { times: ts } : {});
  const t = s.points.map((p) => p.t);
  const radius = {} as Record<SpectrumKind, number[][]>;
  const meanRe = {} as Record<SpectrumKind, number[]>;
  const frac = {} as Record<SpectrumKind, number[]>;
  const rho = {} as Record<SpectrumKind, number[]>;
  for (const k of KINDS) {
    const st = s.stats[k];
    const heads = st[0]!.radius.length;
    radius[k] = Array.from({ length: heads }, (_, h) => st.map((p) => p.radius[h]!));
    meanRe[k] = st.map((p) => p.meanRe);
    frac[k] = st.map((p) => p.fracPositiveRe);
    rho[k] = radius[k].map((r) => spearman(t, r));
  }
  return { model: which, seed, t, radius, meanRe, fracPositiveRe: frac, rho };
}

/** Runs experiment 2 (trains the main runs it needs when they are missing). */
export async function runSpectra(ctx: StudyContext): Promise<{ result: SpectraExperiment; figures: Record<string, string> }> {
  const curves: SpectraCurve[] = [];
  for (const which of ["diffeqformer", "gpt"] as MainModel[]) {
    for (let seed = 0; seed < ctx.spec.seeds; seed++) {
      const run = await mainRun(ctx, which, seed);
      curves.push(
        await cached(ctx, `spectra-${run.name}`, () => {
          const { model } = loadModelFrom(path.join(ctx.out, "runs", run.name));
          return spectraCurve(model as unknown as AnalyzableModel, which, seed, ctx.spec.spectra.times);
        }),
      );
    }
  }
  const summary: SpectraExperiment["summary"] = [];
  for (const which of ["diffeqformer", "gpt"] as MainModel[]) {
    const cs = curves.filter((c) => c.model === which);
    for (const k of KINDS) {
      const all = cs.flatMap((c) => c.rho[k]).filter(Number.isFinite);
      summary.push({
        model: which,
        kind: k,
        rho: meanStd(all),
        positive: all.filter((r) => r > 0).length / Math.max(1, all.length),
        meanRe: meanStd(cs.flatMap((c) => c.meanRe[k])).mean,
      });
    }
  }
  const result = { curves, summary };
  return { result, figures: spectraFigures(result) };
}

function spectraFigures(r: SpectraExperiment): Record<string, string> {
  const out: Record<string, string> = {};
  const def = r.curves.find((c) => c.model === "diffeqformer" && c.seed === 0)!;
  const gpt = r.curves.find((c) => c.model === "gpt" && c.seed === 0)!;
  for (const k of KINDS) {
    const series: LineSeries[] = [];
    def.radius[k].forEach((rad, h) =>
      series.push({ label: `DiffEqFormer ${k === "ffn" ? "FFN" : `head ${h}`}`, points: def.t.map((t, i) => [t, rad[i]!]) }),
    );
    gpt.radius[k].forEach((rad, h) =>
      series.push({
        label: `GPT-2 ${k === "ffn" ? "FFN" : `head ${h}`}`,
        points: gpt.t.map((t, i) => [t, rad[i]!]),
        dashed: true,
      }),
    );
    out[`spectra-${k}-radius`] = linePlot(series, {
      title: `${KIND_LABEL[k]} spectral radius max|λ| over depth (seed 0)`,
      xLabel: "t (DiffEqFormer time; GPT-2 layer ℓ at (ℓ+1)/L)",
      yLabel: "max |λ|",
    });
  }
  const re: LineSeries[] = [];
  KINDS.forEach((k, i) => {
    re.push({
      label: `DiffEqFormer ${KIND_LABEL[k]}`,
      points: def.t.map((t, j) => [t, def.meanRe[k][j]!]),
      color: ["#0072B2", "#D55E00", "#009E73"][i],
    });
    re.push({
      label: `GPT-2 ${KIND_LABEL[k]}`,
      points: gpt.t.map((t, j) => [t, gpt.meanRe[k][j]!]),
      color: ["#0072B2", "#D55E00", "#009E73"][i],
      dashed: true,
    });
  });
  out["spectra-mean-re"] = linePlot(re, {
    title: "Mean Re λ over depth (seed 0)",
    xLabel: "t (GPT-2 layer ℓ at (ℓ+1)/L)",
    yLabel: "mean Re λ",
  });
  return out;
}

/** Markdown of experiment 2. */
export function spectraMarkdown(r: SpectraExperiment): string {
  const name = (m: MainModel) => (m === "diffeqformer" ? "DiffEqFormer" : "GPT-2");
  return [
    "Spearman ρ of each head's spectral radius max|λ| against t (DiffEqFormer: the weights generated at evenly spaced t ∈ [0, 1]; GPT-2: layer ℓ = 0…L−1 at t = (ℓ+1)/L), over all heads and seeds:",
    "",
    "| model | map | ρ(max|λ|, t) mean ± std | heads with ρ > 0 | mean Re λ |",
    "|---|---|---|---|---|",
    ...r.summary.map(
      (s) =>
        `| ${name(s.model)} | ${KIND_LABEL[s.kind]} | ${fx(s.rho.mean)} ± ${fx(s.rho.std)} (n = ${s.rho.n}) | ${fx(100 * s.positive, 0)} % | ${typeof s.meanRe === "number" ? s.meanRe.toExponential(2) : "n/a"} |`,
    ),
    "",
    "![QK spectral radius](figures/spectra-qk-radius.svg)",
    "",
    "![OV spectral radius](figures/spectra-ov-radius.svg)",
    "",
    "![FFN spectral radius](figures/spectra-ffn-radius.svg)",
    "",
    "![Mean real part](figures/spectra-mean-re.svg)",
  ].join("\n");
}

const SENTENCES = [
  "Robert Boulter is an English film, television and theatre actor. He had a guest-starring role on the television series",
  "The lobster is a species of clawed lobster from the eastern Atlantic Ocean, the Mediterranean Sea and parts of the",
  "Du Fu was a prominent Chinese poet of the Tang dynasty. Along with Li Bai, he is frequently called the greatest of the",
  "The game began development in 2010, carrying over a large portion of the work done on the previous",
  "In 1998 the team moved to a new stadium in the north of the city, where it played its home",
  "The storm formed in the western Pacific Ocean and moved north towards the coast of",
  "After the war he returned to the university, where he taught history and wrote a book about the",
  "The song was released as the second single from the album and reached number one in the",
];

/** Per-model token-sensitivity statistics. */
export interface LyapunovModel {
  model: MainModel;
  sentences: AnalysisResult["sentences"];
  corpus: AnalysisResult["corpus"];
  /** Pooled over the corpus's source tokens: ρ of the heat-map scalar with position, distance to the query and log train frequency. */
  pooled: { position: number; distance: number; logFrequency: number; tokens: number };
  /** The heat-map sentences (the first `spec.lyapunov.sentences` entries of `sentences`). */
  heat: number;
}

/** Result of experiment 3. */
export interface LyapunovExperiment {
  models: LyapunovModel[];
  sequences: number;
  maxTokens: number;
}

function testSequences(tokens: ArrayLike<number>, n: number, len: number): number[][] {
  const out: number[][] = [];
  const stride = Math.floor((tokens.length - len) / n);
  for (let i = 0; i < n; i++) out.push(Array.from({ length: len }, (_, k) => tokens[i * stride + k]!));
  return out;
}

/** Runs experiment 3 on seed 0's DiffEqFormer (and GPT-2 when the size asks for it). */
export async function runLyapunov(ctx: StudyContext): Promise<{ result: LyapunovExperiment; figures: Record<string, string> }> {
  const spec = ctx.spec.lyapunov;
  const wiki = await ctx.wiki();
  const counts = new Float64Array(gpt2Tokenizer.vocabSize);
  for (let i = 0; i < wiki.train.tokens.length; i++) counts[wiki.train.tokens[i]!]++;
  const seqs = testSequences(wiki.splits.test!, spec.sequences, spec.maxTokens);
  const models: LyapunovModel[] = [];
  for (const which of (spec.gptSequences > 0 ? ["diffeqformer", "gpt"] : ["diffeqformer"]) as MainModel[]) {
    const run = await mainRun(ctx, which, 0);
    models.push(
      await cached(ctx, `lyapunov-${run.name}`, () => {
        const { model } = loadModelFrom(path.join(ctx.out, "runs", run.name));
        const a = analyzeModel(model as unknown as AnalyzableModel, {
          texts: SENTENCES.slice(0, spec.sentences),
          sequences: which === "gpt" ? seqs.slice(0, spec.gptSequences) : seqs,
          tokenizer: gpt2Tokenizer,
          maxTokens: spec.maxTokens,
        });
        const v: number[] = [],
          pos: number[] = [],
          dist: number[] = [],
          freq: number[] = [];
        for (const s of a.sentences.slice(spec.sentences)) {
          for (let k = 0; k < s.query; k++) {
            if (!Number.isFinite(s.maxExponent[k]!)) continue;
            v.push(s.maxExponent[k]!);
            pos.push(k);
            dist.push(s.query - k);
            freq.push(Math.log(1 + counts[s.ids[k]!]!));
          }
        }
        const corpus = a.corpus;
        return {
          model: which,
          sentences: a.sentences.map((s) => ({ ...s, exponents: undefined })),
          corpus: { ...corpus, byToken: corpus.byToken.slice(0, 40) },
          pooled: { position: spearman(v, pos), distance: spearman(v, dist), logFrequency: spearman(v, freq), tokens: v.length },
          heat: Math.min(spec.sentences, a.sentences.length),
        };
      }),
    );
  }
  const result = { models, sequences: seqs.length, maxTokens: spec.maxTokens };
  return { result, figures: lyapunovFigures(result) };
}

function heatColor(u: number, rgb: readonly number[]): string {
  const c = (i: number) => Math.round(255 + (rgb[i]! - 255) * Math.max(0, Math.min(1, u)));
  return `rgb(${c(0)},${c(1)},${c(2)})`;
}

/** Token heat maps: per sentence, rows for the Lyapunov scalar, attention rollout and gradient × input (each normalised per sentence). */
export function heatMapSvg(sentences: AnalysisResult["sentences"], title: string): string {
  const rowH = 18,
    charW = 6.6,
    left = 120,
    width = 980;
  const maps: { name: string; rgb: number[]; get: (s: AnalysisResult["sentences"][number]) => number[] }[] = [
    { name: "Lyapunov max λ", rgb: [214, 39, 40], get: (s) => s.maxExponent },
    { name: "attention rollout", rgb: [31, 119, 180], get: (s) => s.rollout },
    { name: "|gradient × input|", rgb: [44, 160, 44], get: (s) => s.gradInput.abs },
  ];
  const parts: string[] = [];
  let y = 40;
  for (const s of sentences) {
    for (const m of maps) {
      const vals = m.get(s).slice(0, s.query);
      const lo = Math.min(...vals.filter(Number.isFinite)),
        hi = Math.max(...vals.filter(Number.isFinite));
      parts.push(`<text x="4" y="${y + 13}" font-family="sans-serif" font-size="11">${escapeXml(m.name)}</text>`);
      let x = left;
      s.tokens.forEach((tok, k) => {
        const text = tok.replace(/\n/g, "⏎");
        const w = Math.max(10, text.length * charW + 4);
        if (x + w > width - 4) return;
        const u = k < s.query && hi > lo ? (vals[k]! - lo) / (hi - lo) : 0;
        const fill = k === s.query ? "#dddddd" : heatColor(u, m.rgb);
        parts.push(
          `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 2}" fill="${fill}" stroke="${k === s.query ? "#000000" : "none"}"><title>${escapeXml(`${text}: ${k < s.query ? fx(vals[k], 4) : "query"}`)}</title></rect>`,
          `<text x="${(x + 2).toFixed(1)}" y="${y + 12}" font-family="monospace" font-size="11" xml:space="preserve">${escapeXml(text)}</text>`,
        );
        x += w;
      });
      y += rowH;
    }
    y += 10;
  }
  const legendY = 22;
  const legend = maps
    .map((m, i) => {
      const x = left + i * 270;
      const cells = Array.from(
        { length: 10 },
        (_, j) => `<rect x="${x + 110 + j * 12}" y="${legendY - 10}" width="12" height="10" fill="${heatColor(j / 9, m.rgb)}"/>`,
      ).join("");
      return `<text x="${x}" y="${legendY}" font-family="sans-serif" font-size="10">${escapeXml(m.name)}: low</text>${cells}<text x="${x + 234}" y="${legendY}" font-family="sans-serif" font-size="10">high</text>`;
    })
    .join("");
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 24}" viewBox="0 0 ${width} ${y + 24}" class="heat-map">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="4" y="12" font-family="sans-serif" font-size="12" font-weight="bold">${escapeXml(title)}</text>`,
    legend,
    ...parts,
    `<text x="4" y="${y + 14}" font-family="sans-serif" font-size="10">Each row is scaled to its sentence's min…max; the grey outlined token is the query (the last token, whose prediction is analysed).</text>`,
    "</svg>",
  ].join("\n");
}

function histogram(values: number[], bins: number): { labels: string[]; counts: number[] } {
  const lo = Math.min(...values),
    hi = Math.max(...values);
  const w = (hi - lo) / bins || 1;
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - lo) / w))]!++;
  return { labels: counts.map((_, i) => (lo + (i + 0.5) * w).toPrecision(3)), counts };
}

function lyapunovFigures(r: LyapunovExperiment): Record<string, string> {
  const out: Record<string, string> = {};
  const name = (m: MainModel) => (m === "diffeqformer" ? "DiffEqFormer" : "GPT-2");
  for (const m of r.models) {
    out[`lyapunov-heat-${m.model}`] = heatMapSvg(
      m.sentences.slice(0, m.heat),
      `${name(m.model)} (seed 0): token sensitivity of the last token's prediction`,
    );
    const vals = m.sentences
      .slice(m.heat)
      .flatMap((s) => s.maxExponent.slice(0, s.query))
      .filter(Number.isFinite);
    const h = histogram(vals, 24);
    out[`lyapunov-hist-${m.model}`] = barPlot(h.labels, h.counts, {
      title: `${name(m.model)}: per-token max Lyapunov exponent over ${m.sentences.length - m.heat} test sequences`,
      xLabel: "max exponent of the token's spectrum (bin centre; nats over t ∈ [0, 1])",
      yLabel: "tokens",
    });
  }
  out["lyapunov-distance"] = linePlot(
    r.models.map((m) => ({
      label: name(m.model),
      points: m.corpus.byDistance.map((s, d) => [d, s?.mean ?? NaN] as [number, number]).filter((p) => p[0] >= 1 && Number.isFinite(p[1])),
    })),
    {
      title: "Mean token exponent against distance to the query token",
      xLabel: "distance to the query (tokens)",
      yLabel: "mean max exponent",
    },
  );
  return out;
}

/** Markdown of experiment 3. */
export function lyapunovMarkdown(r: LyapunovExperiment): string {
  const name = (m: MainModel) => (m === "diffeqformer" ? "DiffEqFormer" : "GPT-2");
  const c = (s: { mean: number; std: number; count: number }) => `${fx(s.mean)} ± ${fx(s.std)} (n = ${s.count})`;
  const lines = [
    `Test sequences of ${r.maxTokens} tokens (query = the last token; DiffEqFormer ${r.sequences}, GPT-2 the first ${r.models.find((m) => m.model === "gpt") ? r.models.find((m) => m.model === "gpt")!.sentences.length - r.models.find((m) => m.model === "gpt")!.heat : 0}); statistics over the source tokens.`,
    "",
    "| model | exponent mean ± std | ρ(exponent, position) | ρ(exponent, distance to query) | ρ(exponent, log train frequency) | ρ(Lyapunov, rollout) per sentence | ρ(Lyapunov, grad×input) per sentence | ρ(rollout, grad×input) |",
    "|---|---|---|---|---|---|---|---|",
    ...r.models.map(
      (m) =>
        `| ${name(m.model)} | ${fx(m.corpus.overall.mean, 3)} ± ${fx(m.corpus.overall.std, 3)} | ${fx(m.pooled.position)} | ${fx(m.pooled.distance)} | ${fx(m.pooled.logFrequency)} | ${c(m.corpus.correlation.lyapunovVsRollout)} | ${c(m.corpus.correlation.lyapunovVsGradInput)} | ${c(m.corpus.correlation.rolloutVsGradInput)} |`,
    ),
    "",
    ...r.models.flatMap((m) => [
      `![${name(m.model)} heat maps](figures/lyapunov-heat-${m.model}.svg)`,
      "",
      `![${name(m.model)} exponent histogram](figures/lyapunov-hist-${m.model}.svg)`,
      "",
    ]),
    "![Exponent against distance](figures/lyapunov-distance.svg)",
  ];
  return lines.join("\n");
}
