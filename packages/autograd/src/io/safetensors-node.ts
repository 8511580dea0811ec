/**
 * Reading and writing safetensors files on Node. Writes are atomic: the bytes go to a temporary
 * file in the target's folder, which is flushed to disk (fsync) and then renamed over the target,
 * so a crash or error never leaves a half-written file under the target name.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { decodeSafetensors, encodeSafetensors, type RawTensor, type SafetensorsContents } from "./safetensors.js";

/** Options for the atomic safetensors writers. */
export interface WriteSafetensorsOptions {
  /** Re-read the temporary file and compare it byte for byte with the encoding before renaming (default true). */
  verify?: boolean;
  /** Called with the temporary file's path after it is written and flushed, before verification and rename. */
  beforeRename?: (tempPath: string) => void | Promise<void>;
}

function tempPathFor(file: string): string {
  const dir = path.dirname(path.resolve(file));
  return path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

function wrap(fn: string, file: string, err: unknown): Error {
  const why = err instanceof Error ? err.message : String(err);
  return new Error(`${fn}: '${file}': ${why}`, { cause: err });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Flushes a folder's entry table so a completed rename survives a crash (best effort; not all platforms allow it). */
function syncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // Some platforms (e.g. Windows) cannot open or fsync a folder; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Reads and decodes a safetensors file. */
export async function readSafetensorsFile(file: string): Promise<SafetensorsContents> {
  let buf: Buffer;
  try {
    buf = await fs.promises.readFile(file);
  } catch (err) {
    throw wrap("readSafetensorsFile", file, err);
  }
  try {
    return decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  } catch (err) {
    throw wrap("readSafetensorsFile", file, err);
  }
}

/** Synchronous variant of readSafetensorsFile. */
export function readSafetensorsFileSync(file: string): SafetensorsContents {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw wrap("readSafetensorsFileSync", file, err);
  }
  try {
    return decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  } catch (err) {
    throw wrap("readSafetensorsFileSync", file, err);
  }
}

/** Encodes tensors and writes them atomically to `file` (temp file in the same folder, fsync, rename). */
export async function writeSafetensorsFile(
  file: string,
  tensors: Record<string, RawTensor>,
  metadata?: Record<string, string>,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const fn = "writeSafetensorsFile";
  const bytes = encodeSafetensors(tensors, metadata); // throws before the disk is touched
  const tmp = tempPathFor(file);
  let created = false;
  try {
    const fh = await fs.promises.open(tmp, "wx", 0o644);
    created = true;
    try {
      let off = 0;
      while (off < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, off, bytes.length - off);
        off += bytesWritten;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (options.beforeRename) await options.beforeRename(tmp);
    if (options.verify ?? true) {
      const back = await fs.promises.readFile(tmp);
      if (!sameBytes(back, bytes)) {
        throw new Error(`temporary file ${tmp} does not match the encoded bytes (${back.length} vs ${bytes.length} bytes)`);
      }
    }
    await fs.promises.rename(tmp, file);
    created = false;
    syncDirSync(path.dirname(path.resolve(file)));
  } catch (err) {
    if (created) await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    throw wrap(fn, file, err);
  }
}

/** Synchronous variant of writeSafetensorsFile (a beforeRename hook must then be synchronous). */
export function writeSafetensorsFileSync(
  file: string,
  tensors: Record<string, RawTensor>,
  metadata?: Record<string, string>,
  options: WriteSafetensorsOptions = {},
): void {
  const fn = "writeSafetensorsFileSync";
  const bytes = encodeSafetensors(tensors, metadata);
  const tmp = tempPathFor(file);
  let created = false;
  try {
    const fd = fs.openSync(tmp, "wx", 0o644);
    created = true;
    try {
      let off = 0;
      while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (options.beforeRename) {
      const r = options.beforeRename(tmp);
      if (r instanceof Promise) throw new Error("beforeRename returned a Promise; the sync writer needs a synchronous hook");
    }
    if (options.verify ?? true) {
      const back = fs.readFileSync(tmp);
      if (!sameBytes(back, bytes)) {
        throw new Error(`temporary file ${tmp} does not match the encoded bytes (${back.length} vs ${bytes.length} bytes)`);
      }
    }
    fs.renameSync(tmp, file);
    created = false;
    syncDirSync(path.dirname(path.resolve(file)));
  } catch (err) {
    if (created) fs.rmSync(tmp, { force: true });
    throw wrap(fn, file, err);
  }
}
