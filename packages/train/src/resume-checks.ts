/**
 * What `--resume` checks before anything in the run folder is touched:
 *
 * - `findResumeCheckpoint`: the latest checkpoint (the folder `latest.json` names, else the newest `step-*`
 *   folder) is loaded in full and cross-checked (`loadCheckpoint`). When it is damaged (a file missing,
 *   truncated or corrupt, parts from different steps) the older `step-*` folders are tried, newest first, and
 *   the newest intact one is reported.
 * - `pickResumeCheckpoint`: a damaged latest checkpoint stops the resume with a message naming the damaged file and the
 *   newest intact checkpoint. Only with `fallback` (CLI `--resume-fallback`) does the run continue from the
 *   intact one; the damaged folders are then kept, renamed `damaged-step-…`, so nothing is lost.
 * - `checkScheduleChange`: the learning-rate schedule depends on train.steps, optimizer.lr, warmupRatio,
 *   minLrRatio and schedule; changing any of them on resume moves the learning rate of the updates still to
 *   come, so it is refused unless asked for (`allowScheduleChange`, CLI `--change-schedule`), and then the
 *   change and the learning rate at the resume step (before → after) are logged.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CHECKPOINTS_DIR, LATEST_FILE, checkpointStep } from "@qkvflow/models";
import { checkTrainerCheckpoint, loadCheckpoint, type LoadedCheckpoint } from "./checkpoint.js";
import type { TrainConfig } from "./config.js";
import { makeSchedule } from "./optim/schedule.js";

/** A checkpoint folder that could not be loaded, and why. */
export interface DamagedCheckpoint {
  dir: string;
  why: string;
}

/** What `findResumeCheckpoint` found in a run folder. */
export interface ResumeSearch {
  /** The latest checkpoint folder (null: the run has none). */
  latest: string | null;
  /** The newest checkpoint that loads, with its contents (null: none). */
  intact: LoadedCheckpoint | null;
  /** Folders newer than `intact` (the latest first) that failed to load. */
  damaged: DamagedCheckpoint[];
}

function stepFolders(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .filter((n) => checkpointStep(n) !== null && fs.statSync(path.join(root, n)).isDirectory())
    .sort((a, b) => checkpointStep(b)! - checkpointStep(a)!);
}

/** The folder latest.json names, when it names an existing step-* folder. */
function latestNamed(root: string): string | null {
  try {
    const j = JSON.parse(fs.readFileSync(path.join(root, LATEST_FILE), "utf8")) as { dir?: unknown };
    if (typeof j.dir === "string" && checkpointStep(j.dir) !== null && fs.existsSync(path.join(root, j.dir))) return j.dir;
  } catch {
    // missing or unreadable: the folders decide
  }
  return null;
}

/** The latest checkpoint of a run folder and the newest one that loads (see the module comment). */
export function findResumeCheckpoint(runDir: string): ResumeSearch {
  const root = path.join(runDir, CHECKPOINTS_DIR);
  const folders = stepFolders(root);
  if (folders.length === 0) return { latest: null, intact: null, damaged: [] };
  const named = latestNamed(root);
  const order = named === null ? folders : [named, ...folders.filter((f) => f !== named && checkpointStep(f)! < checkpointStep(named)!)];
  const damaged: DamagedCheckpoint[] = [];
  for (const name of order) {
    const dir = path.join(root, name);
    try {
      const ck = loadCheckpoint(dir);
      checkTrainerCheckpoint(ck);
      return { latest: path.join(root, order[0]!), intact: ck, damaged };
    } catch (err) {
      damaged.push({ dir, why: (err as Error).message.replace(/^loadCheckpoint: /, "") });
    }
  }
  return { latest: path.join(root, order[0]!), intact: null, damaged };
}

/**
 * The checkpoint to resume a run folder from (null: it has none, start afresh), or an error when the latest is
 * damaged and `fallback` is not set. With `fallback`, damaged folders newer than the intact one are renamed
 * `damaged-step-…` (kept, out of the way of later saves) and the choice is logged.
 */
export function pickResumeCheckpoint(who: string, runDir: string, fallback: boolean, log: (m: string) => void): LoadedCheckpoint | null {
  const r = findResumeCheckpoint(runDir);
  if (r.latest === null) return null;
  if (r.damaged.length === 0) return r.intact;
  const d = r.damaged[0]!;
  const older =
    r.damaged.length > 1
      ? ` (older checkpoints damaged too: ${r.damaged
          .slice(1)
          .map((x) => path.basename(x.dir))
          .join(", ")})`
      : "";
  if (r.intact === null)
    throw new Error(
      `${who}: cannot resume: the latest checkpoint ${d.dir} is damaged: ${d.why}${older}; no intact checkpoint is left in ${runDir}. ` +
        "Restore the damaged files, or start afresh in another run folder (--out)",
    );
  const ok = r.intact;
  if (!fallback)
    throw new Error(
      `${who}: cannot resume: the latest checkpoint ${d.dir} is damaged: ${d.why}${older}. ` +
        `The newest intact checkpoint is ${ok.dir} (step ${ok.step}); to continue from it (the updates after step ${ok.step} are redone), ` +
        "run again with --resume-fallback. Nothing in the run folder was changed",
    );
  for (const x of r.damaged) {
    let to = path.join(path.dirname(x.dir), `damaged-${path.basename(x.dir)}`);
    for (let k = 2; fs.existsSync(to); k++) to = path.join(path.dirname(x.dir), `damaged-${path.basename(x.dir)}-${k}`);
    fs.renameSync(x.dir, to);
    log(`resume: WARNING: checkpoint ${x.dir} is damaged (${x.why}); kept as ${to}`);
  }
  log(`resume: WARNING: continuing from the newest intact checkpoint ${ok.dir} (step ${ok.step}); updates after it are redone`);
  return ok;
}

/** Schedule-shaping keys of a configuration, as dotted names. */
const SCHEDULE_KEYS: readonly [string, (c: TrainConfig) => unknown][] = [
  ["train.steps", (c) => c.train.steps],
  ["optimizer.lr", (c) => c.optimizer.lr],
  ["optimizer.warmupRatio", (c) => c.optimizer.warmupRatio],
  ["optimizer.minLrRatio", (c) => c.optimizer.minLrRatio],
  ["optimizer.schedule", (c) => c.optimizer.schedule],
];

function scheduleOf(c: TrainConfig) {
  const o = c.optimizer;
  return makeSchedule({ lr: o.lr, totalSteps: c.train.steps, warmupRatio: o.warmupRatio, minLrRatio: o.minLrRatio, kind: o.schedule });
}

/**
 * Refuses (or, with `allow`, logs) a learning-rate schedule that differs from the one the checkpoint was trained
 * with. `saved` is the checkpoint's config.json; `step` the checkpoint's step.
 */
export function checkScheduleChange(
  who: string,
  saved: unknown,
  cfg: TrainConfig,
  step: number,
  allow: boolean,
  log: (m: string) => void,
): void {
  const s = saved as TrainConfig;
  if (s === null || typeof s !== "object" || typeof s.train !== "object" || typeof s.optimizer !== "object") return;
  const changes: string[] = [];
  for (const [k, get] of SCHEDULE_KEYS) {
    const a = get(s);
    const b = get(cfg);
    if (a !== undefined && JSON.stringify(a) !== JSON.stringify(b)) changes.push(`${k} ${JSON.stringify(a)} → ${JSON.stringify(b)}`);
  }
  if (changes.length === 0) return;
  let lrs = "";
  try {
    const at = Math.max(0, step);
    lrs = `; the learning rate of the next update (step ${at}) ${allow ? "goes" : "would go"} from ${scheduleOf(s)(at).toExponential(3)} to ${scheduleOf(cfg)(at).toExponential(3)}`;
  } catch {
    // the saved configuration does not build a schedule: the key list says enough
  }
  if (!allow)
    throw new Error(
      `${who}: resuming with a different learning-rate schedule (${changes.join(", ")})${lrs}. ` +
        "Resume with the checkpoint's values to continue exactly, or pass --change-schedule to apply the new schedule from this step",
    );
  log(`resume: schedule changed on request (${changes.join(", ")})${lrs}`);
}
