import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { listCheckpoints, readMetrics, type MetricRecord } from "../src/index.js";
import { tmpDir } from "../../../test/helpers/tmp.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const child = path.join(here, "fixtures", "train-child.ts");
const root = path.resolve(here, "..", "..", "..");

function start(runDir: string, mode: "fresh" | "resume", sleepMs: number): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", child, runDir, mode, String(sleepMs)], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function finished(p: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  let out = "";
  p.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((res) => p.on("exit", (code, signal) => res({ code, signal, out })));
}

/** Resolves once the run's latest checkpoint is at least `step`. */
async function checkpointReached(runDir: string, step: number, p: ChildProcess): Promise<number> {
  const file = path.join(runDir, "checkpoints", "latest.json");
  for (;;) {
    if (p.exitCode !== null) throw new Error(`child exited (${p.exitCode}) before checkpoint ${step}`);
    try {
      const s = (JSON.parse(fs.readFileSync(file, "utf8")) as { step: number }).step;
      if (s >= step) return s;
    } catch {
      // not written yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

const train = (dir: string): MetricRecord[] => readMetrics(path.join(dir, "metrics.jsonl")).filter((r) => r.type === "train");
const evals = (dir: string): MetricRecord[] => readMetrics(path.join(dir, "metrics.jsonl")).filter((r) => r.type === "eval");
const key = (r: MetricRecord): unknown[] => [r.step, r.loss, r.lr, r.gradNorm, r.epoch];

test("SIGKILL mid-run, then --resume: per-step losses equal the uninterrupted run bit for bit", { timeout: 120_000 }, async () => {
  const ref = tmpDir("qkvflow-kill-ref-");
  const refRun = await finished(start(ref, "fresh", 0));
  assert.equal(refRun.code, 0, refRun.out);
  assert.equal(train(ref).length, 30);

  const dir = tmpDir("qkvflow-kill-");
  const p = start(dir, "fresh", 60);
  const done = finished(p);
  await checkpointReached(dir, 8, p);
  await new Promise((r) => setTimeout(r, 150)); // let it log a few updates past the checkpoint
  p.kill("SIGKILL");
  const killed = await done;
  assert.equal(killed.signal, "SIGKILL");
  const ck = listCheckpoints(dir).at(-1)!.step;
  const logged = train(dir).length;
  assert.ok(ck >= 8 && ck < 30, `killed after checkpoint ${ck}`);
  assert.ok(logged >= ck, `log has ${logged} updates`);

  const resumed = await finished(start(dir, "resume", 0));
  assert.equal(resumed.code, 0, resumed.out);
  assert.match(resumed.out, new RegExp(`resumed from .*step-${String(ck).padStart(8, "0")} at step ${ck}/30`));
  assert.deepEqual(train(dir).map(key), train(ref).map(key));
  assert.deepEqual(
    evals(dir).map((r) => [r.step, r.loss]),
    evals(ref).map((r) => [r.step, r.loss]),
  );
});

test("SIGINT writes a checkpoint at the current update and exits 130; resuming matches too", { timeout: 120_000 }, async () => {
  const ref = tmpDir("qkvflow-int-ref-");
  assert.equal((await finished(start(ref, "fresh", 0))).code, 0);
  const dir = tmpDir("qkvflow-int-");
  const p = start(dir, "fresh", 60);
  const done = finished(p);
  await checkpointReached(dir, 4, p);
  p.kill("SIGINT");
  const r = await done;
  assert.equal(r.code, 130, r.out);
  assert.match(r.out, /interrupt: finishing this update and writing a checkpoint/);
  const last = train(dir).at(-1)!.step;
  assert.equal(listCheckpoints(dir).at(-1)!.step, last, "checkpoint at the last finished update");
  assert.equal((await finished(start(dir, "resume", 0))).code, 0);
  assert.deepEqual(train(dir).map(key), train(ref).map(key));
});
