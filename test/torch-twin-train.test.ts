/**
 * The round trip between qkvflow and the PyTorch trainer (python/qkvflow_torch), on the WikiText-2 raw files under
 * ../shared/data (QKVFLOW_SHARED_DATA overrides; the first documents of each split, to keep it short):
 *
 *  1. `qkvflow tokenize` writes the tiny DiffEqFormer configuration's splits as uint16 token files;
 *  2. torchrun with 2 gloo processes on the CPU trains it for QKVFLOW_TORCH_STEPS updates (default 24): the loss
 *     falls, every rank logs the same losses and ends with the same parameters, and the run matches a
 *     single-process run with the same global batch (losses and final parameters to float32 round-off);
 *  3. qkvflow reads the checkpoint torchrun wrote: `qkvflow eval` gives the test loss PyTorch computed on the same
 *     windows (within 1e-4), `qkvflow finetune --layers 2` discretises and continues it, `generate` and
 *     `analyze` take it;
 *  4. a checkpoint written by `qkvflow train` (tiny GPT-2) is resumed by the PyTorch trainer, which then computes
 *     the same losses for the remaining updates as qkvflow itself did (same windows, same AdamW state).
 *
 * Needs /usr/bin/python3 with torch (skips with the reason otherwise, fails when QKVFLOW_REQUIRE_TORCH=1).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { decodeModelFile, loadCheckpoint, loadConfig, loadRunData, readTokenFiles, runEval, runTrain } from "@qkvflow/train";
import { main as cli } from "../packages/cli/src/cli.js";
import { tmpDir } from "./helpers/tmp.js";
import { python, pythonEnv, repoRoot, runCommand, skipWithoutTorch } from "./helpers/torch-twin.js";

const shared = process.env.QKVFLOW_SHARED_DATA ?? path.resolve(repoRoot, "..", "shared", "data");
const wikitext = path.join(shared, "wikitext-2-raw-v1");
const steps = Number(process.env.QKVFLOW_TORCH_STEPS ?? "24");
const torchSkip = skipWithoutTorch();
const skip = torchSkip || (fs.existsSync(path.join(wikitext, "wiki.train.raw")) ? false : `no WikiText-2 raw files in ${wikitext}`);

interface TrainRecord {
  type: string;
  step: number;
  loss: number;
}

function trainRecords(runDir: string): TrainRecord[] {
  return fs
    .readFileSync(path.join(runDir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as TrainRecord)
    .filter((r) => r.type === "train");
}

function modelOf(dir: string): Record<string, Float32Array> {
  const ck = loadCheckpoint(dir);
  return Object.fromEntries(Object.entries(ck.model).map(([n, t]) => [n, t.data() as Float32Array]));
}

/** max |a − b| over every parameter of two state dicts with the same names. */
function maxParamDiff(a: Record<string, Float32Array>, b: Record<string, Float32Array>): number {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  let m = 0;
  for (const [n, x] of Object.entries(a)) {
    const y = b[n]!;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  }
  return m;
}

async function twin(args: string[]): Promise<string> {
  const r = await runCommand(python, args, { env: pythonEnv() });
  assert.equal(r.code, 0, `${python} ${args.join(" ")}\n${r.output}`);
  return r.output;
}

test("torch twin: tokenize → torchrun DDP (2 gloo ranks) → qkvflow eval / finetune / generate / analyze, and qkvflow → torch resume", {
  skip,
  timeout: 1_800_000,
}, async (t) => {
  const tmp = tmpDir("qkvflow-torch-train-");
  const tokens = path.join(tmp, "tokens");
  const sets = [
    "data.maxDocuments=20",
    `data.cacheDir=${JSON.stringify(path.join(tmp, "cache"))}`,
    "data.seqLen=32",
    "train.batchSize=4",
    "train.evalEvery=0",
    "train.evalBatches=4",
    "train.evalBatchSize=8",
    "train.checkpointEvery=0",
    'train.progress="none"',
  ];
  const setArgs = sets.flatMap((s) => ["--set", s]);
  const config = "tiny-diffeqformer-wikitext2";

  await t.test("qkvflow tokenize writes the splits qkvflow trains on", async () => {
    assert.equal(await cli(["tokenize", "--config", config, "--data", wikitext, "--out", tokens, ...setArgs]), 0);
    const { header, splits } = readTokenFiles(tokens);
    assert.equal(header.train, "train");
    assert.equal(header.eval, "validation");
    const rd = await loadRunData(loadConfig(config, [...sets, `data.dataDir=${JSON.stringify(wikitext)}`]).data);
    for (const [name, tk] of Object.entries(rd.splits)) assert.deepEqual(splits[name], Uint16Array.from(tk), `split ${name}`);
  });

  const ddp = path.join(tmp, "ddp");
  const single = path.join(tmp, "single");
  const common = ["--config", config, ...setArgs, "--tokens", tokens, "--steps", String(steps), "--threads", "1", "--rank-report"];

  await t.test(
    `torchrun --nproc_per_node 2 (gloo) trains ${steps} updates; ranks agree; a single process with the same global batch agrees`,
    async () => {
      const t0 = performance.now();
      const out = await twin([
        "-m",
        "qkvflow_torch.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "qkvflow_torch.train",
        ...common,
        "--out",
        ddp,
      ]);
      const ddpSeconds = (performance.now() - t0) / 1000;
      assert.match(out, /2 process\(es\) on cpu \(gloo backend\)/);
      await twin(["-m", "qkvflow_torch.train", ...common, "--out", single]);
      const a = trainRecords(ddp),
        b = trainRecords(single);
      assert.equal(a.length, steps);
      assert.equal(b.length, steps);
      const head = a.slice(0, 3).reduce((s, r) => s + r.loss, 0) / 3;
      const tail = a.slice(-3).reduce((s, r) => s + r.loss, 0) / 3;
      assert.ok(tail < head - 0.5, `the loss did not fall: first three ${head}, last three ${tail}`);
      const ranks = [0, 1].map(
        (r) =>
          JSON.parse(fs.readFileSync(path.join(ddp, "ranks", `rank-${r}.json`), "utf8")) as {
            losses: { local: number; global: number }[];
            paramAbsSum: number;
          },
      );
      assert.deepEqual(
        ranks[0]!.losses.map((l) => l.global),
        ranks[1]!.losses.map((l) => l.global),
        "the ranks logged different losses",
      );
      assert.equal(ranks[0]!.paramAbsSum, ranks[1]!.paramAbsSum, "the ranks ended with different parameters");
      assert.ok(
        ranks[0]!.losses.some((l, i) => l.local !== ranks[1]!.losses[i]!.local),
        "both ranks saw the same rows (the batch was not split)",
      );
      let worst = 0;
      a.forEach((r, i) => {
        worst = Math.max(worst, Math.abs(r.loss - b[i]!.loss) / b[i]!.loss);
      });
      const dp = maxParamDiff(modelOf(ddp), modelOf(single));
      console.log(
        `  DDP ${steps} updates in ${ddpSeconds.toFixed(1)} s (loss ${a[0]!.loss.toFixed(3)} → ${a.at(-1)!.loss.toFixed(3)}); ` +
          `vs one process: worst loss rel ${worst.toExponential(2)}, final parameters max |Δ| ${dp.toExponential(2)}`,
      );
      assert.ok(worst <= 1e-5, `DDP and single-process losses differ by ${worst} (relative)`);
      // Adam divides by √v̂ + ε, so round-off differences of a gradient (DDP sums in another order) move an
      // element with a tiny second moment by a sizeable part of its learning-rate step (lr 1e-2 here): the bound is
      // 5 % of one step; the losses above are the tight check.
      assert.ok(dp <= 5e-4, `DDP and single-process parameters differ by ${dp}`);
    },
  );

  await t.test("qkvflow eval of the torchrun checkpoint gives PyTorch's test loss on the same windows", async () => {
    const cfg = loadConfig(path.join(ddp, "config.json"), [`data.dataDir=${JSON.stringify(wikitext)}`]);
    const r = await runEval(cfg, ddp, { log: () => undefined });
    const torchEval = (loadCheckpoint(ddp).state.lastEval as { loss: number; tokens: number }) ?? null;
    assert.ok(torchEval !== null, "the torch checkpoint records no evaluation");
    assert.equal(r.eval.tokens, torchEval.tokens);
    console.log(`  eval: qkvflow ${r.eval.loss} vs PyTorch ${torchEval.loss} (${r.eval.tokens} tokens)`);
    assert.ok(Math.abs(r.eval.loss - torchEval.loss) <= 1e-4, `qkvflow eval ${r.eval.loss} vs PyTorch ${torchEval.loss}`);
    const code = await cli(["eval", "--checkpoint", ddp, "--data", wikitext]);
    assert.equal(code, 0);
    const line = (await twin(["-m", "qkvflow_torch.evaluate", "--checkpoint", ddp, "--tokens", tokens])).trim().split("\n").at(-1)!;
    const standalone = JSON.parse(line) as { loss: number; tokens: number; split: string };
    assert.equal(standalone.split, "validation");
    assert.equal(standalone.tokens, r.eval.tokens);
    assert.ok(Math.abs(standalone.loss - r.eval.loss) <= 1e-4, `qkvflow_torch.evaluate ${standalone.loss} vs qkvflow eval ${r.eval.loss}`);
  });

  await t.test("qkvflow finetune --layers 2, generate and analyze take the torchrun checkpoint", async () => {
    const ft = path.join(tmp, "finetune");
    const code = await cli([
      "finetune",
      "--config",
      path.join(ddp, "config.json"),
      "--from",
      ddp,
      "--layers",
      "2",
      "--steps",
      "2",
      "--out",
      ft,
      "--data",
      wikitext,
      "--set",
      "train.evalBatches=1",
    ]);
    assert.equal(code, 0);
    const ck = loadCheckpoint(ft);
    assert.equal(ck.step, 2);
    assert.equal((ck.modelConfig as { kind: string }).kind, "discretized");
    assert.equal((ck.modelConfig as { nLayer: number }).nLayer, 2);
    assert.equal(trainRecords(ft).length, 2);
    assert.equal(await cli(["generate", "--checkpoint", ddp, "--prompt", "The game", "--max-tokens", "4"]), 0);
    const rep = path.join(tmp, "analysis");
    assert.equal(await cli(["analyze", "--checkpoint", ddp, "--out", rep, "--text", "The game began", "--ffn-units", "8"]), 0);
    assert.ok(fs.readdirSync(rep).length > 0, "analyze wrote nothing");
  });

  await t.test("the PyTorch trainer resumes a qkvflow checkpoint and continues with qkvflow's losses", async () => {
    const ts = path.join(tmp, "qkvflow-run");
    const gpt = "tiny-gpt2-wikitext2";
    const tsSets = [...sets, "train.checkpointEvery=2", "train.keepCheckpoints=3", `data.dataDir=${JSON.stringify(wikitext)}`];
    const cfg = loadConfig(gpt, [...tsSets, "train.steps=4", `train.outDir=${JSON.stringify(ts)}`]);
    await runTrain(cfg, { log: () => undefined, handleSignals: false });
    const resumed = path.join(tmp, "torch-resumed");
    await twin([
      "-m",
      "qkvflow_torch.train",
      "--config",
      path.join(ts, "config.json"),
      "--tokens",
      tokens,
      "--steps",
      "4",
      "--threads",
      "1",
      "--resume",
      path.join(ts, "checkpoints", "step-00000002"),
      "--out",
      resumed,
    ]);
    const mine = trainRecords(ts),
      theirs = trainRecords(resumed);
    assert.deepEqual(
      theirs.map((r) => r.step),
      [3, 4],
    );
    const rel = theirs.map((r) => Math.abs(r.loss - mine.find((m) => m.step === r.step)!.loss) / r.loss);
    const dp = maxParamDiff(modelOf(ts), modelOf(resumed));
    console.log(
      `  resume: steps 3, 4 losses rel ${rel.map((x) => x.toExponential(2)).join(", ")}; final parameters max |Δ| ${dp.toExponential(2)}`,
    );
    for (const x of rel) assert.ok(x <= 1e-5, `the resumed losses differ from qkvflow's by ${x} (relative)`);
    assert.ok(dp <= 1e-4, `the resumed run's parameters differ from qkvflow's by ${dp}`);
    const { modelConfig } = decodeModelFile(
      new Uint8Array(fs.readFileSync(path.join(resumed, "checkpoints", "step-00000004", "model.safetensors"))),
    );
    assert.equal((modelConfig as { kind: string }).kind, "gpt2");
  });
});
