/**
 * The run and checkpoint folder layout, in one place: what the trainer writes and what the trainer, the
 * evaluation, the CLI and the analysis read.
 *
 *   <run>/config.json                       the training configuration
 *   <run>/metrics.jsonl                     one JSON record per line
 *   <run>/checkpoints/latest.json           { "step": 100, "dir": "step-00000100" }
 *   <run>/checkpoints/step-00000100/        one folder per saved step, complete once it has its name:
 *       model.safetensors                   the model (format of `saveModel`: metadata qkvflow.format / qkvflow.config)
 *       optimizer.safetensors               optimiser state
 *       state.json                          trainer state (step, RNG key, sampler position, …)
 *       config.json                         the training configuration
 *
 * Finding a checkpoint: `latest.json` names the newest one; when it is missing, unreadable or names a folder
 * that is not complete, the newest complete `step-*` folder is used instead (the previous checkpoint survives
 * a crash while the next one is written). Writing (atomic folders, pruning) is the trainer's business.
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** The model file of a checkpoint folder. */
export const MODEL_FILE = "model.safetensors";
/** The optimiser state of a checkpoint folder. */
export const OPTIMIZER_FILE = "optimizer.safetensors";
/** The trainer state of a checkpoint folder. */
export const STATE_FILE = "state.json";
/** The training configuration, in a run folder and in each checkpoint folder. */
export const CONFIG_FILE = "config.json";
/** The metrics log of a run folder. */
export const METRICS_FILE = "metrics.jsonl";
/** The folder of a run holding its checkpoints. */
export const CHECKPOINTS_DIR = "checkpoints";
/** The pointer to the newest checkpoint, inside the checkpoints folder. */
export const LATEST_FILE = "latest.json";
/** The files a complete trainer checkpoint folder holds. */
export const CHECKPOINT_FILES: readonly string[] = [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, CONFIG_FILE];

/** Folder name of the checkpoint of `step` (`step-00000100`). */
export function checkpointDirName(step: number): string {
  return `step-${String(step).padStart(8, "0")}`;
}

/** The step of a checkpoint folder name, or null for other names. */
export function checkpointStep(name: string): number | null {
  const m = /^step-(\d+)$/.exec(name);
  return m === null ? null : Number(m[1]);
}

/** Whether `dir` holds every file of `files` (default: a complete trainer checkpoint). */
export function isCheckpointDir(dir: string, files: readonly string[] = CHECKPOINT_FILES): boolean {
  return files.every((f) => fs.existsSync(path.join(dir, f)));
}

/** The checkpoints folder of a run folder, or the folder itself when it has no `checkpoints` inside (a checkpoints folder). */
export function checkpointsRoot(dir: string): string {
  const inner = path.join(dir, CHECKPOINTS_DIR);
  return fs.existsSync(inner) ? inner : dir;
}

/** The `step-*` folders of a checkpoints folder that hold every file of `files`, ascending by step. */
export function listCheckpointDirs(root: string, files: readonly string[] = CHECKPOINT_FILES): { step: number; dir: string }[] {
  if (!fs.existsSync(root)) return [];
  const out: { step: number; dir: string }[] = [];
  for (const name of fs.readdirSync(root)) {
    const step = checkpointStep(name);
    if (step === null) continue;
    const dir = path.join(root, name);
    if (isCheckpointDir(dir, files)) out.push({ step, dir });
  }
  return out.sort((a, b) => a.step - b.step);
}

/**
 * The newest checkpoint folder of a checkpoints folder that holds every file of `files`: the one `latest.json`
 * names, else the newest such `step-*` folder; null when there is none.
 */
export function latestCheckpointDir(root: string, files: readonly string[] = CHECKPOINT_FILES): string | null {
  const latest = path.join(root, LATEST_FILE);
  if (fs.existsSync(latest)) {
    try {
      const j = JSON.parse(fs.readFileSync(latest, "utf8")) as { dir?: unknown };
      if (typeof j.dir === "string") {
        const d = path.join(root, j.dir);
        if (isCheckpointDir(d, files)) return d;
      }
    } catch {
      // unreadable: fall back to the folders themselves
    }
  }
  return listCheckpointDirs(root, files).at(-1)?.dir ?? null;
}

/**
 * Why `resolveCheckpointDir(p, files)` did not take the checkpoint `latest.json` names, or null when it did (or `p`
 * is a checkpoint folder or a file itself): `latest.json` names a folder that is missing or incomplete, or cannot be
 * read. For tools that read a run (eval, generate, analyze), so that a fallback to an older checkpoint is said.
 */
export function checkpointFallbackNote(p: string, files: readonly string[] = CHECKPOINT_FILES): string | null {
  const abs = path.resolve(p);
  if (!fs.existsSync(abs) || fs.statSync(abs).isFile() || isCheckpointDir(abs, files)) return null;
  const root = checkpointsRoot(abs);
  const latest = path.join(root, LATEST_FILE);
  if (!fs.existsSync(latest)) return null;
  const chosen = latestCheckpointDir(root, files);
  const using = chosen === null ? "no complete checkpoint is left" : `using ${path.basename(chosen)}, the newest complete one`;
  let named: unknown;
  try {
    named = (JSON.parse(fs.readFileSync(latest, "utf8")) as { dir?: unknown }).dir;
  } catch (e) {
    return `${latest} cannot be read (${(e as Error).message}); ${using}`;
  }
  if (typeof named !== "string") return `${latest} names no checkpoint folder ('dir'); ${using}`;
  const d = path.join(root, named);
  if (isCheckpointDir(d, files)) return null;
  if (!fs.existsSync(d)) return `${latest} names ${named}, which does not exist; ${using}`;
  const missing = files.filter((f) => !fs.existsSync(path.join(d, f)));
  return `${latest} names ${named}, which is incomplete (no ${missing.join(", ")}); ${using}`;
}

/**
 * A checkpoint folder from a path that is one (holds every file of `files`), a run folder (its latest checkpoint)
 * or a checkpoints folder; null when it holds no checkpoint yet. Throws when `p` does not exist.
 */
export function resolveCheckpointDir(p: string, files: readonly string[] = CHECKPOINT_FILES): string | null {
  const abs = path.resolve(p);
  if (!fs.existsSync(abs))
    throw new Error(
      `resolveCheckpointDir: '${p}' does not exist; expected a run folder, its checkpoints folder or a step-* checkpoint folder`,
    );
  if (isCheckpointDir(abs, files)) return abs;
  return latestCheckpointDir(checkpointsRoot(abs), files);
}

/** The model file a path stands for: a file itself, a folder with model.safetensors, or a run folder's latest checkpoint. */
export function resolveModelFile(p: string): string {
  const abs = path.resolve(p);
  if (!fs.existsSync(abs))
    throw new Error(`resolveModelFile: '${p}' does not exist; expected a .safetensors file, a checkpoint folder or a run folder`);
  if (fs.statSync(abs).isFile()) return abs;
  const dir = resolveCheckpointDir(abs, [MODEL_FILE]);
  if (dir === null) throw new Error(`resolveModelFile: '${p}' holds no ${MODEL_FILE} (nor ${CHECKPOINTS_DIR}/step-*/${MODEL_FILE})`);
  return path.join(dir, MODEL_FILE);
}
