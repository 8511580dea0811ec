/**
 * Checkpoints: a folder per saved step, written atomically. The layout (file names, `latest.json`, how the newest
 * complete checkpoint is found) is @qkvflow/models' checkpoint-layout module; this module writes and reads it:
 *
 *   <run>/checkpoints/step-00000100/
 *       model.safetensors      model state dict in @qkvflow/models' model-file format (encodeModelFile:
 *                              { "qkvflow.format": "qkvflow-model/1", "qkvflow.config": model configuration JSON }),
 *                              so `loadModel(<dir>/model.safetensors)` reads it directly
 *       optimizer.safetensors  AdamW moments m.<name>, v.<name>; __metadata__: count, hyper-parameters
 *       state.json             step, RNG key, data-sampler position, metrics.jsonl length, elapsed time, …
 *       config.json            the training configuration
 *   <run>/checkpoints/latest.json   { "step": 100, "dir": "step-00000100" }
 *
 * Writing: every file goes into a hidden temporary folder next to the final one and is flushed (fsync);
 * the folder is flushed and renamed to its final name, the parent folder is flushed, and only then is
 * latest.json replaced (temp file, fsync, rename) and older checkpoints beyond `keep` removed. A crash at
 * any point leaves the previous complete checkpoint in place; a `step-*` folder exists only once complete.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { decodeSafetensors, encodeSafetensors, type SafetensorsContents, type Tensor } from "@qkvflow/autograd";
import { decodeTextStrict } from "./data/text-check.js";
import {
  CHECKPOINT_FILES,
  CHECKPOINTS_DIR,
  CONFIG_FILE,
  LATEST_FILE,
  MODEL_FILE,
  OPTIMIZER_FILE,
  STATE_FILE,
  checkpointDirName,
  checkpointStep,
  decodeModelFile,
  encodeModelFile,
  listCheckpointDirs,
  resolveCheckpointDir,
} from "@qkvflow/models";

export { checkpointDirName, decodeModelFile, encodeModelFile, resolveCheckpointDir };
/** Layout names the trainer uses (from @qkvflow/models' checkpoint layout). */
export { METRICS_FILE, STATE_FILE } from "@qkvflow/models";

/** Everything a checkpoint holds. */
export interface CheckpointContents {
  /** Model state dict by parameter name. */
  model: Record<string, Tensor>;
  /** Model configuration (stored as JSON in model.safetensors' metadata). */
  modelConfig: unknown;
  /** Optimiser state (AdamW.exportState()). */
  optimizer: SafetensorsContents;
  /** Trainer state (JSON). */
  state: Record<string, unknown>;
  /** Training configuration (JSON). */
  config: unknown;
}

/** A checkpoint read back from disk. */
export interface LoadedCheckpoint extends CheckpointContents {
  /** Folder it was read from. */
  dir: string;
  /** Step recorded in state.json. */
  step: number;
}

function fsyncPath(p: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(p, "r");
    fs.fsyncSync(fd);
  } catch {
    // Folders cannot be opened for fsync on every platform; renames stay atomic regardless.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes `data` to `file` and flushes it (no rename; callers write into a temporary folder). */
function writeSynced(file: string, data: string | Uint8Array): void {
  const fd = fs.openSync(file, "wx", 0o644);
  try {
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let off = 0;
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Replaces `file` atomically: temporary file in the same folder, fsync, rename, fsync of the folder. */
export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    writeSynced(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new Error(`writeFileAtomicSync: could not write '${file}': ${(err as Error).message}`, { cause: err });
  }
  fsyncPath(dir);
}

function removeStale(ckptRoot: string, keepName: string | null): void {
  for (const name of fs.readdirSync(ckptRoot)) {
    if ((name.startsWith(".tmp-") || name.startsWith(".old-")) && name !== keepName) {
      fs.rmSync(path.join(ckptRoot, name), { recursive: true, force: true });
    }
  }
}

/** Step numbers of the complete checkpoints under `<runDir>/checkpoints`, ascending. */
export function listCheckpoints(runDir: string): { step: number; dir: string }[] {
  return listCheckpointDirs(path.join(runDir, CHECKPOINTS_DIR));
}

/** Saves a checkpoint of `step` under `<runDir>/checkpoints` atomically and prunes to the newest `keep`; returns its folder. */
export function saveCheckpoint(runDir: string, step: number, contents: CheckpointContents, keep = 2): string {
  if (!Number.isInteger(step) || step < 0) throw new Error(`saveCheckpoint: step must be a non-negative integer, got ${step}`);
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`saveCheckpoint: keep must be a positive integer, got ${keep}`);
  const root = path.join(runDir, CHECKPOINTS_DIR);
  fs.mkdirSync(root, { recursive: true });
  removeStale(root, null);
  const name = checkpointDirName(step);
  const finalDir = path.join(root, name);
  const tmpDir = path.join(root, `.tmp-${name}-${process.pid}-${randomBytes(4).toString("hex")}`);
  fs.mkdirSync(tmpDir);
  try {
    writeSynced(path.join(tmpDir, MODEL_FILE), encodeModelFile(contents.model, contents.modelConfig));
    writeSynced(path.join(tmpDir, OPTIMIZER_FILE), encodeSafetensors(contents.optimizer.tensors, contents.optimizer.metadata));
    writeSynced(path.join(tmpDir, CONFIG_FILE), `${JSON.stringify(contents.config, null, 2)}\n`);
    writeSynced(path.join(tmpDir, STATE_FILE), `${JSON.stringify({ ...contents.state, step }, null, 2)}\n`);
    fsyncPath(tmpDir);
    if (fs.existsSync(finalDir)) {
      const old = path.join(root, `.old-${name}-${process.pid}-${randomBytes(4).toString("hex")}`);
      fs.renameSync(finalDir, old);
      fs.renameSync(tmpDir, finalDir);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmpDir, finalDir);
    }
    fsyncPath(root);
  } catch (err) {
    fs.rmSync(tmpDir, { recursive: true, force: true });
    throw new Error(`saveCheckpoint: could not write the checkpoint of step ${step} under ${root}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  writeFileAtomicSync(path.join(root, LATEST_FILE), `${JSON.stringify({ step, dir: name })}\n`);
  const all = listCheckpoints(runDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) {
    if (c.dir !== finalDir) fs.rmSync(c.dir, { recursive: true, force: true });
  }
  return finalDir;
}

/**
 * Reads a checkpoint folder (see `resolveCheckpointDir` for what `p` may be). Every error names the folder and
 * the file. state.json's step must match the folder name (`step-N`); `checkTrainerCheckpoint` adds the
 * trainer's own cross-checks.
 */
export function loadCheckpoint(p: string): LoadedCheckpoint {
  const abs = path.resolve(p);
  const isStepDir = checkpointStep(path.basename(abs)) !== null && fs.existsSync(abs) && fs.statSync(abs).isDirectory();
  const dir = isStepDir ? abs : resolveCheckpointDir(p);
  if (dir === null)
    throw new Error(
      `loadCheckpoint: '${p}' has no complete checkpoint (no ${CHECKPOINTS_DIR}/step-* folder with ${CHECKPOINT_FILES.join(", ")})`,
    );
  const where = (f: string): string => path.join(dir, f);
  const missing = CHECKPOINT_FILES.filter((f) => !fs.existsSync(where(f)));
  if (missing.length > 0) throw new Error(`loadCheckpoint: ${dir} lacks ${missing.join(", ")}; expected ${CHECKPOINT_FILES.join(", ")}`);
  const part = <T>(f: string, get: (b: Uint8Array) => T): T => {
    try {
      const b = fs.readFileSync(where(f));
      return get(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    } catch (err) {
      throw new Error(`loadCheckpoint: ${where(f)}: ${(err as Error).message}`, { cause: err });
    }
  };
  const json = (f: string): Record<string, unknown> =>
    part(f, (b) => {
      let v: unknown;
      try {
        v = JSON.parse(decodeTextStrict(b, f));
      } catch (err) {
        throw new Error(`not valid JSON (${(err as Error).message}); expected the JSON object the trainer writes`);
      }
      if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error(`holds ${JSON.stringify(v)}; expected a JSON object`);
      return v as Record<string, unknown>;
    });
  const { model, modelConfig } = part(MODEL_FILE, (b) => decodeModelFile(b, MODEL_FILE));
  const optimizer = part(OPTIMIZER_FILE, (b) => decodeSafetensors(b));
  const state = json(STATE_FILE);
  const config = json(CONFIG_FILE);
  const step = state.step;
  if (typeof step !== "number" || !Number.isInteger(step) || step < 0)
    throw new Error(`loadCheckpoint: ${where(STATE_FILE)} has step ${JSON.stringify(step)}; expected a non-negative integer`);
  const named = checkpointStep(path.basename(dir));
  if (named !== null && named !== step)
    throw new Error(
      `loadCheckpoint: ${where(STATE_FILE)} says step ${step}, but the folder is ${path.basename(dir)} (step ${named}); expected the same step (files from another checkpoint?)`,
    );
  return { dir, step, model, modelConfig, optimizer, state, config };
}

/**
 * The trainer's cross-checks of a loaded checkpoint: the optimiser's update count equals state.json's step
 * (a trainer applies one optimiser update per step), so moments from another checkpoint are not mixed in.
 */
export function checkTrainerCheckpoint(ck: LoadedCheckpoint): void {
  const count = ck.optimizer.metadata.count;
  if (count !== undefined && Number(count) !== ck.step)
    throw new Error(
      `loadCheckpoint: ${path.join(ck.dir, OPTIMIZER_FILE)} holds the optimiser state after ${count} updates, but ${path.join(ck.dir, STATE_FILE)} says step ${ck.step}; expected the same count (files from another checkpoint?)`,
    );
}
