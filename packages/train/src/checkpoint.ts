/**
 * Checkpoints: a folder per saved step, written atomically.
 *
 *   <run>/checkpoints/step-00000100/
 *       model.safetensors      model state dict; __metadata__ as @qkvflow/models' saveModel writes it
 *                              ({ "qkvflow.format": "qkvflow-model/1", "qkvflow.config": model configuration JSON }),
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
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Tensor } from '@qkvflow/autograd';
import { encodeSafetensors, decodeSafetensors, fromRawTensor, toRawTensor, type RawTensor, type SafetensorsContents } from './safetensors.js';

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

const FILES = ['model.safetensors', 'optimizer.safetensors', 'state.json', 'config.json'] as const;
const FORMAT_KEY = 'qkvflow.format';
const CONFIG_KEY = 'qkvflow.config';
const MODEL_FORMAT = 'qkvflow-model/1';

/** Folder name of the checkpoint of `step`. */
export function checkpointDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

function fsyncPath(p: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(p, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Folders cannot be opened for fsync on every platform; renames stay atomic regardless.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes `data` to `file` and flushes it (no rename; callers write into a temporary folder). */
function writeSynced(file: string, data: string | Uint8Array): void {
  const fd = fs.openSync(file, 'wx', 0o644);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
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
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeSynced(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new Error(`writeFileAtomicSync: could not write '${file}': ${(err as Error).message}`, { cause: err });
  }
  fsyncPath(dir);
}

/** Encodes a model state dict with its configuration in the metadata. */
export function encodeModelFile(model: Record<string, Tensor>, modelConfig: unknown): Uint8Array {
  const raw: Record<string, RawTensor> = {};
  for (const [n, t] of Object.entries(model)) raw[n] = toRawTensor(t);
  return encodeSafetensors(raw, { [FORMAT_KEY]: MODEL_FORMAT, [CONFIG_KEY]: JSON.stringify(modelConfig) });
}

/** Decodes a model file written by `encodeModelFile` or @qkvflow/models' saveModel (configuration in the metadata). */
export function decodeModelFile(bytes: Uint8Array, where = 'model.safetensors'): { model: Record<string, Tensor>; modelConfig: unknown } {
  const c = decodeSafetensors(bytes);
  const model: Record<string, Tensor> = {};
  for (const [n, r] of Object.entries(c.tensors)) model[n] = fromRawTensor(r, n);
  const cfg = c.metadata[CONFIG_KEY];
  if (cfg === undefined) throw new Error(`decodeModelFile: ${where} has no '${CONFIG_KEY}' metadata entry; expected a model file written by qkvflow`);
  let modelConfig: unknown;
  try {
    modelConfig = JSON.parse(cfg);
  } catch (err) {
    throw new Error(`decodeModelFile: ${where} has a '${CONFIG_KEY}' metadata entry that is not JSON (${(err as Error).message})`);
  }
  return { model, modelConfig };
}

function removeStale(ckptRoot: string, keepName: string | null): void {
  for (const name of fs.readdirSync(ckptRoot)) {
    if ((name.startsWith('.tmp-') || name.startsWith('.old-')) && name !== keepName) {
      fs.rmSync(path.join(ckptRoot, name), { recursive: true, force: true });
    }
  }
}

/** Step numbers of the complete checkpoints under `<runDir>/checkpoints`, ascending. */
export function listCheckpoints(runDir: string): { step: number; dir: string }[] {
  const root = path.join(runDir, 'checkpoints');
  if (!fs.existsSync(root)) return [];
  const out: { step: number; dir: string }[] = [];
  for (const name of fs.readdirSync(root)) {
    const m = /^step-(\d+)$/.exec(name);
    if (m === null) continue;
    const dir = path.join(root, name);
    if (FILES.every((f) => fs.existsSync(path.join(dir, f)))) out.push({ step: Number(m[1]), dir });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** Saves a checkpoint of `step` under `<runDir>/checkpoints` atomically and prunes to the newest `keep`; returns its folder. */
export function saveCheckpoint(runDir: string, step: number, contents: CheckpointContents, keep = 2): string {
  if (!Number.isInteger(step) || step < 0) throw new Error(`saveCheckpoint: step must be a non-negative integer, got ${step}`);
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`saveCheckpoint: keep must be a positive integer, got ${keep}`);
  const root = path.join(runDir, 'checkpoints');
  fs.mkdirSync(root, { recursive: true });
  removeStale(root, null);
  const name = checkpointDirName(step);
  const finalDir = path.join(root, name);
  const tmpDir = path.join(root, `.tmp-${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(tmpDir);
  try {
    writeSynced(path.join(tmpDir, 'model.safetensors'), encodeModelFile(contents.model, contents.modelConfig));
    writeSynced(path.join(tmpDir, 'optimizer.safetensors'), encodeSafetensors(contents.optimizer.tensors, contents.optimizer.metadata));
    writeSynced(path.join(tmpDir, 'config.json'), `${JSON.stringify(contents.config, null, 2)}\n`);
    writeSynced(path.join(tmpDir, 'state.json'), `${JSON.stringify({ ...contents.state, step }, null, 2)}\n`);
    fsyncPath(tmpDir);
    if (fs.existsSync(finalDir)) {
      const old = path.join(root, `.old-${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
      fs.renameSync(finalDir, old);
      fs.renameSync(tmpDir, finalDir);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmpDir, finalDir);
    }
    fsyncPath(root);
  } catch (err) {
    fs.rmSync(tmpDir, { recursive: true, force: true });
    throw new Error(`saveCheckpoint: could not write the checkpoint of step ${step} under ${root}: ${(err as Error).message}`, { cause: err });
  }
  writeFileAtomicSync(path.join(root, 'latest.json'), `${JSON.stringify({ step, dir: name })}\n`);
  const all = listCheckpoints(runDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) {
    if (c.dir !== finalDir) fs.rmSync(c.dir, { recursive: true, force: true });
  }
  return finalDir;
}

/**
 * Resolves a checkpoint folder from a run folder (its latest checkpoint), a `checkpoints` folder or a
 * `step-*` folder; returns null when a run folder has no checkpoint yet.
 */
export function resolveCheckpointDir(p: string): string | null {
  const abs = path.resolve(p);
  if (!fs.existsSync(abs)) throw new Error(`resolveCheckpointDir: '${p}' does not exist; expected a run folder, its checkpoints folder or a step-* checkpoint folder`);
  if (FILES.every((f) => fs.existsSync(path.join(abs, f)))) return abs;
  const runDir = path.basename(abs) === 'checkpoints' ? path.dirname(abs) : abs;
  const root = path.join(runDir, 'checkpoints');
  const latest = path.join(root, 'latest.json');
  if (fs.existsSync(latest)) {
    try {
      const j = JSON.parse(fs.readFileSync(latest, 'utf8')) as { dir?: unknown };
      if (typeof j.dir === 'string') {
        const d = path.join(root, j.dir);
        if (FILES.every((f) => fs.existsSync(path.join(d, f)))) return d;
      }
    } catch {
      // fall through to scanning the folders
    }
  }
  const all = listCheckpoints(runDir);
  return all.length > 0 ? all[all.length - 1]!.dir : null;
}

/** Reads a checkpoint folder (see `resolveCheckpointDir` for what `p` may be). */
export function loadCheckpoint(p: string): LoadedCheckpoint {
  const dir = resolveCheckpointDir(p);
  if (dir === null) throw new Error(`loadCheckpoint: '${p}' has no complete checkpoint (no checkpoints/step-* folder with ${FILES.join(', ')})`);
  const read = (f: string): Buffer => fs.readFileSync(path.join(dir, f));
  const json = (f: string): Record<string, unknown> => {
    try {
      return JSON.parse(read(f).toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`loadCheckpoint: ${path.join(dir, f)} is not valid JSON (${(err as Error).message})`);
    }
  };
  const mb = read('model.safetensors');
  const { model, modelConfig } = decodeModelFile(new Uint8Array(mb.buffer, mb.byteOffset, mb.byteLength), path.join(dir, 'model.safetensors'));
  const ob = read('optimizer.safetensors');
  const optimizer = decodeSafetensors(new Uint8Array(ob.buffer, ob.byteOffset, ob.byteLength));
  const state = json('state.json');
  const step = state.step;
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 0) throw new Error(`loadCheckpoint: ${path.join(dir, 'state.json')} has step ${JSON.stringify(step)}; expected a non-negative integer`);
  return { dir, step, model, modelConfig, optimizer, state, config: json('config.json') };
}
