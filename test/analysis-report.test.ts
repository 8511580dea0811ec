/**
 * Browser check of the analysis report: trains micro GPT-2 and DiffEqFormer models for a few steps, writes the
 * report and opens it in headless Chromium (playwright-core driving the system browser at /usr/bin/chromium),
 * checking that the plots and the per-token heat maps are actually rendered.
 *
 * Without /usr/bin/chromium (or playwright-core) the test is skipped, unless QKVFLOW_REQUIRE_BROWSER=1, where it
 * fails. Debian/Ubuntu CI: `apt-get install -y chromium`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { random } from "@qkvflow/autograd";
import { createModel, preset } from "@qkvflow/models";
import { HEAT_COLORS, HEAT_LEVELS, analyzeModel, heatColor, runningTokens, splitSentences, writeAnalysis } from "@qkvflow/analysis";
import { charCodec, trainTiny } from "../packages/analysis/test/helpers.js";

const CHROMIUM = "/usr/bin/chromium";
const required = process.env.QKVFLOW_REQUIRE_BROWSER === "1";
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const sharedData = process.env.QKVFLOW_SHARED_DATA ?? join(root, "..", "shared", "data");

const FALLBACK_TEXT = `The European lobster is a species of clawed lobster from the eastern Atlantic Ocean. It is closely related to
the American lobster. It may grow to a length of sixty centimetres and a mass of six kilograms. In life, the lobsters are
blue, only becoming red on cooking. Mating occurs in the summer, producing eggs which are carried by the females.`;

function corpusText(): string {
  const f = join(sharedData, "wikitext-2", "valid.txt");
  if (!existsSync(f)) return FALLBACK_TEXT.repeat(8);
  return readFileSync(f, "utf8").slice(0, 20000);
}

type Playwright = typeof import("playwright-core");

async function loadPlaywright(): Promise<Playwright | string> {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is not installed (Debian: apt-get install -y chromium)`;
  try {
    return await import("playwright-core");
  } catch (err) {
    return `playwright-core is not installed (npm i -D playwright-core): ${(err as Error).message}`;
  }
}

const pw = await loadPlaywright();
const skip = typeof pw === "string" ? (required ? false : `skipped: ${pw}`) : false;

test("analysis report renders its plots and heat maps in headless Chromium", { skip, timeout: 240_000 }, async () => {
  if (typeof pw === "string") assert.fail(`QKVFLOW_REQUIRE_BROWSER=1 but ${pw}`);
  const codec = charCodec(` abcdefghijklmnopqrstuvwxyz.,'"()-0123456789<>&?`);
  const text = corpusText().replace(/<unk>/g, "?").replace(/\s+/g, " ");
  const ids = codec.encode(text.toLowerCase());
  const work = mkdtempSync(join(tmpdir(), "qkvflow-report-"));
  const userData = mkdtempSync(join(tmpdir(), "qkvflow-chromium-"));
  try {
    const gpt = createModel(preset("gpt2-micro", { vocabSize: codec.vocabSize }), random.key(0));
    const ode = createModel(preset("diffeqformer-micro", { vocabSize: codec.vocabSize }), random.key(0));
    for (const m of [gpt, ode]) {
      const losses = trainTiny(m, ids, { steps: 40, lr: 1e-2, T: 16, B: 8, seed: 1 });
      const first = losses.slice(0, 5).reduce((a, b) => a + b, 0) / 5,
        last = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
      assert.ok(last < first - 0.3, `${m.config.kind} did not train: loss ${first} → ${last}`);
    }
    // a sentence with markup characters checks the escaping in the browser too
    const texts = [
      `<b>"lobster" & co</b> is red`,
      ...splitSentences(text)
        .filter((s) => s.length > 20)
        .slice(0, 3),
    ];
    const results = [gpt, ode].map((m, i) =>
      analyzeModel(m, { label: i === 0 ? "GPT-2 micro" : "DiffEqFormer micro", texts, tokenizer: codec, maxTokens: 16 }),
    );
    writeAnalysis(work, results, { title: "micro models" });
    const url = pathToFileURL(join(work, "report.html")).href;

    const context = await pw.chromium.launchPersistentContext(userData, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
      viewport: { width: 1400, height: 1000 },
    });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text());
      });
      const requests: string[] = [];
      page.on("request", (r) => requests.push(r.url()));
      await page.goto(url);
      assert.equal(await page.title(), "micro models");

      // Plots: every <svg class="plot"> is laid out with a real size.
      const boxes = await page.$$eval("svg.plot", (els) =>
        els.map((e) => {
          const r = e.getBoundingClientRect();
          return { w: r.width, h: r.height, cls: e.getAttribute("class") ?? "" };
        }),
      );
      // per model: spectra (3 × 2 + summary), per sentence a bar chart and a running-exponent plot, the distance plot
      assert.equal(boxes.length, 2 * (3 * 2 + 1 + 2 * texts.length + 1) + 3);
      for (const b of boxes) assert.ok(b.w > 200 && b.h > 150, `plot ${b.cls} is ${b.w}×${b.h}`);
      // eigenvalue markers inside the complex-plane plots, and lines in the |λ|(t) plots
      const eig = await page.$$eval(
        "svg.spectra-complex circle.eig",
        (els) =>
          els.filter((e) => {
            const r = e.getBoundingClientRect();
            const s = (e as unknown as SVGElement).ownerSVGElement!.getBoundingClientRect();
            return r.width > 0 && r.left >= s.left && r.right <= s.right && r.top >= s.top && r.bottom <= s.bottom;
          }).length,
      );
      // GPT-2: 2 layers × (2 heads × 8 + 2 × 8 + 16); DiffEqFormer: 3 times × the same
      assert.equal(eig, (2 + 3) * (2 * 8 + 2 * 8 + 16));
      assert.ok(
        (await page.$$eval(
          "svg.spectra-abs path.series",
          (els) => els.filter((e) => (e as SVGPathElement).getTotalLength() > 10).length,
        )) >=
          2 * 5,
      );
      const bars = await page.$$eval("svg.lyapunov-bars rect.bar", (els) => els.length);
      const sources = results.reduce((n, r) => n + r.sentences.reduce((m, s) => m + s.query, 0), 0);
      assert.equal(bars, sources);
      // running max exponent over T: one drawn line per shown source token in every sentence's plot
      const runningLines = await page.$$eval(
        "svg.lyapunov-running path.series",
        (els) => els.filter((e) => (e as SVGPathElement).getTotalLength() > 10).length,
      );
      const shown = results.reduce((n, r) => n + r.sentences.reduce((m, s) => m + runningTokens(s).length, 0), 0);
      assert.equal(runningLines, shown);

      // Heat maps: three per sentence, side by side, with the quantised colours actually painted.
      const maps = await page.$$eval(".sentence .maps", (els) =>
        els.map((m) =>
          Array.from(m.querySelectorAll(".heatmap")).map((h) => {
            const r = h.getBoundingClientRect();
            return { x: r.left, y: r.top, w: r.width, h: r.height, kind: h.className };
          }),
        ),
      );
      assert.equal(maps.length, 2 * texts.length);
      for (const row of maps) {
        assert.equal(row.length, 3);
        assert.ok(row[0].x < row[1].x && row[1].x < row[2].x, "maps are not side by side");
        assert.ok(Math.abs(row[0].y - row[2].y) < 1 && row.every((r) => r.w > 100 && r.h > 20));
      }
      const spans = await page.$$eval("span.tok.heat", (els) =>
        els.map((e) => {
          const r = e.getBoundingClientRect();
          return {
            kind: e.getAttribute("data-kind"),
            level: Number(e.getAttribute("data-level")),
            bg: getComputedStyle(e).backgroundColor,
            w: r.width,
            h: r.height,
            text: e.textContent,
          };
        }),
      );
      assert.equal(spans.length, 3 * sources);
      const scheme = { lyapunov: HEAT_COLORS.lyapunov, rollout: HEAT_COLORS.rollout, "grad-input": HEAT_COLORS.gradInput } as const;
      for (const s of spans) {
        assert.ok(s.w > 0 && s.h > 0, `token '${s.text}' is not visible`);
        assert.equal(s.bg, heatColor(s.level, scheme[s.kind as keyof typeof scheme]));
      }
      // each sentence's Lyapunov map spans the whole scale: one white and one full-red token
      const ly = spans.filter((s) => s.kind === "lyapunov");
      assert.ok(ly.some((s) => s.bg === "rgb(255, 255, 255)"));
      assert.equal(ly.filter((s) => s.bg === heatColor(HEAT_LEVELS - 1, HEAT_COLORS.lyapunov)).length, 2 * texts.length);
      // escaped markup shows as text, not as elements
      assert.equal(await page.$$eval(".tokens b", (els) => els.length), 0);
      assert.ok((await page.textContent(".sentence .src")) !== null);
      assert.ok(spans.some((s) => s.text === "<"));
      assert.deepEqual(errors, []);
      assert.ok(
        requests.every((u) => u.startsWith("file:")),
        `the report fetched ${requests.filter((u) => !u.startsWith("file:")).join(", ")}`,
      );
    } finally {
      await context.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(userData, { recursive: true, force: true });
  }
});
