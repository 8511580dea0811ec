/** Helpers shared by the data-set sources: folder listing, natural sort, document streams per file kind. */
import { readdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { downloadFile, localCopyHint } from "../download.js";
import { wikitextDocuments, wikitextRowToLine } from "../documents.js";
import { readJsonlField, readParquetColumn, readTextLines } from "./readers.js";
import type { DocumentOptions, RemoteOptions, SplitSource } from "./types.js";

/** File names in a folder, or undefined when it is not a readable folder. */
export async function listDir(dir: string): Promise<string[] | undefined> {
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) return undefined;
    return await readdir(dir);
  } catch {
    return undefined;
  }
}

/** True when `path` is an existing regular file. */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Sorts names so that embedded numbers compare numerically (`shard_2` before `shard_10`). */
export function naturalSort(names: readonly string[]): string[] {
  return [...names].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
}

/** Yields at most `max` items (all when max is undefined). */
export async function* limitDocuments(docs: AsyncIterable<string>, max: number | undefined): AsyncGenerator<string> {
  if (max === undefined) {
    yield* docs;
    return;
  }
  if (max <= 0) return;
  let n = 0;
  for await (const d of docs) {
    yield d;
    if (++n >= max) return;
  }
}

/** Validates the document options shared by all sources. */
export function checkDocumentOptions(opts: DocumentOptions, who: string): void {
  if (opts.maxDocuments !== undefined && !(Number.isInteger(opts.maxDocuments) && opts.maxDocuments > 0)) {
    throw new Error(`${who}: maxDocuments must be a positive integer, got ${opts.maxDocuments}`);
  }
  if (opts.wikitextDocuments !== undefined && opts.wikitextDocuments !== "articles" && opts.wikitextDocuments !== "lines") {
    throw new Error(`${who}: wikitextDocuments must be 'articles' or 'lines', got '${String(opts.wikitextDocuments)}'`);
  }
}

/** How rows/lines of a file kind become WikiText lines. */
export type FileKind = "lines" | "parquet" | "jsonl";

async function* wikitextLinesOf(files: readonly string[], kind: FileKind): AsyncGenerator<string> {
  for (const f of files) {
    if (kind === "lines") yield* readTextLines(f);
    else if (kind === "parquet") for await (const row of readParquetColumn(f, "text")) yield wikitextRowToLine(row);
    else for await (const row of readJsonlField(f, "text")) yield wikitextRowToLine(row);
  }
}

/** Non-blank lines, each as its own document. */
async function* lineDocuments(lines: AsyncIterable<string>): AsyncGenerator<string> {
  for await (const l of lines) if (l.trim() !== "") yield l;
}

/** A WikiText split read from line files, Parquet rows or JSONL rows (rows are lines). */
export function wikitextSplitSource(split: string, files: string[], kind: FileKind, format: string, opts: DocumentOptions): SplitSource {
  const mode = opts.wikitextDocuments ?? "articles";
  return {
    split,
    files,
    format,
    description: `${format} ${files.join(", ")}`,
    recipe: `wikitext;${kind};documents=${mode};max=${opts.maxDocuments ?? "all"}`,
    documents: () => {
      const lines = wikitextLinesOf(files, kind);
      return limitDocuments(mode === "articles" ? wikitextDocuments(lines, "auto") : lineDocuments(lines), opts.maxDocuments);
    },
  };
}

/** Joins a folder and a relative path (POSIX separators in the relative part). */
export function under(dir: string, rel: string): string {
  return join(dir, ...rel.split("/"));
}

/**
 * Downloads the files that are not yet at their `dest` (atomically, checking size / sha256 when given). A failure
 * names the file and how to supply a local copy, followed by `hint` when given.
 */
export async function fetchMissing(
  files: readonly { url: string; dest: string; size?: number; sha256?: string }[],
  opts: RemoteOptions,
  hint?: string,
): Promise<void> {
  for (const f of files) {
    if (await isFile(f.dest)) continue;
    opts.log(`downloading ${f.url}`);
    await downloadFile({
      url: f.url,
      dest: f.dest,
      ...(f.size !== undefined ? { expectedSize: f.size } : {}),
      ...(f.sha256 !== undefined ? { expectedSha256: f.sha256 } : {}),
      ...(opts.progress !== undefined ? { progress: opts.progress } : {}),
      ...(opts.fetchImpl !== undefined ? { fetchImpl: opts.fetchImpl } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(hint !== undefined ? { hint: `${localCopyHint(basename(f.dest))} ${hint}` } : {}),
    });
  }
}
