/**
 * OpenWebText with the paper's held-out split.
 *
 * The paper (like nanoGPT and flash-attention) takes Hugging Face `Skylion007/openwebtext` (one
 * `train` split of 8 013 769 documents) and calls `train_test_split(test_size=0.0005, seed=2357,
 * shuffle=True)`; the 4 007-document `test` part is the validation set. `hfTrainTestSplit`
 * re-implements that call bit for bit (NumPy's SeedSequence + PCG64 + `Generator.permutation`,
 * checked against NumPy), so given the rows in the data set's order the validation documents are the
 * same documents, in the same order. The train documents are the same set, but are emitted in file
 * order rather than in the permuted order Hugging Face returns (reading 8 M rows in random order from
 * Parquet would be very slow); the batcher shuffles windows anyway. `maxDocuments` truncates each
 * split after the split is made.
 *
 * Remote: the Parquet shards listed by the Hugging Face dataset viewer
 * (`<base>/parquet?dataset=Skylion007/openwebtext`, base `https://datasets-server.huggingface.co`),
 * downloaded into the cache in listing order; a partial conversion is refused because its row set
 * would give a different split. The listing is saved next to the shards so later runs need no network.
 *
 * Local folders: nanoGPT's `train.bin` + `val.bin` (uint16 GPT-2 tokens, used as they are); Parquet
 * shards `*.parquet` (the unsplit corpus, column `text`, files in natural order); or pre-split
 * `{train,val,validation,test}.jsonl[.zst]` (one document per row, field `text`) or `.txt` (a plain
 * text file has no document boundaries, so each file is one document).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../cache.js";
import { decodeTextStrict } from "../text-check.js";
import { localCopyHint, type FetchLike } from "../download.js";
import { hfTrainTestSplit } from "../numpy-random.js";
import { parquetRowCount, readJsonlField, readParquetColumn } from "./readers.js";
import { fetchMissing, isFile, limitDocuments, listDir, naturalSort } from "./common.js";
import {
  SPLIT_ALIASES,
  type DatasetSpec,
  type DocumentOptions,
  type RemoteOptions,
  type RemoteVariant,
  type SplitSource,
} from "./types.js";

/** The paper's held-out fraction. */
export const OWT_TEST_SIZE = 0.0005;
/** The paper's held-out seed. */
export const OWT_SPLIT_SEED = 2357;

/** How rows of a corpus file are read. */
export type RowKind = "parquet" | "jsonl";

async function* rowsOf(files: readonly string[], kind: RowKind): AsyncGenerator<string> {
  for (const f of files) yield* kind === "parquet" ? readParquetColumn(f, "text") : readJsonlField(f, "text");
}

async function countRows(files: readonly string[], kind: RowKind): Promise<number> {
  let n = 0;
  if (kind === "parquet") {
    for (const f of files) n += await parquetRowCount(f);
  } else {
    for await (const _ of rowsOf(files, kind)) n++;
  }
  return n;
}

/** Held-out options (defaults: the paper's 0.0005 and 2357). */
export interface HeldOutOptions {
  testSize?: number;
  seed?: number;
}

/** Train/validation sources over an unsplit corpus, split like HF `train_test_split(test_size, seed)`. */
export function heldOutSources(
  files: string[],
  kind: RowKind,
  opts: DocumentOptions & HeldOutOptions,
  format: string,
): Record<string, SplitSource> {
  const testSize = opts.testSize ?? OWT_TEST_SIZE;
  const seed = opts.seed ?? OWT_SPLIT_SEED;
  const max = opts.maxDocuments;
  const recipe = (split: string): string => `heldout;${kind};test_size=${testSize};seed=${seed};split=${split};max=${max ?? "all"}`;
  const split = async (): Promise<{ n: number; test: Int32Array }> => {
    const n = await countRows(files, kind);
    return { n, test: hfTrainTestSplit(n, testSize, seed).test };
  };
  const validation: SplitSource = {
    split: "validation",
    files,
    format,
    description: `${format} held-out documents (test_size=${testSize}, seed=${seed}) of ${files.join(", ")}`,
    recipe: recipe("validation"),
    documents: async function* () {
      const { test } = await split();
      const keep = max === undefined ? test.length : Math.min(max, test.length);
      const position = new Map<number, number>();
      for (let i = 0; i < keep; i++) position.set(test[i]!, i);
      const docs: (string | undefined)[] = new Array<string | undefined>(keep);
      let found = 0;
      let row = 0;
      for await (const text of rowsOf(files, kind)) {
        const p = position.get(row++);
        if (p !== undefined) {
          docs[p] = text;
          if (++found === keep) break;
        }
      }
      for (const d of docs) if (d !== undefined) yield d;
    },
  };
  const train: SplitSource = {
    split: "train",
    files,
    format,
    description: `${format} documents outside the held-out split (test_size=${testSize}, seed=${seed}) of ${files.join(", ")}`,
    recipe: recipe("train"),
    documents: () =>
      limitDocuments(
        (async function* () {
          const { n, test } = await split();
          const heldOut = new Uint8Array(n);
          for (const i of test) heldOut[i] = 1;
          let row = 0;
          for await (const text of rowsOf(files, kind)) if (heldOut[row++] === 0) yield text;
        })(),
        max,
      ),
  };
  return { train, validation };
}

function preSplitSource(split: string, file: string, opts: DocumentOptions): SplitSource {
  const isText = file.endsWith(".txt");
  return {
    split,
    files: [file],
    format: isText ? "text-file" : "jsonl",
    description: `${isText ? "text file (one document)" : "jsonl rows"} ${file}`,
    recipe: `presplit;${isText ? "txt-one-document" : "jsonl-rows"};max=${opts.maxDocuments ?? "all"}`,
    documents: () =>
      limitDocuments(
        isText
          ? (async function* () {
              yield decodeTextStrict(await readFile(file), file).replace(/\r\n/g, "\n");
            })()
          : readJsonlField(file, "text"),
        opts.maxDocuments,
      ),
  };
}

/** Looks for OpenWebText in a local folder (see the module comment for the layouts). */
async function findOwtLocal(dir: string, opts: DocumentOptions & HeldOutOptions, looked: string[]): Promise<Record<string, SplitSource>> {
  for (const cand of [dir, join(dir, "openwebtext"), join(dir, "plain_text"), join(dir, "plain_text", "train"), join(dir, "data")]) {
    const names = await listDir(cand);
    if (names === undefined) {
      looked.push(`${cand} (no such folder)`);
      continue;
    }
    if (names.includes("train.bin") || names.includes("val.bin")) {
      const out: Record<string, SplitSource> = {};
      for (const [split, file] of [
        ["train", "train.bin"],
        ["validation", "val.bin"],
      ] as const) {
        if (!names.includes(file)) continue;
        const p = join(cand, file);
        out[split] = {
          split,
          files: [p],
          format: "nanogpt-bin",
          description: `nanoGPT uint16 tokens ${p}`,
          recipe: "nanogpt-bin",
          pretokenized: p,
        };
      }
      looked.push(`${cand} (found nanoGPT .bin: ${Object.keys(out).join(", ")})`);
      return out;
    }
    const parquet = naturalSort(names.filter((n) => n.endsWith(".parquet"))).map((n) => join(cand, n));
    if (parquet.length > 0) {
      looked.push(`${cand} (found ${parquet.length} parquet shard(s))`);
      return heldOutSources(parquet, "parquet", opts, "owt-parquet");
    }
    const out: Record<string, SplitSource> = {};
    for (const [split, aliases] of Object.entries(SPLIT_ALIASES)) {
      for (const a of aliases) {
        const hit = [`${a}.jsonl.zst`, `${a}.jsonl`, `${a}.txt`].find((f) => names.includes(f));
        if (hit !== undefined) {
          out[split] = preSplitSource(split, join(cand, hit), opts);
          break;
        }
      }
    }
    if (Object.keys(out).length > 0) {
      looked.push(`${cand} (found pre-split files: ${Object.keys(out).join(", ")})`);
      return out;
    }
    looked.push(`${cand} (no matching files)`);
  }
  return {};
}

/** One entry of the dataset viewer's Parquet listing. */
interface ListedFile {
  url: string;
  filename: string;
  size?: number;
  dest: string;
}

async function fetchJson(url: string, fetchImpl: FetchLike | undefined, timeoutMs: number): Promise<unknown> {
  const f: FetchLike = fetchImpl ?? ((u, init) => fetch(u, init));
  let res: Response;
  try {
    res = await f(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: "application/json" }, redirect: "follow" });
  } catch (err) {
    throw new Error(
      `openwebtext: could not fetch the shard listing ${url} (${(err as Error).message}). ${localCopyHint("*.parquet shards")}`,
    );
  }
  if (!res.ok) throw new Error(`openwebtext: shard listing ${url} answered HTTP ${res.status}. ${localCopyHint("*.parquet shards")}`);
  try {
    return await res.json();
  } catch (err) {
    throw new Error(`openwebtext: shard listing ${url} is not JSON (${(err as Error).message})`);
  }
}

const owtParquetVariant: RemoteVariant = {
  id: "parquet",
  defaultBaseUrl: "https://datasets-server.huggingface.co",
  describe: (base) => `${base.replace(/\/+$/, "")}/parquet?dataset=Skylion007/openwebtext (then the listed shards)`,
  async resolve(wanted, opts: RemoteOptions & DocumentOptions, looked) {
    const dir = join(opts.cacheDir, "downloads", "openwebtext");
    const listingPath = join(dir, "listing.json");
    looked.push(`${dir} (cache)`);
    let files: ListedFile[] | undefined;
    try {
      files = (JSON.parse(await readFile(listingPath, "utf8")) as { files: ListedFile[] }).files.map((f) => ({
        ...f,
        dest: join(dir, f.dest),
      }));
      for (const f of files) if (!(await isFile(f.dest))) files = undefined;
    } catch {
      files = undefined;
    }
    if (files === undefined) {
      if (!opts.download) return undefined;
      const url = `${(opts.baseUrl ?? this.defaultBaseUrl).replace(/\/+$/, "")}/parquet?dataset=Skylion007/openwebtext`;
      opts.log(`listing ${url}`);
      const json = (await fetchJson(url, opts.fetchImpl, opts.timeoutMs ?? 60_000)) as {
        parquet_files?: { split?: string; url?: string; filename?: string; size?: number }[];
        partial?: boolean;
      };
      if (json.partial === true) {
        throw new Error(
          `openwebtext: the listing at ${url} describes a partial Parquet conversion; its rows would give a different held-out split. Download the full shards yourself and pass their folder with --data DIR (or QKVFLOW_DATA=DIR).`,
        );
      }
      const listed = (json.parquet_files ?? []).filter((f) => f.split === "train" && typeof f.url === "string");
      if (listed.length === 0) throw new Error(`openwebtext: the listing at ${url} names no train shards`);
      files = listed.map((f, i) => {
        const filename = f.filename ?? f.url!.split("/").pop()!;
        return {
          url: f.url!,
          filename,
          ...(typeof f.size === "number" ? { size: f.size } : {}),
          dest: join(dir, `${String(i).padStart(5, "0")}-${filename}`),
        };
      });
      await fetchMissing(files, opts);
      await writeFileAtomic(
        listingPath,
        `${JSON.stringify({ source: url, files: files.map((f) => ({ ...f, dest: f.dest.slice(dir.length + 1) })) }, null, 2)}\n`,
      );
    }
    const all = heldOutSources(
      files.map((f) => f.dest),
      "parquet",
      opts,
      "owt-parquet",
    );
    const out: Record<string, SplitSource> = {};
    for (const s of wanted) if (all[s] !== undefined) out[s] = all[s]!;
    return out;
  },
};

/** OpenWebText (Skylion007/openwebtext) with the paper's held-out validation split. */
export const openwebtext: DatasetSpec = {
  name: "openwebtext",
  description: "OpenWebText (8 013 769 documents); validation = HF train_test_split(test_size=0.0005, seed=2357) test part",
  splits: ["train", "validation"],
  localLayouts: "train.bin + val.bin (nanoGPT), *.parquet shards (unsplit; column text), {train,val,validation,test}.jsonl[.zst] or .txt",
  variants: [owtParquetVariant],
  findLocal: (dir, opts, looked) => findOwtLocal(dir, opts, looked),
};
