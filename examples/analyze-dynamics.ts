/**
 * Depth dynamics of trained models: eigenvalue spectra of QK / OV / FFN over t, per-token finite-time Lyapunov
 * spectra, attention rollout and gradient × input, written as JSON, SVG plots and one HTML report.
 *
 *   # analyse checkpoints (a run folder, checkpoint folder or model .safetensors; repeat to compare models)
 *   npx tsx examples/analyze-dynamics.ts --checkpoint runs/gpt2-small --checkpoint runs/ode-small --out analysis-out \
 *       [--text "Robert Boulter is an English film actor."] [--corpus FILE] [--times 0.1,0.5,1]
 *
 *   # no checkpoint: train a micro GPT-2 and a micro DiffEqFormer on WikiText-2 characters first (about a minute)
 *   npx tsx examples/analyze-dynamics.ts [--out analysis-out] [--train-steps 150]
 *
 * Open <out>/report.html in a browser.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { random, tensor, valueAndGrad, type Tensor } from "@qkvflow/autograd";
import { createModel, preset, type AnyModel } from "@qkvflow/models";
import { AdamW, GPT2_VOCAB_SIZE, gpt2Tokenizer } from "@qkvflow/train";
import { analyzeCommand, analyzeModel, splitSentences, writeAnalysis, type TextCodec } from "@qkvflow/analysis";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const sharedData = process.env.QKVFLOW_SHARED_DATA ?? join(root, "..", "shared", "data");

const SENTENCES = [
  "Robert Boulter is an English film, television and theatre actor. He had a guest-starring role on the television series",
  "The lobster is a species of clawed lobster from the eastern Atlantic Ocean, the Mediterranean Sea and parts of the",
];

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Characters of lower-cased text as tokens (the micro models' vocabulary). */
function charCodec(alphabet: string): TextCodec & { vocabSize: number } {
  const chars = [...alphabet];
  const index = new Map(chars.map((c, i) => [c, i]));
  return {
    vocabSize: chars.length,
    encode: (text) => [...text.toLowerCase()].map((c) => index.get(c) ?? chars.length - 1),
    decode: (ids) => Array.from(ids, (i) => chars[i] ?? "?").join(""),
  };
}

/** A few hundred AdamW steps of next-character prediction on random windows. */
function train(model: AnyModel, ids: number[], steps: number, seed: number): void {
  const opt = new AdamW({ weightDecay: 0.01, maxGradNorm: 1 });
  const T = model.config.blockSize,
    B = 16;
  const vg = valueAndGrad((p: Record<string, Tensor>, x: Tensor, y: Tensor) => {
    model.setParameters(p);
    return model.loss(x, y, { training: false });
  });
  for (let s = 0; s < steps; s++) {
    const u = random.uniform(random.foldIn(random.key(seed), s), [B], { dtype: "float64" }).data();
    const x = new Int32Array(B * T),
      y = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const start = Math.floor(u[b] * (ids.length - T - 1));
      for (let t = 0; t < T; t++) {
        x[b * T + t] = ids[start + t];
        y[b * T + t] = ids[start + t + 1];
      }
    }
    const [loss, grads] = vg(
      model.parameters(),
      tensor(x, { shape: [B, T], dtype: "int32" }),
      tensor(y, { shape: [B, T], dtype: "int32" }),
    );
    const lr = 3e-3 * Math.min(1, (s + 1) / 20);
    model.setParameters(opt.step(model.parameters(), grads as Record<string, Tensor>, lr).params);
    if (s % 50 === 0 || s === steps - 1)
      console.log(`  ${model.config.kind} step ${s + 1}/${steps}: loss ${(loss as Tensor).item().toFixed(3)}`);
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes("--checkpoint")) {
    const hasInput = ["--text", "--corpus", "--ids"].some((f) => argv.includes(f));
    const extra = hasInput ? [] : SENTENCES.flatMap((s) => ["--text", s]);
    const code = await analyzeCommand([...argv, ...extra], {
      tokenizer: (m) => (m.config.vocabSize === GPT2_VOCAB_SIZE ? gpt2Tokenizer : undefined),
    });
    process.exitCode = code;
    return;
  }
  const out = flag(argv, "--out") ?? "analysis-out";
  const steps = Number(flag(argv, "--train-steps") ?? 150);
  const wiki = join(sharedData, "wikitext-2", "valid.txt");
  const text = (existsSync(wiki) ? readFileSync(wiki, "utf8").slice(0, 200_000) : SENTENCES.join(" ").repeat(50))
    .replace(/<unk>/g, "?")
    .replace(/\s+/g, " ");
  const codec = charCodec(" abcdefghijklmnopqrstuvwxyz.,;:'\"()-0123456789?");
  const ids = codec.encode(text);
  const models = [
    { label: "GPT-2 micro", model: createModel(preset("gpt2-micro", { vocabSize: codec.vocabSize }), random.key(0)) },
    { label: "DiffEqFormer micro", model: createModel(preset("diffeqformer-micro", { vocabSize: codec.vocabSize }), random.key(0)) },
  ];
  console.log(
    `training two micro models for ${steps} steps on ${existsSync(wiki) ? "WikiText-2 validation" : "built-in"} text (characters)`,
  );
  for (const m of models) train(m.model, ids, steps, 1);
  const texts = [
    ...SENTENCES,
    ...splitSentences(text)
      .filter((s) => s.length > 30)
      .slice(0, 10),
  ];
  const results = models.map((m) => {
    console.log(`analysing ${m.label}`);
    return analyzeModel(m.model, {
      label: m.label,
      texts,
      tokenizer: codec,
      maxTokens: 16,
      times: m.model.config.kind === "diffeqformer" ? Array.from({ length: 11 }, (_, i) => i / 10) : undefined,
    });
  });
  const files = writeAnalysis(out, results, { title: "Depth dynamics of micro GPT-2 and DiffEqFormer models" });
  console.log(`wrote ${files.length} files to ${out}; open ${join(out, "report.html")}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
