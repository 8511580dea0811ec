import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CHECKPOINT_FILES,
  MODEL_FILE,
  checkpointDirName,
  checkpointStep,
  latestCheckpointDir,
  listCheckpointDirs,
  resolveCheckpointDir,
  checkpointFallbackNote,
  resolveModelFile,
} from "../src/index.js";

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "qkvflow-layout-"));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A checkpoint folder of `step` under run/checkpoints holding `files` (empty files). */
function checkpoint(run: string, step: number, files: readonly string[] = CHECKPOINT_FILES): string {
  const dir = join(run, "checkpoints", checkpointDirName(step));
  mkdirSync(dir, { recursive: true });
  for (const f of files) writeFileSync(join(dir, f), "");
  return dir;
}

test("checkpoint folder names: zero-padded step-N, parsed back; other names are not checkpoints", () => {
  assert.equal(checkpointDirName(100), "step-00000100");
  assert.equal(checkpointDirName(123456789), "step-123456789");
  assert.equal(checkpointStep("step-00000100"), 100);
  assert.equal(checkpointStep("step-123456789"), 123456789);
  for (const n of [".tmp-step-00000100-1-ab", "step-", "step-1x", "latest.json"]) assert.equal(checkpointStep(n), null, n);
});

test("listing and resolving: complete folders only, ascending by step (numerically), latest.json first, then the newest", () => {
  withDir((run) => {
    assert.equal(resolveCheckpointDir(run), null, "a run folder without checkpoints");
    const a = checkpoint(run, 99_999_999);
    const b = checkpoint(run, 100_000_000); // sorts before 'step-99999999' as a string
    checkpoint(run, 200_000_000, [MODEL_FILE]); // incomplete for the trainer
    const root = join(run, "checkpoints");
    assert.deepEqual(
      listCheckpointDirs(root).map((c) => c.dir),
      [a, b],
    );
    assert.equal(resolveCheckpointDir(run), b, "no latest.json: the newest complete folder");
    writeFileSync(join(root, "latest.json"), JSON.stringify({ step: 99_999_999, dir: checkpointDirName(99_999_999) }));
    assert.equal(resolveCheckpointDir(run), a, "latest.json wins");
    assert.equal(resolveCheckpointDir(root), a, "the checkpoints folder works the same");
    assert.equal(resolveCheckpointDir(a), a, "a checkpoint folder is itself");
    writeFileSync(join(root, "latest.json"), JSON.stringify({ step: 200_000_000, dir: checkpointDirName(200_000_000) }));
    assert.equal(resolveCheckpointDir(run), b, "latest.json naming an incomplete folder falls back to the newest complete one");
    // … and the fallback is said, naming what is missing and what is used instead
    const note = checkpointFallbackNote(run);
    assert.match(
      note ?? "",
      /latest\.json names step-200000000, which is incomplete \(no optimizer\.safetensors, state\.json, config\.json\); using step-100000000, the newest complete one/,
    );
    assert.equal(checkpointFallbackNote(run, [MODEL_FILE]), null, "complete enough for a model file: no fallback");
    assert.equal(checkpointFallbackNote(a), null, "a checkpoint folder itself: nothing to say");
    assert.equal(resolveCheckpointDir(run, [MODEL_FILE]), join(root, checkpointDirName(200_000_000)), "complete enough for a model file");
    writeFileSync(join(root, "latest.json"), "{torn");
    assert.equal(latestCheckpointDir(root), b, "an unreadable latest.json falls back too");
    assert.match(checkpointFallbackNote(run) ?? "", /latest\.json cannot be read \(.*\); using step-100000000, the newest complete one/);
    writeFileSync(join(root, "latest.json"), JSON.stringify({ step: 5, dir: checkpointDirName(5) }));
    assert.match(checkpointFallbackNote(root) ?? "", /latest\.json names step-00000005, which does not exist; using step-100000000/);
    writeFileSync(join(root, "latest.json"), JSON.stringify({ step: 100_000_000, dir: checkpointDirName(100_000_000) }));
    assert.equal(checkpointFallbackNote(run), null, "latest.json names a complete folder");
    assert.throws(() => resolveCheckpointDir(join(run, "nope")), /resolveCheckpointDir: '.*nope' does not exist; expected a run folder/);
  });
});

test("resolveModelFile: a file, a folder with model.safetensors, a run folder's latest checkpoint; clear errors", () => {
  withDir((dir) => {
    const run = join(dir, "run");
    const only = checkpoint(run, 3, [MODEL_FILE]); // analysis needs only the model file
    assert.equal(resolveModelFile(run), join(only, MODEL_FILE));
    assert.equal(resolveModelFile(join(only, MODEL_FILE)), join(only, MODEL_FILE));
    const full = checkpoint(run, 4);
    assert.equal(resolveModelFile(run), join(full, MODEL_FILE));
    assert.equal(resolveModelFile(only), join(only, MODEL_FILE));
    mkdirSync(join(dir, "empty"));
    assert.throws(
      () => resolveModelFile(join(dir, "empty")),
      /resolveModelFile: '.*empty' holds no model.safetensors \(nor checkpoints\/step-\*\/model.safetensors\)/,
    );
    assert.throws(
      () => resolveModelFile(join(dir, "missing")),
      /resolveModelFile: '.*missing' does not exist; expected a .safetensors file/,
    );
  });
});
