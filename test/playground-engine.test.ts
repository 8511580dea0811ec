/**
 * The playground's computations (examples/playground/engine.ts) in Node, without a browser, on a micro
 * DiffEqFormer: the model file is the CLI's, an update is AdamW on the batch's loss, sampling is sampleTokens',
 * held-out perplexity and evaluation counts follow the solver, and bad settings are refused by name.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { random, setBackend, tensor, valueAndGrad, type Tensor } from "@qkvflow/autograd";
import { createEmptyModel, preset, validateConfig, type AnyModel } from "@qkvflow/models";
import { AdamW, defaultDecayPatterns, evaluatePerplexity, loadModelFrom, sampleTokens } from "@qkvflow/train";
import {
  PLAYGROUND_TRAIN,
  TrainSession,
  batchStarts,
  heldOut,
  logitsOf,
  modelFileBytes,
  modelFromFile,
  newModel,
  nextToken,
  windows,
  withSolver,
} from "../examples/playground/engine.js";
import type { TrainReport, TrainRequest } from "../examples/playground/worker.js";
import { tmpDir } from "./helpers/tmp.js";

setBackend("cpu");
const MICRO = preset("diffeqformer-micro", { embdPdrop: 0, residPdrop: 0 });
const tokens = Array.from({ length: 600 }, (_, i) => (i * 7 + ((i >> 3) % 5)) % MICRO.vocabSize);

describe("playground engine", () => {
  it("draws windows deterministically inside the text, with next-token targets", () => {
    const a = batchStarts(3, 5, 100, 16, 0);
    assert.deepEqual(a, batchStarts(3, 5, 100, 16, 0));
    assert.notDeepEqual(a, batchStarts(4, 5, 100, 16, 0));
    for (const s of a) assert.ok(Number.isInteger(s) && s >= 0 && s + 16 < 100);
    const w = windows(tokens, [10, 20], 4);
    assert.deepEqual(Array.from(w.inputs), [...tokens.slice(10, 14), ...tokens.slice(20, 24)]);
    assert.deepEqual(Array.from(w.targets), [...tokens.slice(11, 15), ...tokens.slice(21, 25)]);
    assert.throws(() => batchStarts(0, 1, 10, 16, 0), /10 tokens; expected at least seqLen \+ 1 = 17/);
  });

  it("writes the CLI's model file and reads it back", () => {
    const m = newModel(3, MICRO);
    const file = join(tmpDir("qkvflow-playground-"), "model.safetensors");
    writeFileSync(file, modelFileBytes(m));
    const back = loadModelFrom(file).model as AnyModel;
    assert.deepEqual(back.config, m.config);
    const ids = [1, 5, 9, 2];
    assert.deepEqual(Array.from(logitsOf(back, ids)), Array.from(logitsOf(m, ids)));
    assert.deepEqual(Array.from(logitsOf(modelFromFile(modelFileBytes(m)), ids)), Array.from(logitsOf(m, ids)));
  });

  it("an update is AdamW on the mean loss of its batch, as a loop written out here computes it", () => {
    const s = new TrainSession(newModel(1, MICRO), tokens, { batchSize: 3, seqLen: 8 });
    const ref = newModel(1, MICRO);
    const opt = new AdamW({
      beta2: PLAYGROUND_TRAIN.beta2,
      weightDecay: PLAYGROUND_TRAIN.weightDecay,
      decayPatterns: defaultDecayPatterns("diffeqformer"),
      maxGradNorm: PLAYGROUND_TRAIN.maxGradNorm,
    });
    for (let k = 0; k < 3; k++) {
      const b = windows(tokens, batchStarts(k, 3, tokens.length, 8, PLAYGROUND_TRAIN.seed), 8);
      const x = tensor(b.inputs, { shape: [3, 8], dtype: "int32" });
      const y = tensor(b.targets, { shape: [3, 8], dtype: "int32" });
      const expected = ref.loss(x, y).item();
      const r = s.update();
      assert.equal(r.step, k + 1);
      assert.ok(Math.abs(r.loss - expected) <= 1e-6 * expected, `update ${k + 1}: loss ${r.loss}, expected ${expected}`);
      // the reference update, written out: gradient of the batch's mean loss, then one AdamW step at the page's lr
      const params = ref.parameters();
      const [, g] = valueAndGrad((p: Record<string, Tensor>) => {
        ref.setParameters(p);
        return ref.loss(x, y);
      })(params) as [Tensor, Record<string, Tensor>];
      ref.setParameters(opt.step(params, g, PLAYGROUND_TRAIN.lr).params);
    }
    const ids = tokens.slice(0, 8);
    const a = logitsOf(s.model, ids),
      b = logitsOf(ref, ids);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-5, `logit ${i}: ${a[i]} vs ${b[i]}`);
  });

  it("samples the tokens sampleTokens draws (greedy and with temperature / top-k)", () => {
    const m = newModel(2, MICRO);
    for (const opt of [
      { temperature: 0, topK: 0 },
      { temperature: 0.9, topK: 5 },
      { temperature: 1.3, topK: 0 },
    ]) {
      const seq = [3, 1, 4];
      const got: number[] = [];
      for (let i = 0; i < 6; i++) {
        const id = nextToken(m, seq, i, { ...opt, seed: 4 });
        seq.push(id);
        got.push(id);
      }
      const want = sampleTokens(m, [3, 1, 4], {
        maxNewTokens: 6,
        temperature: opt.temperature,
        topK: opt.topK || null,
        key: random.key(4),
      });
      assert.deepEqual(got, want, JSON.stringify(opt));
    }
  });

  it("perplexity and evaluation counts follow the solver setting", () => {
    const m = newModel(5, MICRO);
    const held = tokens.slice(0, 100);
    for (const [solver, stages] of [
      ["euler", 1],
      ["midpoint", 2],
      ["rk4", 4],
    ] as const) {
      for (const steps of [1, 3]) {
        const r = heldOut(m, held, { solver, steps, tol: 1e-3 });
        assert.equal(r.evaluations, steps * stages, `${solver} M=${steps}`);
        const method = solver === "euler" ? "euler-right-time" : solver;
        const ref = createEmptyModel(validateConfig({ ...m.config, solver: { method, steps } }));
        ref.loadStateDict(m.parameters());
        const want = evaluatePerplexity(ref, Int32Array.from(held), { seqLen: 16, batchSize: 8 });
        assert.ok(Math.abs(r.ppl - want.ppl) <= 1e-9 * want.ppl, `${solver} M=${steps}: ${r.ppl} vs ${want.ppl}`);
      }
    }
    for (const tol of [1e-1, 1e-4]) {
      const r = heldOut(m, held, { solver: "dopri5", steps: 1, tol });
      const ref = createEmptyModel(validateConfig({ ...m.config, solver: { method: "dopri5", rtol: tol, atol: tol, maxSteps: 200 } }));
      ref.loadStateDict(m.parameters());
      const want = evaluatePerplexity(ref, Int32Array.from(held), { seqLen: 16, batchSize: 8 });
      assert.ok(Math.abs(r.ppl - want.ppl) <= 1e-9 * want.ppl, `dopri5 tol ${tol}: ${r.ppl} vs ${want.ppl}`);
      assert.equal(r.evaluations, (ref as { lastEvaluations?: number }).lastEvaluations, `dopri5 tol ${tol}`);
      assert.ok(r.evaluations >= 6, `dopri5 takes at least one step of six stages (${r.evaluations})`);
    }
  });

  it("refuses bad settings by name", () => {
    assert.throws(
      () => withSolver(MICRO, { solver: "heun" as "rk4", steps: 2, tol: 1e-3 }),
      /solver 'heun'; expected one of euler, midpoint, rk4, dopri5/,
    );
    assert.throws(() => withSolver(MICRO, { solver: "rk4", steps: 0, tol: 1e-3 }), /steps = 0; expected an integer >= 1/);
    assert.throws(() => withSolver(MICRO, { solver: "dopri5", steps: 1, tol: 0 }), /tolerance = 0; expected a number > 0/);
    assert.throws(() => withSolver(preset("gpt2-micro"), { solver: "rk4", steps: 1, tol: 1e-3 }), /'gpt2' model; expected a DiffEqFormer/);
    assert.throws(() => new TrainSession(newModel(0, MICRO), [1, 2, 3]), /3 tokens; expected at least 17/);
  });

  it("the training worker's messages: start, pause, resume give the updates and the model of one uninterrupted session", async () => {
    // the worker module talks through globalThis.postMessage / onmessage, as in a browser's worker scope
    const reports: TrainReport[] = [];
    const g = globalThis as unknown as { postMessage?: (m: TrainReport) => void; onmessage?: (ev: { data: TrainRequest }) => void };
    const saved = g.postMessage;
    g.postMessage = (m) => void reports.push(m);
    try {
      await import("../examples/playground/worker.js");
      const send = (m: TrainRequest) => g.onmessage!({ data: m });
      const waitFor = async (f: () => boolean): Promise<void> => {
        for (let i = 0; !f(); i++) {
          if (i > 6000) throw new Error(`the worker did not answer: ${JSON.stringify(reports.map((r) => r.type))}`);
          await new Promise((ok) => setTimeout(ok, 5));
        }
      };
      const steps = () => reports.filter((r): r is Extract<TrainReport, { type: "step" }> => r.type === "step").map((r) => r.record);
      const paused = () => reports.filter((r): r is Extract<TrainReport, { type: "paused" }> => r.type === "paused");
      const start = modelFileBytes(newModel(2, MICRO));
      send({ type: "resume" });
      await waitFor(() => reports.length > 0);
      assert.deepEqual(reports.shift(), { type: "error", message: "resume: no training session in the worker; send 'start' first" });
      send({ type: "start", model: start.slice(), tokens: Int32Array.from(tokens), batchSize: 2, seqLen: 8, step: 5 });
      await waitFor(() => steps().length >= 2);
      send({ type: "pause" });
      await waitFor(() => paused().length === 1);
      const first = steps().length;
      send({ type: "resume" });
      await waitFor(() => steps().length >= first + 1);
      send({ type: "pause" });
      await waitFor(() => paused().length === 2);
      const got = steps();
      assert.deepEqual(
        got.map((r) => r.step),
        got.map((_, i) => 6 + i),
        "updates numbered on from the start message's step, across pause and resume",
      );
      assert.equal(paused()[0]!.step, 5 + first);
      assert.equal(paused()[1]!.step, 5 + got.length);
      // the same session without the worker: same losses, and the same weights at each pause (AdamW state kept on resume)
      setBackend("cpu");
      const ref = new TrainSession(modelFromFile(start), tokens, { batchSize: 2, seqLen: 8 });
      ref.step = 5;
      const probe = tokens.slice(0, 12);
      for (let i = 0; i < got.length; i++) {
        assert.equal(got[i]!.loss, ref.update().loss, `update ${i + 1}: loss`);
        if (i + 1 === first) assert.deepEqual(logitsOf(modelFromFile(paused()[0]!.model), probe), logitsOf(ref.model, probe));
      }
      assert.deepEqual(logitsOf(modelFromFile(paused()[1]!.model), probe), logitsOf(ref.model, probe));
      send({ type: "stop" } as unknown as TrainRequest);
      await waitFor(() => reports.some((r) => r.type === "error"));
      assert.match(
        JSON.stringify(reports.find((r) => r.type === "error")),
        /unknown message type 'stop'; expected start, resume, pause or evaluate/,
      );
      // evaluation: engine.ts's heldOut on the model file sent
      const setting = { solver: "rk4" as const, steps: 2, tol: 1e-3 };
      const n = reports.length;
      send({ type: "evaluate", model: start.slice(), tokens: Int32Array.from(tokens.slice(0, 40)), setting });
      await waitFor(() => reports.length > n);
      assert.deepEqual(reports[n], { type: "evaluated", ...heldOut(modelFromFile(start), tokens.slice(0, 40), setting) });
    } finally {
      g.postMessage = saved;
    }
  });
});
