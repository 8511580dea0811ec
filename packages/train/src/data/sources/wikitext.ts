/**
 * WikiText data sets.
 *
 * - `wikitext-2`, `wikitext-103`: the raw (untokenised) WikiText of Merity et al. (2016). Remote
 *   variants: `zip` (default; the author's mirror `https://wikitext.smerity.com/<name>-raw-v1.zip`,
 *   extracted with fflate) and `parquet` (Hugging Face `Salesforce/wikitext`, config `<name>-raw-v1`).
 * - `wikitext-103-detokenized`: the paper's `dlwh/wikitext_103_detokenized` (JSONL + zstd rows, one
 *   row per non-blank line of WikiText-103, with the ` @-@ `-style tokenisation undone).
 *
 * Every format is read as WikiText lines (Parquet/JSONL rows are lines) and grouped into articles at
 * top-level headings (see documents.ts), or one document per line with `wikitextDocuments: 'lines'`.
 *
 * Local folders may hold, per split (aliases: valid/validation/val), any one of these families:
 * `wiki.<split>.raw`, `wiki.<split>.tokens`, `<split>.txt` (the `.tokens` text is kept as is and just
 * BPE-encoded), `<split>.parquet` / `<split>-*.parquet`, `<split>.jsonl[.zst]` / `<split>_*.jsonl[.zst]`,
 * or such files inside `<split>/` or `data/<split>/` subfolders. When several families are present the
 * one covering the most splits wins (ties: the order above), so splits never mix formats; `format`
 * forces one family.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { extractZipEntries } from "./readers.js";
import { fetchMissing, isFile, listDir, naturalSort, under, wikitextSplitSource, type FileKind } from "./common.js";
import { SPLIT_ALIASES, type DatasetSpec, type DocumentOptions, type RemoteVariant, type SplitSource } from "./types.js";

/** A family of local WikiText files (one naming scheme for all splits). */
export interface WikitextFamily {
  id: string;
  kind: FileKind;
  /** Matches a file directly in the candidate folder for the given alias. */
  direct(alias: string, name: string): boolean;
  /** Matches a file inside a `<alias>/` subfolder. */
  nested(name: string): boolean;
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The local file families, in preference order. */
export const WIKITEXT_FAMILIES: readonly WikitextFamily[] = [
  { id: "raw", kind: "lines", direct: (a, n) => n === `wiki.${a}.raw`, nested: () => false },
  { id: "tokens", kind: "lines", direct: (a, n) => n === `wiki.${a}.tokens`, nested: () => false },
  { id: "txt", kind: "lines", direct: (a, n) => n === `${a}.txt`, nested: () => false },
  {
    id: "parquet",
    kind: "parquet",
    direct: (a, n) => new RegExp(`^${esc(a)}(-.*)?\\.parquet$`).test(n),
    nested: (n) => n.endsWith(".parquet"),
  },
  {
    id: "jsonl",
    kind: "jsonl",
    direct: (a, n) => new RegExp(`^${esc(a)}([-_].*)?\\.jsonl(\\.zst)?$`).test(n),
    nested: (n) => /\.jsonl(\.zst)?$/.test(n),
  },
];

/** Finds, in one folder, the files of each split for one family. */
async function familyFiles(
  dir: string,
  names: readonly string[],
  fam: WikitextFamily,
  splits: readonly string[],
): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const split of splits) {
    const aliases = SPLIT_ALIASES[split] ?? [split];
    let files: string[] = [];
    for (const a of aliases) {
      files = naturalSort(names.filter((n) => fam.direct(a, n))).map((n) => join(dir, n));
      if (files.length > 0) break;
      for (const sub of [a, `data/${a}`]) {
        const subDir = under(dir, sub);
        const subNames = await listDir(subDir);
        if (subNames === undefined) continue;
        files = naturalSort(subNames.filter((n) => fam.nested(n))).map((n) => join(subDir, n));
        if (files.length > 0) break;
      }
      if (files.length > 0) break;
    }
    if (files.length > 0) out[split] = files;
  }
  return out;
}

/** Looks for WikiText files in `dir` and its usual subfolders. */
export async function findWikitextFiles(
  dir: string,
  subfolders: readonly string[],
  splits: readonly string[],
  looked: string[],
  format?: string,
): Promise<{ family: WikitextFamily; files: Record<string, string[]> } | undefined> {
  const families = format === undefined ? WIKITEXT_FAMILIES : WIKITEXT_FAMILIES.filter((f) => f.id === format);
  if (families.length === 0) {
    throw new Error(`findWikitextFiles: unknown format '${format}'; expected one of ${WIKITEXT_FAMILIES.map((f) => f.id).join(", ")}`);
  }
  for (const cand of [dir, ...subfolders.map((s) => join(dir, s))]) {
    const names = await listDir(cand);
    if (names === undefined) {
      looked.push(`${cand} (no such folder)`);
      continue;
    }
    let best: { family: WikitextFamily; files: Record<string, string[]> } | undefined;
    for (const fam of families) {
      const files = await familyFiles(cand, names, fam, splits);
      if (Object.keys(files).length > (best === undefined ? 0 : Object.keys(best.files).length)) best = { family: fam, files };
    }
    if (best !== undefined) {
      looked.push(`${cand} (found ${best.family.id}: ${Object.keys(best.files).join(", ")})`);
      return best;
    }
    looked.push(`${cand} (no matching files)`);
  }
  return undefined;
}

function sourcesFrom(
  found: { family: WikitextFamily; files: Record<string, string[]> },
  opts: DocumentOptions,
): Record<string, SplitSource> {
  const out: Record<string, SplitSource> = {};
  for (const [split, files] of Object.entries(found.files)) {
    out[split] = wikitextSplitSource(split, files, found.family.kind, `wikitext-${found.family.id}`, opts);
  }
  return out;
}

const trimSlash = (u: string): string => u.replace(/\/+$/, "");

/** The author's zip of the raw WikiText (`<base>/<name>-raw-v1.zip`), extracted into the cache. */
function zipVariant(name: string): RemoteVariant {
  const zipBase = `${name}-raw-v1`;
  return {
    id: "zip",
    defaultBaseUrl: "https://wikitext.smerity.com",
    describe: (base) => `${trimSlash(base)}/${zipBase}.zip`,
    async resolve(wanted, opts, looked) {
      const base = trimSlash(opts.baseUrl ?? this.defaultBaseUrl);
      const extracted = join(opts.cacheDir, "extracted", zipBase);
      const fileOf = (split: string): string => join(extracted, `wiki.${split === "validation" ? "valid" : split}.raw`);
      const have = async (): Promise<boolean> => {
        for (const s of wanted) if (!(await isFile(fileOf(s)))) return false;
        return true;
      };
      looked.push(`${extracted} (cache)`);
      if (!(await have())) {
        if (!opts.download) return undefined;
        const zipPath = join(opts.cacheDir, "downloads", `${zipBase}.zip`);
        await fetchMissing([{ url: `${base}/${zipBase}.zip`, dest: zipPath }], opts, `(the archive holds wiki.{train,valid,test}.raw)`);
        opts.log(`extracting ${zipPath}`);
        try {
          await extractZipEntries(zipPath, (entry) => {
            const b = entry.split("/").pop() ?? "";
            return /^wiki\.(train|valid|test)\.raw$/.test(b) ? join(extracted, b) : undefined;
          });
        } catch (err) {
          // a damaged archive would otherwise be reused by every later run
          await rm(zipPath, { force: true });
          throw new Error(
            `${(err as Error).message}. The archive was removed; run again to download it anew, or pass a local copy with --data DIR (QKVFLOW_DATA=DIR).`,
          );
        }
        for (const s of wanted) {
          if (!(await isFile(fileOf(s)))) {
            throw new Error(
              `${name}: ${zipPath} holds no wiki.${s === "validation" ? "valid" : s}.raw; delete it to download again, or pass a local copy with --data DIR (QKVFLOW_DATA)`,
            );
          }
        }
      }
      const out: Record<string, SplitSource> = {};
      for (const s of wanted) out[s] = wikitextSplitSource(s, [fileOf(s)], "lines", "wikitext-raw", opts);
      return out;
    },
  };
}

/** Hugging Face files of a variant, per split, relative to the variant's URL root. */
type RemoteLayout = Readonly<Record<string, readonly string[]>>;

function shardedVariant(id: string, defaultBaseUrl: string, cacheFolder: string, layout: RemoteLayout, kind: FileKind): RemoteVariant {
  return {
    id,
    defaultBaseUrl,
    describe: (base) => `${trimSlash(base)}/{${Object.values(layout).flat().join(",")}}`,
    async resolve(wanted, opts, looked) {
      const base = trimSlash(opts.baseUrl ?? this.defaultBaseUrl);
      const dir = join(opts.cacheDir, "downloads", cacheFolder);
      looked.push(`${dir} (cache)`);
      const files = wanted.flatMap((s) => (layout[s] ?? []).map((rel) => ({ split: s, url: `${base}/${rel}`, dest: under(dir, rel) })));
      let complete = true;
      for (const f of files) if (!(await isFile(f.dest))) complete = false;
      if (!complete) {
        if (!opts.download) return undefined;
        await fetchMissing(files, opts, `(expected layout: ${Object.values(layout).flat().join(", ")})`);
      }
      const out: Record<string, SplitSource> = {};
      for (const s of wanted) {
        const fs = files.filter((f) => f.split === s).map((f) => f.dest);
        out[s] = wikitextSplitSource(s, fs, kind, `wikitext-${id}`, opts);
      }
      return out;
    },
  };
}

function hfParquetVariant(name: string, trainShards: number): RemoteVariant {
  const config = `${name}-raw-v1`;
  const shard = (split: string, i: number, n: number): string =>
    `${config}/${split}-${String(i).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.parquet`;
  return shardedVariant(
    "parquet",
    "https://huggingface.co/datasets/Salesforce/wikitext/resolve/main",
    `${name}-parquet`,
    {
      train: Array.from({ length: trainShards }, (_, i) => shard("train", i, trainShards)),
      validation: [shard("validation", 0, 1)],
      test: [shard("test", 0, 1)],
    },
    "parquet",
  );
}

const LOCAL_LAYOUTS =
  "wiki.{train,valid,test}.raw, wiki.{train,valid,test}.tokens, {train,valid,test}.txt, {train,validation,test}[-*].parquet, {train,validation,test}[_*].jsonl[.zst] (or these inside {split}/ or data/{split}/)";

function wikitextSpec(name: string, description: string, subfolders: readonly string[], variants: readonly RemoteVariant[]): DatasetSpec {
  return {
    name,
    description,
    splits: ["train", "validation", "test"],
    localLayouts: LOCAL_LAYOUTS,
    variants,
    async findLocal(dir, opts, looked) {
      const found = await findWikitextFiles(dir, subfolders, this.splits, looked, opts.format);
      return found === undefined ? {} : sourcesFrom(found, opts);
    },
  };
}

/** WikiText-2 (raw). */
export const wikitext2: DatasetSpec = wikitextSpec(
  "wikitext-2",
  "WikiText-2 raw (600/60/60 Wikipedia articles, ~2.4 M GPT-2 tokens train)",
  ["wikitext-2", "wikitext-2-raw", "wikitext-2-raw-v1", "wikitext-2-v1"],
  [zipVariant("wikitext-2"), hfParquetVariant("wikitext-2", 1)],
);

/** WikiText-103 (raw). */
export const wikitext103: DatasetSpec = wikitextSpec(
  "wikitext-103",
  "WikiText-103 raw (28 475/60/60 Wikipedia articles, ~117 M GPT-2 tokens train)",
  ["wikitext-103", "wikitext-103-raw", "wikitext-103-raw-v1", "wikitext-103-v1"],
  [zipVariant("wikitext-103"), hfParquetVariant("wikitext-103", 2)],
);

/** The paper's detokenised WikiText-103 (`dlwh/wikitext_103_detokenized`). */
export const wikitext103Detokenized: DatasetSpec = wikitextSpec(
  "wikitext-103-detokenized",
  "WikiText-103 detokenised (the paper's dlwh/wikitext_103_detokenized; JSONL + zstd rows = lines)",
  ["wikitext-103-detokenized", "wikitext_103_detokenized"],
  [
    shardedVariant(
      "jsonl-zst",
      "https://huggingface.co/datasets/dlwh/wikitext_103_detokenized/resolve/main",
      "wikitext-103-detokenized",
      {
        train: Array.from({ length: 8 }, (_, i) => `data/train/train_${i}_of_8.jsonl.zst`),
        validation: ["data/validation/validation.jsonl.zst"],
        test: ["data/test/test.jsonl.zst"],
      },
      "jsonl",
    ),
  ],
);
