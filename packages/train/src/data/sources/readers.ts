/**
 * Streaming readers for the file formats data sets come in: text lines, Parquet text columns
 * (`hyparquet` + `hyparquet-compressors`, read one row group at a time), JSONL optionally zstd
 * compressed (`fzstd`, streamed), and ZIP archives (`fflate`, streamed entry extraction to disk).
 */
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { Unzip, UnzipInflate } from "fflate";
import { Decompress } from "fzstd";
import { parquetMetadataAsync, parquetRead, type AsyncBuffer, type FileMetaData } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { tempPathFor } from "../cache.js";
import { linesFromChunks } from "../documents.js";

const CHUNK = 1 << 20;

/** Lines of a UTF-8 text file (LF or CRLF), streamed. */
export async function* readTextLines(path: string): AsyncGenerator<string> {
  yield* linesFromChunks(createReadStream(path, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>, path);
}

/** Decompressed chunks of a zstd file, streamed. */
export async function* zstdChunks(path: string): AsyncGenerator<Uint8Array> {
  const out: Uint8Array[] = [];
  const dec = new Decompress((data) => {
    out.push(data);
  });
  let any = false;
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>) {
    any = true;
    try {
      dec.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } catch (err) {
      throw new Error(`zstdChunks: ${path} is not valid zstd data (${(err as Error).message})`);
    }
    while (out.length > 0) yield out.shift()!;
  }
  if (!any) throw new Error(`zstdChunks: ${path} is empty, expected zstd data`);
  try {
    dec.push(new Uint8Array(0), true);
  } catch (err) {
    throw new Error(`zstdChunks: ${path} ends in the middle of a zstd frame (${(err as Error).message})`);
  }
  while (out.length > 0) yield out.shift()!;
}

/** The string field `field` of every line of a JSONL file (`.jsonl` or `.jsonl.zst`), streamed. */
export async function* readJsonlField(path: string, field = "text"): AsyncGenerator<string> {
  const chunks: AsyncIterable<Uint8Array> = path.endsWith(".zst")
    ? zstdChunks(path)
    : (createReadStream(path, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>);
  let n = 0;
  for await (const line of linesFromChunks(chunks, path)) {
    n++;
    if (line.trim() === "") continue;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (err) {
      throw new Error(`readJsonlField: ${path} line ${n} is not valid JSON (${(err as Error).message})`);
    }
    const v = (obj as Record<string, unknown> | null)?.[field];
    if (typeof v !== "string") {
      throw new Error(`readJsonlField: ${path} line ${n} has no string field '${field}'`);
    }
    yield v;
  }
}

/** An AsyncBuffer over a local file for hyparquet (random-access reads). */
export async function fileAsyncBuffer(path: string): Promise<AsyncBuffer & { close(): Promise<void> }> {
  const fh = await open(path, "r");
  const { size } = await fh.stat();
  return {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const stop = Math.min(end ?? size, size);
      const len = Math.max(0, stop - start);
      const buf = new Uint8Array(len);
      let off = 0;
      while (off < len) {
        const { bytesRead } = await fh.read(buf, off, len - off, start + off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      return buf.buffer;
    },
    close: () => fh.close(),
  };
}

/** Parquet footer metadata of a local file. */
export async function parquetFileMetadata(path: string): Promise<FileMetaData> {
  const file = await fileAsyncBuffer(path);
  try {
    return await parquetMetadataAsync(file);
  } catch (err) {
    throw new Error(`parquetFileMetadata: ${path} is not a readable Parquet file (${(err as Error).message})`);
  } finally {
    await file.close();
  }
}

/** Number of rows in a local Parquet file (from its footer). */
export async function parquetRowCount(path: string): Promise<number> {
  return Number((await parquetFileMetadata(path)).num_rows);
}

/** The string column `column` of a local Parquet file, row by row, read one row group at a time. */
export async function* readParquetColumn(path: string, column = "text"): AsyncGenerator<string> {
  const file = await fileAsyncBuffer(path);
  try {
    let metadata: FileMetaData;
    try {
      metadata = await parquetMetadataAsync(file);
    } catch (err) {
      throw new Error(`readParquetColumn: ${path} is not a readable Parquet file (${(err as Error).message})`);
    }
    const names = metadata.schema.slice(1).map((s) => s.name);
    if (!names.includes(column)) {
      throw new Error(`readParquetColumn: ${path} has no column '${column}' (columns: ${names.join(", ")})`);
    }
    let rowStart = 0;
    for (const rg of metadata.row_groups) {
      const rowEnd = rowStart + Number(rg.num_rows);
      let rows: unknown[][] = [];
      await parquetRead({
        file,
        metadata,
        columns: [column],
        rowStart,
        rowEnd,
        compressors,
        onComplete: (r: unknown[][]) => {
          rows = r;
        },
      });
      for (const r of rows) {
        const v = r[0];
        if (v === null || v === undefined) yield "";
        else if (typeof v === "string") yield v;
        else if (v instanceof Uint8Array) yield new TextDecoder().decode(v);
        else throw new Error(`readParquetColumn: ${path} column '${column}' holds ${typeof v}, expected text`);
      }
      rowStart = rowEnd;
    }
  } finally {
    await file.close();
  }
}

/**
 * Extracts entries of a ZIP archive to files, streaming (constant memory). `select` maps an entry name
 * (its path inside the archive) to a destination path, or undefined to skip it. Each destination is
 * written to a temporary file and renamed only when the whole archive was read without error; on any
 * failure no destination is left behind. Returns the destinations written, in archive order.
 */
export async function extractZipEntries(zipPath: string, select: (entryName: string) => string | undefined): Promise<string[]> {
  interface Target {
    name: string;
    tmp: string;
    dest: string;
    fd?: Awaited<ReturnType<typeof open>>;
    done: boolean;
    queue: Promise<void>;
  }
  const targets: Target[] = [];
  let failure: Error | undefined;
  const unzip = new Unzip();
  unzip.register(UnzipInflate);
  unzip.onfile = (file) => {
    const dest = select(file.name);
    if (dest === undefined) return;
    const t: Target = { name: file.name, tmp: tempPathFor(dest), dest, done: false, queue: Promise.resolve() };
    targets.push(t);
    // fflate calls back synchronously; file writes are chained per entry and drained between input chunks.
    t.queue = (async () => {
      await mkdir(dirname(dest), { recursive: true });
      t.fd = await open(t.tmp, "w");
    })();
    file.ondata = (err, data, final) => {
      if (err !== null) {
        failure ??= new Error(`extractZipEntries: ${zipPath} entry '${file.name}' is corrupt (${err.message})`);
        return;
      }
      const copy = data.slice();
      t.queue = t.queue.then(async () => {
        let off = 0;
        while (off < copy.length) off += (await t.fd!.write(copy, off, copy.length - off)).bytesWritten;
        if (final) {
          await t.fd!.close();
          t.fd = undefined;
          t.done = true;
        }
      });
    };
    try {
      file.start();
    } catch (err) {
      failure ??= new Error(
        `extractZipEntries: ${zipPath} entry '${file.name}' uses unsupported compression method ${file.compression} (${(err as Error).message})`,
      );
    }
  };
  const drain = async (): Promise<void> => {
    await Promise.all(targets.map((t) => t.queue));
  };
  try {
    let bytes = 0;
    for await (const chunk of createReadStream(zipPath, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      try {
        unzip.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      } catch (err) {
        failure ??= new Error(`extractZipEntries: ${zipPath} is not a valid ZIP archive (${(err as Error).message})`);
      }
      if (failure !== undefined) throw failure;
      await drain();
    }
    if (bytes === 0) throw new Error(`extractZipEntries: ${zipPath} is empty, expected a ZIP archive`);
    try {
      unzip.push(new Uint8Array(0), true);
    } catch (err) {
      failure ??= new Error(`extractZipEntries: ${zipPath} is not a valid ZIP archive (${(err as Error).message})`);
    }
    await drain();
    if (failure !== undefined) throw failure;
    const unfinished = targets.filter((t) => !t.done);
    if (unfinished.length > 0) {
      throw new Error(
        `extractZipEntries: ${zipPath} ends before ${unfinished.map((t) => `'${t.name}'`).join(", ")} finished (truncated archive?)`,
      );
    }
    for (const t of targets) await rename(t.tmp, t.dest);
    return targets.map((t) => t.dest);
  } catch (err) {
    await drain().catch(() => undefined);
    for (const t of targets) {
      await t.fd?.close().catch(() => undefined);
      await rm(t.tmp, { force: true });
    }
    throw err;
  }
}
