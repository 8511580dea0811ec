/**
 * Downloads with checks and no half-written leftovers.
 *
 * The body is streamed to `<dest>.tmp-<pid>-<random>` while its sha256 is computed; only after the
 * byte count (expected size, else the server's Content-Length) and the checksum (when one is known)
 * match is the file renamed to `dest`. Any failure (HTTP error, timeout, connection dropped mid-way,
 * size or checksum mismatch) removes the temporary file and throws an Error that says how to supply
 * the file locally instead. Redirects are followed (fetch's default). The timeout is an idle timeout:
 * the request fails when no headers or no body bytes arrive for `timeoutMs`.
 */
import { createHash } from "node:crypto";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import cliProgress from "cli-progress";
import { sha256File, tempPathFor } from "./cache.js";

/** The fetch signature the downloader needs (Node's global fetch by default; injectable for tests). */
export type FetchLike = (
  url: string,
  init: { signal: AbortSignal; headers: Record<string, string>; redirect: "follow" },
) => Promise<Response>;

/** Options of `downloadFile`. */
export interface DownloadOptions {
  url: string;
  /** Final path of the file. */
  dest: string;
  /** Expected size in bytes, when known. */
  expectedSize?: number;
  /** Expected sha256 (hex), when known. */
  expectedSha256?: string;
  /** Show a progress bar: default only when the progress stream is a TTY. */
  progress?: boolean;
  /** Where the progress bar is drawn (default process.stderr). */
  progressStream?: NodeJS.WritableStream;
  /** Idle timeout in milliseconds (default 60 000). */
  timeoutMs?: number;
  /** Fetch implementation (default global fetch). */
  fetchImpl?: FetchLike;
  /** Extra advice appended to error messages (e.g. where to put a local copy). */
  hint?: string;
  /** Reuse an existing `dest` (a previous complete download) when it passes the known size/sha256 checks (default true). */
  reuseExisting?: boolean;
}

/** What `downloadFile` produced. */
export interface DownloadResult {
  path: string;
  size: number;
  /** sha256 of the file (absent when an existing file was reused without a known checksum). */
  sha256?: string;
  /** False when an existing, verified file was reused. */
  downloaded: boolean;
}

/** Standard advice for pointing the loader at a local copy. */
export function localCopyHint(fileName: string): string {
  return `To use a local copy instead, download '${fileName}' yourself and pass its folder with --data DIR (or set QKVFLOW_DATA=DIR).`;
}

function isTty(stream: NodeJS.WritableStream): boolean {
  return (stream as NodeJS.WritableStream & { isTTY?: boolean }).isTTY === true;
}

/** Downloads `url` to `dest` atomically, verifying size and sha256 when known. */
export async function downloadFile(opts: DownloadOptions): Promise<DownloadResult> {
  const { url, dest } = opts;
  const hint = opts.hint ?? localCopyHint(basename(dest));
  const fail = (why: string): Error => new Error(`downloadFile: ${url} -> ${dest}: ${why}. Nothing was saved. ${hint}`);
  if (opts.expectedSha256 !== undefined && !/^[0-9a-f]{64}$/i.test(opts.expectedSha256)) {
    throw new Error(`downloadFile: expectedSha256 must be 64 hex characters, got '${opts.expectedSha256}'`);
  }
  if (opts.expectedSize !== undefined && !(Number.isInteger(opts.expectedSize) && opts.expectedSize >= 0)) {
    throw new Error(`downloadFile: expectedSize must be a non-negative integer, got ${opts.expectedSize}`);
  }
  const timeoutMs = opts.timeoutMs ?? 60_000;
  if (!(timeoutMs > 0)) throw new Error(`downloadFile: timeoutMs must be > 0, got ${timeoutMs}`);

  if (opts.reuseExisting ?? true) {
    // Downloads are renamed into place only when complete, so an existing file is whole; check what is known.
    const existing = await stat(dest).catch(() => undefined);
    if (existing?.isFile() === true && (opts.expectedSize === undefined || existing.size === opts.expectedSize)) {
      if (opts.expectedSha256 === undefined) return { path: dest, size: existing.size, downloaded: false };
      const sha = await sha256File(dest);
      if (sha === opts.expectedSha256.toLowerCase()) return { path: dest, size: existing.size, sha256: sha, downloaded: false };
    }
  }

  const fetchImpl: FetchLike = opts.fetchImpl ?? ((u, init) => fetch(u, init));
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const arm = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
  };

  await mkdir(dirname(dest), { recursive: true });
  const tmp = tempPathFor(dest);
  const stream = opts.progressStream ?? process.stderr;
  const showBar = opts.progress ?? isTty(stream);
  let bar: cliProgress.SingleBar | undefined;
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    arm();
    let res: Response;
    try {
      res = await fetchImpl(url, { signal: controller.signal, headers: { "accept-encoding": "identity" }, redirect: "follow" });
    } catch (err) {
      throw fail(timedOut ? `no response within ${timeoutMs} ms` : `request failed (${(err as Error).message})`);
    }
    if (!res.ok) throw fail(`server answered HTTP ${res.status} ${res.statusText}`.trim());
    if (res.body === null) throw fail("response has no body");
    const lengthHeader = res.headers.get("content-length");
    const encoded = (res.headers.get("content-encoding") ?? "identity") !== "identity";
    const headerSize = lengthHeader !== null && !encoded ? Number(lengthHeader) : undefined;
    if (opts.expectedSize !== undefined && headerSize !== undefined && headerSize !== opts.expectedSize) {
      throw fail(`server announces ${headerSize} bytes, expected ${opts.expectedSize}`);
    }
    const total = opts.expectedSize ?? headerSize;

    if (showBar) {
      bar = new cliProgress.SingleBar(
        {
          stream,
          format: `${basename(dest)} [{bar}] {percentage}% | {value}/{total} MiB | {eta}s`,
          noTTYOutput: !isTty(stream),
          notTTYSchedule: 2000,
          hideCursor: false,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total !== undefined ? Math.max(1, Math.round(total / 1048576)) : 0, 0);
    }

    fh = await open(tmp, "w");
    const hash = createHash("sha256");
    let received = 0;
    const reader = res.body.getReader();
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw fail(
          timedOut
            ? `no data for ${timeoutMs} ms after ${received} bytes`
            : `connection failed after ${received} bytes (${(err as Error).message})`,
        );
      }
      if (chunk.done) break;
      arm();
      const bytes = chunk.value;
      hash.update(bytes);
      let off = 0;
      while (off < bytes.length) off += (await fh.write(bytes, off, bytes.length - off)).bytesWritten;
      received += bytes.length;
      if (total !== undefined && received > total) throw fail(`received more than the expected ${total} bytes`);
      bar?.update(Math.round(received / 1048576));
    }
    await fh.close();
    fh = undefined;
    if (total !== undefined && received !== total) throw fail(`received ${received} bytes, expected ${total}`);
    const sha256 = hash.digest("hex");
    if (opts.expectedSha256 !== undefined && sha256 !== opts.expectedSha256.toLowerCase()) {
      throw fail(`sha256 mismatch: got ${sha256}, expected ${opts.expectedSha256.toLowerCase()}`);
    }
    await rename(tmp, dest);
    bar?.stop();
    bar = undefined;
    return { path: dest, size: received, sha256, downloaded: true };
  } catch (err) {
    if (fh !== undefined) await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    controller.abort();
    throw err;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    bar?.stop();
  }
}
