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
import {
  CHECKPOINT_FILES,
  CHECKPOINTS_DIR,
  CONFIG_FILE,
  LATEST_FILE,
  MODEL_FILE,
  OPTIMIZER_FILE,
  STATE_FILE,
  checkpointDirName,
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

/** Reads a checkpoint folder (see `resolveCheckpointDir` for what `p` may be). */
export function loadCheckpoint(p: string): LoadedCheckpoint {
  const dir = resolveCheckpointDir(p);
  if (dir === null)
    throw new Error(
      `loadCheckpoint: '${p}' has no complete checkpoint (no ${CHECKPOINTS_DIR}/step-* folder with ${CHECKPOINT_FILES.join(", ")})`,
    );
  const read = (f: string): Buffer => fs.readFileSync(path.join(dir, f));
  const json = (f: string): Record<string, unknown> => {
    try {
      return JSON.parse(read(f).toString("utf8")) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`loadCheckpoint: ${path.join(dir, f)} is not valid JSON (${(err as Error).message})`);
    }
  };
  const mb = read(MODEL_FILE);
  const { model, modelConfig } = decodeModelFile(new Uint8Array(mb.buffer, mb.byteOffset, mb.byteLength), path.join(dir, MODEL_FILE));
  const ob = read(OPTIMIZER_FILE);
  const optimizer = decodeSafetensors(new Uint8Array(ob.buffer, ob.byteOffset, ob.byteLength));
  const state = json(STATE_FILE);
  const step = state.step;
  if (typeof step !== "number" || !Number.isInteger(step) || step < 0)
    throw new Error(`loadCheckpoint: ${path.join(dir, STATE_FILE)} has step ${JSON.stringify(step)}; expected a non-negative integer`);
  return { dir, step, model, modelConfig, optimizer, state, config: json(CONFIG_FILE) };
}
