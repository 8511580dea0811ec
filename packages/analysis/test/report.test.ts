import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { random } from "@qkvflow/autograd";
import { createModel } from "@qkvflow/models";
import {
  HEAT_COLORS,
  HEAT_LEVELS,
  analyzeModel,
  escapeXml,
  heatColor,
  heatLevel,
  linePlot,
  niceTicks,
  renderReport,
  writeAnalysis,
} from "../src/index.js";
import { charCodec } from "./helpers.js";

const codec = charCodec(` abcdefghijklmnopqrstuvwxyz<>&"'/.`);

function tinyAnalysis(label: string, kind: "gpt2" | "diffeqformer") {
  const cfg =
    kind === "gpt2"
      ? { kind, vocabSize: codec.vocabSize, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 2, initStd: 0.3 }
      : { kind, vocabSize: codec.vocabSize, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 3, timeEmbedDim: 3, sinusoidalDim: 2, initStd: 0.3 };
  return analyzeModel(createModel(cfg, random.key(3)), {
    label,
    tokenizer: codec,
    texts: [`<script>"a"&'b'`, "the cat sat."],
    maxTokens: 12,
  });
}

test("escapeXml, heat levels and colours, ticks", () => {
  assert.equal(escapeXml(`<a href="x">&'</a>`), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  assert.equal(heatLevel(0, 0, 1), 0);
  assert.equal(heatLevel(1, 0, 1), HEAT_LEVELS - 1);
  assert.equal(heatLevel(0.5, 0, 1), 25);
  assert.equal(heatLevel(3, 3, 3), 0);
  assert.equal(heatColor(0, HEAT_COLORS.lyapunov), "rgb(255, 255, 255)");
  assert.equal(heatColor(HEAT_LEVELS - 1, HEAT_COLORS.lyapunov), "rgb(214, 39, 40)");
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(-0.013, 0.021, 4), [-0.01, 0, 0.01, 0.02]);
  const svg = linePlot(
    [
      {
        label: `a<b & "c"`,
        points: [
          [0, 1],
          [1, 2],
        ],
      },
    ],
    { title: "T<1>", xLabel: "x", yLabel: "y" },
  );
  assert.ok(svg.includes("a&lt;b &amp; &quot;c&quot;") && svg.includes("T&lt;1&gt;"));
  assert.ok(!svg.includes("a<b"));
});

test("renderReport: plots, three heat maps per sentence with quantised colours, escaped token text", () => {
  const g = tinyAnalysis("GPT-2 tiny", "gpt2");
  const o = tinyAnalysis("ODE <tiny>", "diffeqformer");
  const html = renderReport([g, o], { title: `Report & "quotes"` });
  assert.ok(html.startsWith("<!DOCTYPE html>"));
  assert.ok(!/<script/i.test(html), "token text must be escaped");
  assert.ok(html.includes("&lt;script&gt;"));
  assert.ok(html.includes("<title>Report &amp; &quot;quotes&quot;</title>"));
  assert.ok(html.includes("ODE &lt;tiny&gt;"));
  // per model: 3 spectra families × (|λ| plot + complex plane) + summary + 2 sentence bar charts + 2 running-exponent plots
  // + distance plot; plus 3 comparisons
  assert.equal((html.match(/<svg /g) ?? []).length, 2 * (3 * 2 + 1 + 2 + 2 + 1) + 3);
  for (const r of [g, o]) {
    for (const s of r.sentences) {
      const j = s.query;
      const lo = Math.min(...s.maxExponent.slice(0, j)),
        hi = Math.max(...s.maxExponent.slice(0, j));
      s.maxExponent.slice(0, j).forEach((v) => {
        const lvl = heatLevel(v, lo, hi);
        assert.ok(
          html.includes(
            `data-kind="lyapunov" data-level="${lvl}" data-value="${v}" style="background-color:${heatColor(lvl, HEAT_COLORS.lyapunov)}"`,
          ),
        );
      });
    }
  }
  const spans = html.match(/class="tok heat" data-kind="(lyapunov|rollout|grad-input)"/g) ?? [];
  const sources = [g, o].reduce((n, r) => n + r.sentences.reduce((m, s) => m + s.query, 0), 0);
  assert.equal(spans.length, 3 * sources);
  assert.equal((html.match(/class="tok query"/g) ?? []).length, 3 * 4);
});

test("writeAnalysis writes JSON, SVG files and the HTML report; labels must be distinct", () => {
  const dir = mkdtempSync(join(tmpdir(), "qkvflow-analysis-"));
  try {
    const g = tinyAnalysis("gpt", "gpt2");
    const files = writeAnalysis(dir, [g]);
    assert.deepEqual(readdirSync(dir).sort(), [...files].sort());
    assert.ok(files.includes("report.html") && files.includes("analysis.json") && files.includes("gpt-qk-complex.svg"));
    const json = JSON.parse(readFileSync(join(dir, "analysis.json"), "utf8"));
    assert.equal(json.format, "qkvflow-analysis/1");
    assert.deepEqual(json.analyses[0].sentences[1].maxExponent, g.sentences[1].maxExponent);
    assert.deepEqual(json.analyses[0].spectra.points[0].qk[0].re, g.spectra.points[0].qk[0].re);
    const svg = readFileSync(join(dir, "gpt-lyapunov-0.svg"), "utf8");
    assert.ok(svg.startsWith("<?xml") && svg.includes('<svg xmlns="http://www.w3.org/2000/svg"'));
    assert.throws(() => writeAnalysis(dir, [g, g]), /two analyses have the label 'gpt'/);
    assert.throws(() => writeAnalysis(dir, []), /no analyses given/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("analyzeModel notes skipped and truncated inputs", () => {
  const m = createModel({ kind: "gpt2", vocabSize: codec.vocabSize, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 1 }, random.key(5));
  const r = analyzeModel(m, { sequences: [[1], [1, 2, 3, 4, 5]], maxTokens: 3 });
  assert.deepEqual(
    r.sentences.map((s) => s.ids),
    [[1, 2, 3]],
  );
  assert.equal(r.notes.length, 2);
  assert.match(r.notes.join("; "), /1 input\(s\) with fewer than 2 tokens were skipped; inputs longer than 3 tokens were cut/);
  assert.match(renderReport([r]), /Note: 1 input\(s\) with fewer than 2 tokens were skipped\./);
  assert.throws(() => analyzeModel(m, { texts: ["abc"] }), /analyzeModel: texts were given without a tokenizer/);
  assert.throws(() => analyzeModel(m, { sequences: [[1, 2]], maxTokens: 17 }), /maxTokens = 17; expected an integer in 2\.\.16/);
});
