/**
 * Experiment 4 (paper §4): pretrain a DiffEqFormer with L Euler steps on WikiText-2, discretise it to M layers,
 * fine-tune each discretisation on the OpenWebText sample (all weights, and LoRA with the paper's scale
 * alpha / r = 0.04 plus trainable embeddings), against GPT-2s pretrained at several depths then fine-tuned the
 * same ways, and a GPT-2 trained on the target only. Also the zero-shot depth change: the discretised model,
 * not fine-tuned, on both corpora.
 */
import * as path from "node:path";
import { linePlot, type LineSeries } from "@qkvflow/analysis";
import { loadModelFrom, qkvflowModels } from "@qkvflow/train";
import { mainModelSections } from "./main-comparison.js";
import { cached, fx, studyConfig, testPerplexity, trainRun, type RunSummary, type StudyContext } from "./runner.js";

/** One row of the depth table. */
export interface DepthRow {
  model: "DiffEqFormer" | "GPT-2" | "GPT-2 from scratch";
  /** Layers at fine-tuning (DiffEqFormer: M). */
  layers: number;
  mode: "full" | "lora" | "scratch";
  trainable: number;
  /** Perplexity on the target's held-out tokens before fine-tuning (null for from-scratch). */
  before: number | null;
  after: number;
}

/** Result of experiment 4. */
export interface DepthResult {
  pretrainLayers: number;
  pretrain: { diffeqformer: RunSummary; gpt: RunSummary[] };
  /** The discretised pretrained DiffEqFormer without fine-tuning. */
  zeroShot: { layers: number; wikitextTest: number; owtTest: number }[];
  rows: DepthRow[];
  finetuneTokens: number;
}

/** Runs experiment 4. */
export async function runDepth(ctx: StudyContext): Promise<{ result: DepthResult; figures: Record<string, string> }> {
  const spec = ctx.spec;
  const d = spec.depth;
  const wiki = await ctx.wiki();
  const owt = await ctx.owt();
  const def = { ...mainModelSections(spec).diffeqformer, nLayer: d.pretrainLayers };
  const gptSection = (l: number) => ({ ...mainModelSections(spec).gpt, nLayer: l });
  const pretrain = async (name: string, model: Record<string, unknown>) =>
    trainRun(ctx, studyConfig(ctx, { name, seed: 0, model, schedule: d.pretrain, data: "wiki", decayAll: true }), {
      data: wiki,
      test: wiki.splits.test!,
      testSplit: "test",
    });
  const finetune = async (name: string, from: string, layers: number, mode: "full" | "lora", model: Record<string, unknown>) =>
    trainRun(
      ctx,
      studyConfig(ctx, {
        name,
        seed: 0,
        model,
        schedule: d.finetune,
        data: "owt",
        decayAll: true,
        finetune: {
          checkpoint: path.join(ctx.out, "runs", from),
          layers,
          mode,
          loraRank: d.loraRank,
          loraAlpha: d.loraScale * d.loraRank,
          loraInitStd: d.loraInitStd,
          loraTargets: ["*"],
          loraTrainable: ["wte.weight", "wpe.weight"],
        },
      }),
      { finetune: true, data: owt, test: owt.splits.test!, testSplit: "owt-test" },
    );

  const preName = `depth-pretrain-diffeqformer-L${d.pretrainLayers}`;
  const pre = await pretrain(preName, def);
  const zeroShot = await cached(ctx, "depth-zeroshot", () => {
    const { model } = loadModelFrom(path.join(ctx.out, "runs", preName));
    return d.layers.map((M) => {
      const m = qkvflowModels.discretize(model, M);
      return {
        layers: M,
        wikitextTest: testPerplexity(ctx, m, wiki.splits.test!).ppl,
        owtTest: testPerplexity(ctx, m, owt.splits.test!).ppl,
      };
    });
  });
  const rows: DepthRow[] = [];
  const row = (model: DepthRow["model"], layers: number, mode: DepthRow["mode"], r: RunSummary): DepthRow => ({
    model,
    layers,
    mode,
    trainable: r.trainable,
    before: mode === "scratch" ? null : r.before,
    after: r.test.ppl,
  });
  for (const mode of ["full", "lora"] as const) {
    for (const M of d.layers)
      rows.push(row("DiffEqFormer", M, mode, await finetune(`depth-ft-diffeqformer-M${M}-${mode}`, preName, M, mode, def)));
  }
  const gptPre: RunSummary[] = [];
  for (const l of d.gptLayers) {
    const name = `depth-pretrain-gpt-L${l}`;
    gptPre.push(await pretrain(name, gptSection(l)));
    for (const mode of ["full", "lora"] as const)
      rows.push(row("GPT-2", l, mode, await finetune(`depth-ft-gpt-L${l}-${mode}`, name, l, mode, gptSection(l))));
  }
  const scratch = await trainRun(
    ctx,
    studyConfig(ctx, {
      name: `depth-scratch-gpt-L${d.scratchLayers}`,
      seed: 0,
      model: gptSection(d.scratchLayers),
      schedule: d.finetune,
      data: "owt",
    }),
    { data: owt, test: owt.splits.test!, testSplit: "owt-test" },
  );
  rows.push(row("GPT-2 from scratch", d.scratchLayers, "scratch", scratch));
  const result: DepthResult = {
    pretrainLayers: d.pretrainLayers,
    pretrain: { diffeqformer: pre, gpt: gptPre },
    zeroShot,
    rows,
    finetuneTokens: d.finetune.steps * d.finetune.batchSize * spec.seqLen,
  };
  return { result, figures: depthFigures(result) };
}

function depthFigures(r: DepthResult): Record<string, string> {
  const pts = (model: DepthRow["model"], mode: DepthRow["mode"], v: "before" | "after") =>
    r.rows.filter((x) => x.model === model && x.mode === mode).map((x) => [x.layers, x[v] ?? NaN] as [number, number]);
  const Ms = r.zeroShot.map((z) => z.layers);
  const scratch = r.rows.find((x) => x.mode === "scratch")!;
  const series: LineSeries[] = [
    { label: `DiffEqFormer L=${r.pretrainLayers}→M, full`, points: pts("DiffEqFormer", "full", "after"), color: "#0072B2" },
    { label: `DiffEqFormer L=${r.pretrainLayers}→M, LoRA`, points: pts("DiffEqFormer", "lora", "after"), color: "#D55E00" },
    { label: "GPT-2 pretrained at M, full", points: pts("GPT-2", "full", "after"), color: "#0072B2", dashed: true },
    { label: "GPT-2 pretrained at M, LoRA", points: pts("GPT-2", "lora", "after"), color: "#D55E00", dashed: true },
    {
      label: `GPT-2 from scratch (L ${scratch.layers})`,
      points: [
        [Math.min(...Ms), scratch.after],
        [Math.max(...Ms), scratch.after],
      ],
      color: "#000000",
      dashed: true,
    },
  ];
  return {
    "depth-finetune": linePlot(series, {
      title: "Fine-tuned on the OpenWebText sample: held-out perplexity against depth",
      xLabel: "layers M at fine-tuning",
      yLabel: "OWT held-out perplexity",
    }),
    "depth-zeroshot": linePlot(
      [
        { label: "WikiText-2 test (source)", points: r.zeroShot.map((z) => [z.layers, z.wikitextTest]) },
        { label: "OWT held-out (target)", points: r.zeroShot.map((z) => [z.layers, z.owtTest]) },
      ],
      {
        title: `Zero-shot depth change: DiffEqFormer trained at L=${r.pretrainLayers}, run at M, no fine-tuning`,
        xLabel: "Euler steps / layers M",
        yLabel: "perplexity",
      },
    ),
  };
}

/** Markdown of experiment 4. */
export function depthMarkdown(r: DepthResult): string {
  const f = (v: number | null) => (v === null ? "—" : fx(v));
  return [
    `Pretraining on WikiText-2 train: DiffEqFormer L = ${r.pretrainLayers} (test perplexity ${fx(r.pretrain.diffeqformer.test.ppl)}), GPT-2 at ${r.pretrain.gpt.map((g) => `${g.name.replace(/.*-L/, "L ")} (${fx(g.test.ppl)})`).join(", ")}. Fine-tuning: ${r.finetuneTokens.toLocaleString("en-US")} tokens of the OpenWebText sample; perplexity on its held-out last 10 %.`,
    "",
    "| model | layers at fine-tuning | fine-tuning | trainable params | perplexity before | perplexity after |",
    "|---|---|---|---|---|---|",
    ...r.rows.map(
      (x) => `| ${x.model} | ${x.layers} | ${x.mode} | ${x.trainable.toLocaleString("en-US")} | ${f(x.before)} | ${f(x.after)} |`,
    ),
    "",
    "Zero-shot depth change (no fine-tuning):",
    "",
    "| M | WikiText-2 test | OWT held-out |",
    "|---|---|---|",
    ...r.zeroShot.map((z) => `| ${z.layers}${z.layers === r.pretrainLayers ? " (= L)" : ""} | ${fx(z.wikitextTest)} | ${fx(z.owtTest)} |`),
    "",
    "![Fine-tuning against depth](figures/depth-finetune.svg)",
    "",
    "![Zero-shot depth change](figures/depth-zeroshot.svg)",
  ].join("\n");
}
