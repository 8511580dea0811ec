/**
 * Output of an analysis: JSON data, standalone SVG plots and one self-contained HTML report (inline SVG and CSS,
 * no scripts, no external resources) with the per-token heat maps next to the saliency baselines.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AnalysisResult } from "./analyze.js";
import type { SentenceAnalysis, Stat } from "./corpus.js";
import { SPECTRUM_KINDS, type SpectrumKind } from "./spectra.js";
import { barPlot, complexPlanePlot, escapeXml, fmtNum, linePlot, rampColor, seriesColor, type LineSeries } from "./svg.js";

const KIND_TITLE: Record<SpectrumKind, string> = {
  qk: "QK = W_Q^h (W_K^h)ᵀ",
  ov: "OV = W_V^h W_O^h",
  ffn: "FFN = W_fc W_proj",
};

/** Number of colour levels of the heat maps (the reference used a 50-bin histogram). */
export const HEAT_LEVELS = 50;

/** Heat-map colour schemes: white → full colour. */
export const HEAT_COLORS = { lyapunov: [214, 39, 40], rollout: [31, 119, 180], gradInput: [44, 160, 44] } as const;

/** Quantised heat level 0..HEAT_LEVELS−1 of v within [lo, hi]. */
export function heatLevel(v: number, lo: number, hi: number): number {
  if (!Number.isFinite(v) || !(hi > lo)) return 0;
  const u = (v - lo) / (hi - lo);
  return Math.max(0, Math.min(HEAT_LEVELS - 1, Math.floor(u * HEAT_LEVELS)));
}

/** CSS colour of a heat level in a scheme (level 0 is white). */
export function heatColor(level: number, rgb: readonly number[]): string {
  const u = level / (HEAT_LEVELS - 1);
  const c = rgb.map((v) => Math.round(255 + u * (v - 255)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function slug(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "") || "model"
  );
}

/** Visible text of a token: whitespace and control characters shown as escapes. */
export function tokenText(t: string): string {
  // eslint-disable-next-line no-control-regex
  return t
    .replace(/\n/g, "⏎")
    .replace(/\t/g, "⇥")
    .replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** Source tokens drawn in the running-exponent plot of a sentence (those with the largest final max exponent). */
export const RUNNING_TOKENS = 8;

/** The source tokens (query excluded) with the `n` largest final max exponents, in position order. */
export function runningTokens(sent: Pick<SentenceAnalysis, "query" | "maxExponent">, n = RUNNING_TOKENS): number[] {
  return sent.maxExponent
    .slice(0, sent.query)
    .map((v, k) => [v, k] as const)
    .filter(([v]) => Number.isFinite(v))
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, n)
    .map(([, k]) => k)
    .sort((a, b) => a - b);
}

/**
 * How far the running estimate of the drawn tokens still moved over the second half of the integration:
 * max over those tokens of |λ(T) − λ(T')|, T' the first step time ≥ T/2 (up to rounding; for a constant linear field the
 * transient is C/T, so this is about the remaining error). NaN with fewer than two steps.
 */
export function runningChange(sent: Pick<SentenceAnalysis, "query" | "maxExponent" | "running">, n = RUNNING_TOKENS): number {
  const run = sent.running;
  if (!run || run.time.length < 2) return NaN;
  const last = run.time.length - 1;
  const half = run.time.findIndex((t) => t >= (run.time[last] / 2) * (1 - 1e-9));
  const h = half === last ? last - 1 : half;
  return runningTokens(sent, n).reduce((m, k) => Math.max(m, Math.abs(run.maxExponent[last][k] - run.maxExponent[h][k])), 0);
}

/** The named SVG plots of one analysis: file stem → SVG markup. */
export function analysisPlots(r: AnalysisResult, maxSentencePlots = 8): Record<string, string> {
  const out: Record<string, string> = {};
  const s = slug(r.label);
  const pts = r.spectra.points;
  const ts = pts.map((p) => p.t);
  const tMin = Math.min(...ts),
    tMax = Math.max(...ts);
  for (const k of SPECTRUM_KINDS) {
    const stats = r.spectra.stats[k];
    const nHeads = stats.length ? stats[0].radius.length : 0;
    const series: LineSeries[] = Array.from({ length: nHeads }, (_, h) => ({
      label: k === "ffn" ? "FFN" : `head ${h}`,
      points: pts.map((p, i) => [p.t, stats[i].radius[h]] as [number, number]),
    }));
    out[`${s}-${k}-abs`] = linePlot(series, {
      title: `${r.label}: spectral radius of ${KIND_TITLE[k]}`,
      xLabel: r.model.kind === "gpt2" ? "normalised depth t = (layer+1)/L" : "t",
      yLabel: "max |λ|",
      className: `spectra-abs spectra-${k}`,
    });
    const points = pts.flatMap((p) => {
      const specs = k === "ffn" ? [p.ffn] : p[k];
      const color = rampColor(tMax > tMin ? (p.t - tMin) / (tMax - tMin) : 0.5);
      return specs.flatMap((sp, h) =>
        sp.re.map((re, i) => ({
          x: re,
          y: sp.im[i],
          color,
          label: `t=${fmtNum(p.t)}${k === "ffn" ? "" : ` head ${h}`}: ${fmtNum(re)}${sp.im[i] >= 0 ? "+" : "−"}${fmtNum(Math.abs(sp.im[i]))}i`,
        })),
      );
    });
    out[`${s}-${k}-complex`] = complexPlanePlot(points, {
      title: `${r.label}: eigenvalues of ${KIND_TITLE[k]}`,
      xLabel: "Re λ",
      yLabel: "Im λ",
      className: `spectra-complex spectra-${k}`,
      colorbar: { label: "t", min: tMin, max: tMax },
    });
  }
  out[`${s}-spectra-summary`] = linePlot(
    SPECTRUM_KINDS.flatMap((k, i) => [
      {
        label: `${k.toUpperCase()} mean Re λ`,
        color: seriesColor(i),
        points: pts.map((p, j) => [p.t, r.spectra.stats[k][j].meanRe] as [number, number]),
      },
      {
        label: `${k.toUpperCase()} frac Re>0`,
        color: seriesColor(i),
        dashed: true,
        points: pts.map((p, j) => [p.t, r.spectra.stats[k][j].fracPositiveRe] as [number, number]),
      },
    ]),
    { title: `${r.label}: mean Re λ (solid) and fraction Re λ > 0 (dashed)`, xLabel: "t", yLabel: "value", className: "spectra-summary" },
  );
  r.sentences.slice(0, maxSentencePlots).forEach((sent, i) => {
    const j = sent.query;
    out[`${s}-lyapunov-${i}`] = barPlot(
      sent.tokens.slice(0, j).map((t) => (t.trim() === "" ? "␣".repeat(Math.max(1, t.length)) : tokenText(t))),
      sent.maxExponent.slice(0, j),
      {
        title: `${r.label}, sentence ${i + 1}: max Lyapunov exponent`,
        xLabel: `source token (query '${tokenText(sent.tokens[j])}' not shown)`,
        yLabel: "max λ",
        className: "lyapunov-bars",
        colors: sent.maxExponent.slice(0, j).map(() => "#D62728"),
      },
    );
  });
  r.sentences.slice(0, maxSentencePlots).forEach((sent, i) => {
    const run = sent.running;
    if (!run || run.time.length === 0) return;
    const shown = runningTokens(sent, RUNNING_TOKENS);
    out[`${s}-lyapunov-running-${i}`] = linePlot(
      shown.map((k, n) => ({
        label: `${k}: ${tokenText(sent.tokens[k]).trim() || "␣"}`,
        color: seriesColor(n),
        points: run.time.map((t, st) => [t, run.maxExponent[st][k]] as [number, number]),
      })),
      {
        title: `${r.label}, sentence ${i + 1}: running max exponent over T`,
        xLabel: `integration time T (${r.model.kind === "gpt2" ? "layers, dt = 1" : "t, dt = 1/steps"})`,
        yLabel: "max λ(T)  [1/time]",
        className: "lyapunov-running",
      },
    );
  });
  const c = r.corpus;
  if (c.byDistance.length > 1) {
    out[`${s}-corpus-distance`] = linePlot(
      [
        {
          label: "mean max λ",
          points: c.byDistance.map((st, d) => [d, st.mean] as [number, number]).filter((p) => p[0] >= 1 && c.byDistance[p[0]].count > 0),
        },
        {
          label: "mean + std",
          dashed: true,
          color: "#999999",
          points: c.byDistance
            .map((st, d) => [d, st.mean + st.std] as [number, number])
            .filter((p) => p[0] >= 1 && c.byDistance[p[0]].count > 0),
        },
      ],
      {
        title: `${r.label}: max exponent against distance to the query (corpus)`,
        xLabel: "query position − token position",
        yLabel: "max λ",
        className: "corpus-distance",
      },
    );
  }
  return out;
}

/** Comparison plots across several analyses (max |λ| over t per family, one line per model). */
export function comparisonPlots(results: readonly AnalysisResult[]): Record<string, string> {
  if (results.length < 2) return {};
  const out: Record<string, string> = {};
  for (const k of SPECTRUM_KINDS) {
    out[`compare-${k}-maxabs`] = linePlot(
      results.map((r, i) => ({
        label: r.label,
        color: seriesColor(i),
        dashed: r.model.kind === "gpt2",
        points: r.spectra.points.map((p, j) => [p.t, r.spectra.stats[k][j].maxAbs] as [number, number]),
      })),
      {
        title: `max |λ| of ${KIND_TITLE[k]} over depth`,
        xLabel: "t (GPT-2: (layer+1)/L)",
        yLabel: "max |λ|",
        className: `compare compare-${k}`,
      },
    );
  }
  return out;
}

function heatSpans(
  tokens: readonly string[],
  values: readonly number[],
  query: number,
  rgb: readonly number[],
  what: string,
  kind: string,
): string {
  const src = values.slice(0, query).filter(Number.isFinite);
  const lo = src.length ? Math.min(...src) : 0,
    hi = src.length ? Math.max(...src) : 0;
  const spans = tokens.map((t, k) => {
    const text = escapeXml(tokenText(t));
    if (k === query) return `<span class="tok query" title="${escapeXml(`query token (not scored): ${tokenText(t)}`)}">${text}</span>`;
    if (k > query) return `<span class="tok after">${text}</span>`;
    const lvl = heatLevel(values[k], lo, hi);
    return `<span class="tok heat" data-kind="${kind}" data-level="${lvl}" data-value="${escapeXml(String(values[k]))}" style="background-color:${heatColor(lvl, rgb)}" title="${escapeXml(`${what} = ${fmtNum(values[k])}`)}">${text}</span>`;
  });
  const legend = `<div class="legend"><span class="lg" style="background:${heatColor(0, rgb)}">${escapeXml(fmtNum(lo))}</span><span class="lg" style="background:linear-gradient(to right, ${heatColor(0, rgb)}, ${heatColor(HEAT_LEVELS - 1, rgb)})">&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;</span><span class="lg" style="background:${heatColor(HEAT_LEVELS - 1, rgb)};color:#fff">${escapeXml(fmtNum(hi))}</span></div>`;
  return `<div class="heatmap heatmap-${kind}"><div class="hm-title">${escapeXml(what)}</div><div class="tokens">${spans.join("")}</div>${legend}</div>`;
}

function sentenceBlock(sent: SentenceAnalysis, i: number, plot: string | undefined, running: string | undefined): string {
  const j = sent.query;
  const text = sent.tokens.map(tokenText).join("");
  const maps = [
    heatSpans(sent.tokens, sent.maxExponent, j, HEAT_COLORS.lyapunov, "Lyapunov: max exponent", "lyapunov"),
    heatSpans(sent.tokens, sent.rollout, j, HEAT_COLORS.rollout, "attention rollout", "rollout"),
    heatSpans(sent.tokens, sent.gradInput.abs, j, HEAT_COLORS.gradInput, "|gradient × input|", "grad-input"),
  ];
  return `<section class="sentence" id="sentence-${i}"><h4>Sentence ${i + 1}</h4><p class="src">${escapeXml(text)}</p>
<div class="maps">${maps.join("\n")}</div>${plot || running ? `<div class="plotrow plots">${plot ?? ""}${running ?? ""}</div>` : ""}${running ? convergenceNote(sent) : ""}</section>`;
}

function convergenceNote(sent: SentenceAnalysis): string {
  const d = runningChange(sent);
  const shown = runningTokens(sent).length;
  return `<p class="note convergence">Running estimate: the max exponent of the ${shown} source token${shown === 1 ? "" : "s"} with the largest final value, had the integration stopped at T. Largest change over the second half of T: <span class="running-change">${Number.isFinite(d) ? escapeXml(fmtNum(d)) : "– (one step)"}</span> (a flat right end means the estimate has settled; for a constant linear field the remaining error decays as 1/T).</p>`;
}

function statCell(s: Stat): string {
  return s.count ? `${escapeXml(fmtNum(s.mean))} ± ${escapeXml(fmtNum(s.std))} <small>(n=${s.count})</small>` : "–";
}

function trendTable(r: AnalysisResult): string {
  const rows = SPECTRUM_KINDS.map((k) => {
    const tr = r.spectra.trend[k];
    const first = r.spectra.stats[k][0],
      last = r.spectra.stats[k][r.spectra.stats[k].length - 1];
    const cell = (a: number | undefined, b: number | undefined, sl: number) =>
      `<td>${escapeXml(fmtNum(a ?? NaN))} → ${escapeXml(fmtNum(b ?? NaN))}</td><td>${escapeXml(fmtNum(sl))}</td>`;
    return `<tr><th>${escapeXml(KIND_TITLE[k])}</th>${cell(first?.maxAbs, last?.maxAbs, tr.maxAbs)}${cell(first?.meanAbs, last?.meanAbs, tr.meanAbs)}${cell(first?.meanRe, last?.meanRe, tr.meanRe)}${cell(first?.fracPositiveRe, last?.fracPositiveRe, tr.fracPositiveRe)}</tr>`;
  });
  return `<table class="trends"><thead><tr><th rowspan="2">matrix</th><th colspan="2">max |λ|</th><th colspan="2">mean |λ|</th><th colspan="2">mean Re λ</th><th colspan="2">fraction Re λ &gt; 0</th></tr>
<tr><th>first → last t</th><th>slope</th><th>first → last t</th><th>slope</th><th>first → last t</th><th>slope</th><th>first → last t</th><th>slope</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function corpusSection(r: AnalysisResult, plots: Record<string, string>): string {
  const c = r.corpus;
  const s = slug(r.label);
  const top = c.byToken.filter((t) => t.count > 0).slice(0, 15);
  const tokRows = top
    .map((t) => `<tr><td class="mono">${escapeXml(tokenText(t.token))}</td><td>${t.id}</td><td>${statCell(t)}</td></tr>`)
    .join("");
  const posRows = c.byPosition.map((st, k) => `<tr><td>${k}</td><td>${statCell(st)}</td></tr>`).join("");
  const cor = c.correlation;
  return `<h3>Corpus statistics (${c.sentences} sequence${c.sentences === 1 ? "" : "s"}; query tokens excluded)</h3>
<p>Overall max exponent: ${statCell(c.overall)}. Spearman rank correlation per sequence (mean ± std over sequences):
Lyapunov vs rollout ${statCell(cor.lyapunovVsRollout)}; Lyapunov vs |gradient × input| ${statCell(cor.lyapunovVsGradInput)};
rollout vs |gradient × input| ${statCell(cor.rolloutVsGradInput)}.</p>
<div class="tables"><table class="by-token"><caption>Tokens with the highest mean max exponent</caption><thead><tr><th>token</th><th>id</th><th>mean ± std (n)</th></tr></thead><tbody>${tokRows}</tbody></table>
<table class="by-position"><caption>By position</caption><thead><tr><th>position</th><th>mean ± std (n)</th></tr></thead><tbody>${posRows}</tbody></table></div>
${plots[`${s}-corpus-distance`] ?? ""}`;
}

const CSS = `
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1280px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 36px; } h3 { margin-top: 24px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.plot { border: 1px solid #ddd; background: #fff; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; } td, th { border: 1px solid #ddd; padding: 3px 7px; text-align: left; }
.tables { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }
.maps { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 12px; }
.heatmap { border: 1px solid #ddd; padding: 6px; border-radius: 4px; }
.hm-title { font-size: 12px; font-weight: bold; margin-bottom: 4px; }
.tokens { font-family: Menlo, Consolas, monospace; font-size: 13px; line-height: 1.9; white-space: pre-wrap; word-break: break-word; }
.tok { padding: 1px 0; border-radius: 2px; }
.tok.query { outline: 2px solid #333; background: #fff; }
.tok.after { color: #aaa; }
.legend { margin-top: 4px; font-size: 11px; } .lg { display: inline-block; padding: 0 4px; border: 1px solid #ddd; }
.src { color: #555; font-size: 13px; }
.mono { font-family: Menlo, Consolas, monospace; white-space: pre; }
.note { color: #555; font-size: 13px; }
`;

/** The self-contained HTML report for one or more analyses (e.g. a GPT-2 baseline and a DiffEqFormer). */
export function renderReport(results: readonly AnalysisResult[], opts: { title?: string; maxSentences?: number } = {}): string {
  const title = opts.title ?? "qkvflow dynamics analysis";
  const maxS = opts.maxSentences ?? 20;
  const cmp = comparisonPlots(results);
  const parts: string[] = [];
  parts.push(
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escapeXml(title)}</title><style>${CSS}</style></head><body>`,
  );
  parts.push(`<h1>${escapeXml(title)}</h1>`);
  parts.push(
    `<table class="models"><thead><tr><th>model</th><th>kind</th><th>block</th><th>E</th><th>heads</th><th>steps</th><th>dt</th><th>sequences</th></tr></thead><tbody>${results
      .map(
        (r) =>
          `<tr><td>${escapeXml(r.label)}</td><td>${escapeXml(r.model.kind)}</td><td>${escapeXml(r.model.arch)}</td><td>${r.model.nEmbd}</td><td>${r.model.nHead}</td><td>${r.model.steps.length}</td><td>${escapeXml(fmtNum(r.model.steps[0]?.dt ?? NaN))}</td><td>${r.sentences.length}</td></tr>`,
      )
      .join("")}</tbody></table>`,
  );
  parts.push(`<p class="note">Time grid: a DiffEqFormer with n Euler steps uses dt = 1/n and evaluates step i at t<sub>i</sub> = (i+1)/n on the
state before the step, exactly as its forward pass; spectra and Lyapunov exponents use the same points. GPT-2 layer i is drawn at t = (i+1)/L (dt = 1).
Eigenvalues are complex; QK/OV have rank ≤ d<sub>head</sub>, so only their d<sub>head</sub> largest-modulus eigenvalues are shown (the rest are 0).</p>`);
  if (Object.keys(cmp).length) parts.push(`<h2>Comparison</h2><div class="plots">${Object.values(cmp).join("\n")}</div>`);
  for (const r of results) {
    const plots = analysisPlots(r);
    const s = slug(r.label);
    parts.push(`<h2 id="${escapeXml(s)}">${escapeXml(r.label)}</h2>`);
    for (const n of r.notes ?? []) parts.push(`<p class="note">Note: ${escapeXml(n)}.</p>`);
    parts.push(`<h3>Spectra over depth</h3>${trendTable(r)}`);
    parts.push(
      `<div class="plots">${SPECTRUM_KINDS.map((k) => plots[`${s}-${k}-abs`] + plots[`${s}-${k}-complex`]).join("\n")}${plots[`${s}-spectra-summary`]}</div>`,
    );
    if (r.spectra.ffnSubset)
      parts.push(`<p class="note">FFN product over ${r.spectra.ffnSubset.length} hidden units drawn from all ${4 * r.model.nEmbd}.</p>`);
    parts.push(`<h3>Token sensitivity</h3><p class="note">Colour = max over each source token's finite-time Lyapunov spectrum for the query (outlined, last token);
attention rollout mixes Â = (1−α)I + αĀ per step (α = dt for Euler steps, 1/2 for GPT-2); gradient × input is |Σ<sub>e</sub> x·∂ log p(top prediction)/∂x| at the embedding.
Each map is scaled from its own minimum (white) to maximum (full colour) over the source tokens.</p>`);
    r.sentences
      .slice(0, maxS)
      .forEach((sent, i) => parts.push(sentenceBlock(sent, i, plots[`${s}-lyapunov-${i}`], plots[`${s}-lyapunov-running-${i}`])));
    if (r.sentences.length > maxS)
      parts.push(`<p class="note">${r.sentences.length - maxS} more sequences are in the JSON data and the statistics below.</p>`);
    parts.push(corpusSection(r, plots));
  }
  parts.push("</body></html>");
  return parts.join("\n");
}

function writeAtomic(path: string, data: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** Writes analysis.json, every SVG plot and report.html into `dir` (created if needed); returns the file names. */
export function writeAnalysis(dir: string, results: readonly AnalysisResult[], opts: { title?: string } = {}): string[] {
  if (results.length === 0) throw new Error("writeAnalysis: no analyses given; expected at least one AnalysisResult");
  const labels = results.map((r) => slug(r.label));
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup) throw new Error(`writeAnalysis: two analyses have the label '${dup}'; expected distinct labels`);
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  writeAtomic(join(dir, "analysis.json"), JSON.stringify({ format: "qkvflow-analysis/1", analyses: results }, null, 1));
  files.push("analysis.json");
  const plots: Record<string, string> = { ...comparisonPlots(results) };
  for (const r of results) Object.assign(plots, analysisPlots(r));
  for (const [name, svg] of Object.entries(plots)) {
    writeAtomic(join(dir, `${name}.svg`), `<?xml version="1.0" encoding="UTF-8"?>\n${svg}\n`);
    files.push(`${name}.svg`);
  }
  writeAtomic(join(dir, "report.html"), renderReport(results, opts));
  files.push("report.html");
  return files;
}
