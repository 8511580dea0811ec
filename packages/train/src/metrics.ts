/**
 * Run output: the metrics log (one JSON object per line) and the console progress display.
 *
 * metrics.jsonl records (all numbers are plain JSON numbers; `elapsed` is wall-clock seconds of training
 * across resumes):
 *   {"type":"train","step":S,"loss":…,"ppl":…,"lr":…,"gradNorm":…,"clipScale":…,"tokens":…,"tokensPerSec":…,"elapsed":…}
 *   {"type":"eval","step":S,"split":"validation","loss":…,"ppl":…,"tokens":…,"batches":…,"elapsed":…}
 *   {"type":"resume","step":S,"from":"<checkpoint folder>"}
 * `step` counts the updates applied so far (the first train record has step 1).
 */
import * as fs from "node:fs";
import cliProgress from "cli-progress";

/** A record of metrics.jsonl. */
export type MetricRecord = { type: string; step: number } & Record<string, number | string | boolean | null>;

/** Appends JSON lines to a file; `truncate` cuts it back to a byte length (used on resume). */
export class MetricsLog {
  private fd: number;
  /** Current size of the file in bytes. */
  bytes: number;

  /** Opens (creating if needed) `file` for appending. */
  constructor(readonly file: string) {
    this.fd = fs.openSync(file, "a");
    this.bytes = fs.fstatSync(this.fd).size;
  }

  /** Appends one record. */
  write(rec: MetricRecord): void {
    const line = Buffer.from(`${JSON.stringify(rec)}\n`, "utf8");
    let off = 0;
    while (off < line.length) off += fs.writeSync(this.fd, line, off, line.length - off);
    this.bytes += line.length;
  }

  /** Flushes the file to disk. */
  sync(): void {
    fs.fsyncSync(this.fd);
  }

  /** Cuts the file back to `bytes` (dropping records written after a checkpoint). */
  truncate(bytes: number): void {
    if (!Number.isInteger(bytes) || bytes < 0)
      throw new Error(`MetricsLog.truncate: byte length must be a non-negative integer, got ${bytes}`);
    if (bytes > this.bytes) {
      throw new Error(
        `MetricsLog.truncate: ${this.file} has ${this.bytes} bytes, fewer than the ${bytes} recorded in the checkpoint; the metrics log does not belong to this checkpoint`,
      );
    }
    fs.ftruncateSync(this.fd, bytes);
    this.bytes = bytes;
  }

  /** Closes the file. */
  close(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}

/** Reads metrics.jsonl records (skips a torn last line). */
export function readMetrics(file: string): MetricRecord[] {
  const text = fs.readFileSync(file, "utf8");
  const out: MetricRecord[] = [];
  const lines = text.split("\n");
  lines.forEach((l, i) => {
    if (l.trim() === "") return;
    try {
      out.push(JSON.parse(l) as MetricRecord);
    } catch (err) {
      if (i !== lines.length - 1) throw new Error(`readMetrics: ${file} line ${i + 1} is not JSON (${(err as Error).message})`);
    }
  });
  return out;
}

/** How progress is shown. */
export type ProgressMode = "auto" | "bar" | "plain" | "none";

/** Live values shown with the progress. */
export interface ProgressValues {
  loss: number;
  lr: number;
  tokensPerSec: number;
}

/** Console progress: a cli-progress bar with ETA and live loss on a TTY, plain log lines otherwise. */
export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private readonly mode: "bar" | "plain" | "none";
  private readonly every: number;
  private lastPrint = 0;
  private startTime = 0;
  private startStep = 0;

  /** `log` prints plain lines (default console.log); `stream` is what the bar draws on (default stderr). */
  constructor(
    mode: ProgressMode,
    private readonly total: number,
    private readonly log: (msg: string) => void = (m) => console.log(m),
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.mode = mode === "auto" ? (stream.isTTY ? "bar" : "plain") : mode;
    this.every = Math.max(1, Math.round(total / 50));
  }

  /** Starts the display at `step`. */
  start(step: number): void {
    this.startTime = performance.now();
    this.startStep = step;
    if (this.mode === "bar") {
      this.bar = new cliProgress.SingleBar(
        {
          format: "{bar} {percentage}% | step {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted}",
          stream: this.stream,
          hideCursor: true,
          etaBuffer: 20,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(this.total, step, { loss: "-", lr: "-", tps: "-" });
    }
  }

  /** Reports the state after `step` updates. */
  update(step: number, v: ProgressValues): void {
    if (this.bar) {
      this.bar.update(step, { loss: v.loss.toFixed(4), lr: v.lr.toExponential(2), tps: Math.round(v.tokensPerSec) });
      return;
    }
    if (this.mode !== "plain") return;
    const now = performance.now();
    if (step % this.every !== 0 && step !== this.total && step !== this.startStep + 1 && now - this.lastPrint < 30_000) return;
    this.lastPrint = now;
    const done = step - this.startStep;
    const rate = done > 0 ? (now - this.startTime) / done : 0;
    const eta = Math.round(((this.total - step) * rate) / 1000);
    this.log(
      `step ${step}/${this.total} | loss ${v.loss.toFixed(4)} | lr ${v.lr.toExponential(2)} | ${Math.round(v.tokensPerSec)} tok/s | ETA ${formatSeconds(eta)}`,
    );
  }

  /** Prints a message without breaking the bar. */
  message(msg: string): void {
    if (this.mode === "none") return;
    if (this.bar) {
      this.stream.write("\r\x1b[K");
      this.log(msg);
      this.bar.render();
      return;
    }
    this.log(msg);
  }

  /** Stops the display. */
  stop(): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = null;
    }
  }
}

/** Seconds as h:mm:ss / m:ss. */
export function formatSeconds(s: number): string {
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(sec).padStart(2, "0")}`;
}
