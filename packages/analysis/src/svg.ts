/**
 * Hand-written SVG plots (no dependencies): line plots, scatter plots in the complex plane and bar charts.
 * Every string that reaches the markup goes through `escapeXml`.
 */

/** Escapes text for XML/HTML content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** A categorical palette (colour-blind friendly, Okabe–Ito plus extras). */
export const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000", "#8C564B", "#7F7F7F"];

/** Colour of series i. */
export function seriesColor(i: number): string {
  return PALETTE[i % PALETTE.length];
}

/** A sequential colour for u in [0, 1] (dark blue → teal → yellow). */
export function rampColor(u: number): string {
  const stops: [number, number, number][] = [
    [68, 1, 84],
    [59, 82, 139],
    [33, 145, 140],
    [94, 201, 98],
    [253, 231, 37],
  ];
  const x = Math.min(1, Math.max(0, Number.isFinite(u) ? u : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + f * (stops[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** Short number formatting for tick labels. */
export function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return String(Number(v.toPrecision(3)));
}

/** "Nice" tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (lo === hi) return [lo];
  const span = hi - lo;
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const out: number[] = [];
  for (let k = Math.ceil(lo / step); k * step <= hi + step * 1e-9; k++) out.push(k === 0 ? 0 : parseFloat((k * step).toPrecision(12)));
  return out;
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

function extent(vals: number[], pad = 0.05): [number, number] {
  const f = vals.filter(Number.isFinite);
  if (f.length === 0) return [0, 1];
  let lo = Math.min(...f),
    hi = Math.max(...f);
  if (lo === hi) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

const sx = (f: Frame, x: number) => f.left + ((x - f.x0) / (f.x1 - f.x0)) * (f.width - f.left - f.right);
const sy = (f: Frame, y: number) => f.height - f.bottom - ((y - f.y0) / (f.y1 - f.y0)) * (f.height - f.top - f.bottom);
const r2 = (v: number) => (Math.round(v * 100) / 100).toString();

function axes(f: Frame, title: string, xLabel: string, yLabel: string, cls: string, xTicks = true): string[] {
  const out: string[] = [];
  const w = f.width,
    h = f.height;
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="plot ${escapeXml(cls)}" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${escapeXml(title)}">`,
  );
  out.push(`<title>${escapeXml(title)}</title>`);
  out.push(`<rect x="0" y="0" width="${w}" height="${h}" fill="#ffffff"/>`);
  out.push(
    `<text x="${w / 2}" y="16" text-anchor="middle" font-family="sans-serif" font-size="13" font-weight="bold">${escapeXml(title)}</text>`,
  );
  const px0 = f.left,
    px1 = w - f.right,
    py0 = h - f.bottom,
    py1 = f.top;
  for (const t of xTicks ? niceTicks(f.x0, f.x1) : []) {
    const x = sx(f, t);
    out.push(`<line x1="${r2(x)}" y1="${py0}" x2="${r2(x)}" y2="${py1}" stroke="#eeeeee"/>`);
    out.push(
      `<text x="${r2(x)}" y="${py0 + 14}" text-anchor="middle" font-family="sans-serif" font-size="10">${escapeXml(fmtNum(t))}</text>`,
    );
  }
  for (const t of niceTicks(f.y0, f.y1)) {
    const y = sy(f, t);
    out.push(`<line x1="${px0}" y1="${r2(y)}" x2="${px1}" y2="${r2(y)}" stroke="#eeeeee"/>`);
    out.push(
      `<text x="${px0 - 4}" y="${r2(y + 3)}" text-anchor="end" font-family="sans-serif" font-size="10">${escapeXml(fmtNum(t))}</text>`,
    );
  }
  out.push(`<rect x="${px0}" y="${py1}" width="${px1 - px0}" height="${py0 - py1}" fill="none" stroke="#444444"/>`);
  out.push(
    `<text x="${(px0 + px1) / 2}" y="${h - 4}" text-anchor="middle" font-family="sans-serif" font-size="11">${escapeXml(xLabel)}</text>`,
  );
  out.push(
    `<text x="12" y="${(py0 + py1) / 2}" text-anchor="middle" font-family="sans-serif" font-size="11" transform="rotate(-90 12 ${(py0 + py1) / 2})">${escapeXml(yLabel)}</text>`,
  );
  return out;
}

function legend(f: Frame, items: { label: string; color: string; dashed?: boolean }[]): string[] {
  const out: string[] = [];
  const x = f.width - f.right + 8;
  items.forEach((it, i) => {
    const y = f.top + 10 + i * 14;
    out.push(
      `<line x1="${x}" y1="${y - 4}" x2="${x + 16}" y2="${y - 4}" stroke="${it.color}" stroke-width="2"${it.dashed ? ' stroke-dasharray="4 2"' : ""}/>`,
    );
    out.push(`<text x="${x + 20}" y="${y}" font-family="sans-serif" font-size="10">${escapeXml(it.label)}</text>`);
  });
  return out;
}

/** One line of a line plot. */
export interface LineSeries {
  label: string;
  points: [number, number][];
  color?: string;
  dashed?: boolean;
}

/** Common plot options. */
export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Extra CSS class on the <svg> element. */
  className?: string;
}

/** A line plot with markers and a legend on the right. */
export function linePlot(series: readonly LineSeries[], o: PlotOptions): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const [x0, x1] = extent(xs, 0.03);
  const [y0, y1] = extent(ys);
  const longest = series.slice(0, 16).reduce((m, s) => Math.max(m, s.label.length), 0);
  const right = Math.min(240, Math.max(60, 34 + 6 * longest));
  const f: Frame = { width: (o.width ?? 420) + right, height: o.height ?? 300, left: 52, right, top: 26, bottom: 36, x0, x1, y0, y1 };
  const out = axes(f, o.title, o.xLabel, o.yLabel, o.className ?? "line-plot");
  series.forEach((s, i) => {
    const c = s.color ?? seriesColor(i);
    const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
    if (pts.length > 1) {
      const d = pts.map((p, k) => `${k ? "L" : "M"}${r2(sx(f, p[0]))},${r2(sy(f, p[1]))}`).join(" ");
      out.push(
        `<path class="series" d="${d}" fill="none" stroke="${c}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5 3"' : ""}><title>${escapeXml(s.label)}</title></path>`,
      );
    }
    for (const p of pts) {
      out.push(
        `<circle class="marker" cx="${r2(sx(f, p[0]))}" cy="${r2(sy(f, p[1]))}" r="2.6" fill="${c}"><title>${escapeXml(`${s.label}: (${fmtNum(p[0])}, ${fmtNum(p[1])})`)}</title></circle>`,
      );
    }
  });
  out.push(
    ...legend(
      f,
      series.slice(0, 16).map((s, i) => ({ label: s.label, color: s.color ?? seriesColor(i), dashed: s.dashed })),
    ),
  );
  out.push("</svg>");
  return out.join("\n");
}

/** One point of a scatter plot. */
export interface ScatterPoint {
  x: number;
  y: number;
  color: string;
  label?: string;
}

/**
 * Eigenvalues in the complex plane: equal axis scales, the axes through 0, the unit circle (when it is in
 * range) and a colour bar explaining the colours (e.g. t).
 */
export function complexPlanePlot(
  points: readonly ScatterPoint[],
  o: PlotOptions & { colorbar?: { label: string; min: number; max: number } },
): string {
  const size = o.width ?? 360;
  const m = Math.max(1e-12, ...points.map((p) => Math.max(Math.abs(p.x), Math.abs(p.y))).filter(Number.isFinite)) * 1.08;
  const f: Frame = { width: size + 70, height: o.height ?? size, left: 52, right: 70, top: 26, bottom: 36, x0: -m, x1: m, y0: -m, y1: m };
  // equal scales: the plot area is square
  const area = Math.min(f.width - f.left - f.right, f.height - f.top - f.bottom);
  f.width = area + f.left + f.right;
  f.height = area + f.top + f.bottom;
  const out = axes(f, o.title, o.xLabel, o.yLabel, o.className ?? "complex-plot");
  out.push(
    `<line x1="${r2(sx(f, -m))}" y1="${r2(sy(f, 0))}" x2="${r2(sx(f, m))}" y2="${r2(sy(f, 0))}" stroke="#999999" stroke-width="0.8"/>`,
  );
  out.push(
    `<line x1="${r2(sx(f, 0))}" y1="${r2(sy(f, -m))}" x2="${r2(sx(f, 0))}" y2="${r2(sy(f, m))}" stroke="#999999" stroke-width="0.8"/>`,
  );
  if (m > 1) {
    const rpx = sx(f, 1) - sx(f, 0);
    out.push(
      `<circle cx="${r2(sx(f, 0))}" cy="${r2(sy(f, 0))}" r="${r2(rpx)}" fill="none" stroke="#bbbbbb" stroke-dasharray="3 3"><title>unit circle</title></circle>`,
    );
  }
  for (const p of points) {
    if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) continue;
    const t = p.label ? `<title>${escapeXml(p.label)}</title>` : "";
    out.push(
      `<circle class="eig" cx="${r2(sx(f, p.x))}" cy="${r2(sy(f, p.y))}" r="2.4" fill="${p.color}" fill-opacity="0.8">${t}</circle>`,
    );
  }
  if (o.colorbar) {
    const cb = o.colorbar;
    const x = f.width - f.right + 14,
      y0 = f.top + 8,
      hgt = area - 16,
      n = 24;
    for (let i = 0; i < n; i++) {
      out.push(
        `<rect x="${x}" y="${r2(y0 + ((n - 1 - i) * hgt) / n)}" width="12" height="${r2(hgt / n + 0.5)}" fill="${rampColor(i / (n - 1))}"/>`,
      );
    }
    out.push(`<text x="${x + 16}" y="${y0 + 8}" font-family="sans-serif" font-size="10">${escapeXml(fmtNum(cb.max))}</text>`);
    out.push(`<text x="${x + 16}" y="${y0 + hgt}" font-family="sans-serif" font-size="10">${escapeXml(fmtNum(cb.min))}</text>`);
    out.push(`<text x="${x + 6}" y="${y0 - 2}" font-family="sans-serif" font-size="10">${escapeXml(cb.label)}</text>`);
  }
  out.push("</svg>");
  return out.join("\n");
}

/** A bar chart with one labelled bar per value (labels rotated under the axis). */
export function barPlot(labels: readonly string[], values: readonly number[], o: PlotOptions & { colors?: readonly string[] }): string {
  if (labels.length !== values.length)
    throw new Error(`barPlot: ${labels.length} labels but ${values.length} values; expected one label per value`);
  const n = values.length;
  const [lo, hi] = extent([0, ...values]);
  const width = o.width ?? Math.max(460, 70 + n * 22);
  const f: Frame = { width, height: o.height ?? 260, left: 52, right: 16, top: 26, bottom: 70, x0: 0, x1: Math.max(1, n), y0: lo, y1: hi };
  const out = axes(f, o.title, "", o.yLabel, o.className ?? "bar-plot", false);
  const bw = (f.width - f.left - f.right) / Math.max(1, n);
  const yz = sy(f, 0);
  values.forEach((v, i) => {
    const x = f.left + i * bw + bw * 0.12;
    const y = sy(f, Math.max(0, v));
    const h = Math.abs(sy(f, v) - yz);
    const c = o.colors?.[i] ?? "#D55E00";
    out.push(
      `<rect class="bar" x="${r2(x)}" y="${r2(Number.isFinite(v) ? y : yz)}" width="${r2(bw * 0.76)}" height="${r2(Number.isFinite(h) ? Math.max(h, 0.5) : 0)}" fill="${c}"><title>${escapeXml(`${labels[i]}: ${fmtNum(v)}`)}</title></rect>`,
    );
    const lx = f.left + (i + 0.5) * bw,
      ly = f.height - f.bottom + 10;
    out.push(
      `<text x="${r2(lx)}" y="${ly}" text-anchor="end" font-family="monospace" font-size="10" transform="rotate(-55 ${r2(lx)} ${ly})">${escapeXml(labels[i])}</text>`,
    );
  });
  out.push(`<line x1="${f.left}" y1="${r2(yz)}" x2="${f.width - f.right}" y2="${r2(yz)}" stroke="#444444"/>`);
  out.push(
    `<text x="${f.width / 2}" y="${f.height - 4}" text-anchor="middle" font-family="sans-serif" font-size="11">${escapeXml(o.xLabel)}</text>`,
  );
  out.push("</svg>");
  return out.join("\n");
}
