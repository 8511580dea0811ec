/**
 * Data sets by name, tokenised and cached.
 *
 * `loadDataset({ name })` finds a data set in this order:
 *   1. a local folder: `dataDir`, else `$QKVFLOW_DATA` (the CLI's `--data DIR`);
 *   2. the cache folder (`cacheDir`, else `$QKVFLOW_CACHE`, else `~/.cache/qkvflow`), where earlier
 *      downloads were kept;
 *   3. the network, only when `download: true` (mirror root: `baseUrl`, else `$QKVFLOW_DATA_MIRROR`).
 * If none has the data it throws an Error listing every folder it looked in and how to provide the data.
 * An explicit local folder that holds none of the requested splits is an error too (no silent download).
 *
 * Each split is tokenised with GPT-2 BPE, every document followed by EOS (50256), and cached on disk
 * (see cache.ts), so the second load reads the token file instead of re-tokenising.
 */
import { resolve } from "node:path";
import { cachedTokenize, readTokenFile, resolveCacheDir, sha256Text } from "./cache.js";
import type { FetchLike } from "./download.js";
import { checkDocumentOptions } from "./sources/common.js";
import { openwebtext } from "./sources/openwebtext.js";
import { canonicalSplit, type DatasetSpec, type SplitSource } from "./sources/types.js";
import { wikitext103, wikitext103Detokenized, wikitext2 } from "./sources/wikitext.js";
import { gpt2Tokenizer, type Tokenizer } from "./tokenizer.js";

/** One tokenised split. */
export interface SplitTokens {
  /** Canonical split name (`train`, `validation`, `test`). */
  name: string;
  /** GPT-2 token ids, every document followed by EOS. */
  tokens: Uint16Array;
  /** Number of documents (for pre-tokenised sources: the number of EOS tokens). */
  documents: number;
  /** Where the text came from. */
  source: string;
  /** The cached token file (raw little-endian uint16). */
  tokenFile: string;
  /** True when read from the cache rather than tokenised in this call. */
  fromCache: boolean;
}

const REGISTRY: readonly DatasetSpec[] = [wikitext2, wikitext103, wikitext103Detokenized, openwebtext];

/** Names accepted by `loadDataset`. */
export function listDatasets(): string[] {
  return REGISTRY.map((d) => d.name);
}

/** The specification of a data set by name (throws, listing the known names, when unknown). */
export function getDatasetSpec(name: string): DatasetSpec {
  const spec = REGISTRY.find((d) => d.name === name.trim().toLowerCase());
  if (spec === undefined) throw new Error(`getDatasetSpec: unknown data set '${name}'; known: ${listDatasets().join(", ")}`);
  return spec;
}

/** Options of `findDataset` and `loadDataset`. */
export interface FindDatasetOptions {
  /** Data set name (see `listDatasets()`). */
  name: string;
  /** Local folder with the data; default `$QKVFLOW_DATA`. */
  dataDir?: string;
  /** Cache folder; default `$QKVFLOW_CACHE`, else `~/.cache/qkvflow`. */
  cacheDir?: string;
  /** Splits wanted (aliases such as `valid` accepted); default every split the data set has. */
  splits?: string[];
  /** Allow downloading what is missing (default false). */
  download?: boolean;
  /** Remote variant (`zip` | `parquet` | `jsonl-zst`, per data set); default the data set's first. */
  variant?: string;
  /** Mirror root replacing the variant's default URL root; default `$QKVFLOW_DATA_MIRROR`. */
  baseUrl?: string;
  /** Force a local file family (WikiText: raw, tokens, txt, parquet, jsonl). */
  format?: string;
  /** Progress bars while downloading (default: only on a TTY). */
  progress?: boolean;
  /** Fetch implementation for downloads (default global fetch). */
  fetchImpl?: FetchLike;
  /** Idle timeout of downloads in milliseconds. */
  timeoutMs?: number;
  /** WikiText document unit: `articles` (default) or `lines`. */
  wikitextDocuments?: "articles" | "lines";
  /** Keep only the first N documents of each split. */
  maxDocuments?: number;
  /** Progress messages (default: silent). */
  log?: (msg: string) => void;
}

/** Where a data set was found and which splits it has. */
export interface ResolvedDataset {
  name: string;
  origin: "local" | "cache" | "download";
  /** The folder (local) or variant id (cache/download) the splits come from. */
  location: string;
  /** Splits found (canonical names), with their sources. */
  splits: Record<string, SplitSource>;
  /** Every place looked at, with what was found there. */
  looked: string[];
}

function envDir(name: string): string | undefined {
  const v = process.env[name];
  return v !== undefined && v.trim() !== "" ? v : undefined;
}

function missingDataError(spec: DatasetSpec, wanted: readonly string[], looked: readonly string[], variant: string, mirror: string): Error {
  return new Error(
    [
      `loadDataset: no data for '${spec.name}' (splits: ${wanted.join(", ")}).`,
      "Looked in:",
      ...looked.map((l) => `  - ${l}`),
      "To provide it, either:",
      `  - allow downloading (download: true); variant '${variant}' fetches ${mirror} into the cache folder, or`,
      `  - put the files in a folder and pass it with --data DIR (or set QKVFLOW_DATA=DIR); accepted layouts: ${spec.localLayouts}.`,
    ].join("\n"),
  );
}

/** Finds a data set's splits (local folder, cache, download) without tokenising. */
export async function findDataset(opts: FindDatasetOptions): Promise<ResolvedDataset> {
  const spec = getDatasetSpec(opts.name);
  checkDocumentOptions(opts, "loadDataset");
  const requested = opts.splits?.map(canonicalSplit);
  if (requested !== undefined) {
    if (requested.length === 0)
      throw new Error(`loadDataset: splits is empty; pass undefined for all splits of '${spec.name}' (${spec.splits.join(", ")})`);
    const unknown = requested.filter((s) => !spec.splits.includes(s));
    if (unknown.length > 0)
      throw new Error(`loadDataset: '${spec.name}' has no split(s) ${unknown.join(", ")}; it has ${spec.splits.join(", ")}`);
  }
  const wanted = requested ?? [...spec.splits];
  const looked: string[] = [];
  const docOpts = {
    ...(opts.wikitextDocuments !== undefined ? { wikitextDocuments: opts.wikitextDocuments } : {}),
    ...(opts.maxDocuments !== undefined ? { maxDocuments: opts.maxDocuments } : {}),
  };

  const dataDir = opts.dataDir ?? envDir("QKVFLOW_DATA");
  if (dataDir !== undefined) {
    const dir = resolve(dataDir);
    const found = await spec.findLocal(dir, { ...docOpts, ...(opts.format !== undefined ? { format: opts.format } : {}) }, looked);
    const splits: Record<string, SplitSource> = {};
    for (const s of wanted) if (found[s] !== undefined) splits[s] = found[s]!;
    if (Object.keys(splits).length > 0) {
      if (requested !== undefined && Object.keys(splits).length < requested.length) {
        const missing = requested.filter((s) => splits[s] === undefined);
        throw new Error(
          `loadDataset: ${dir} has '${spec.name}' split(s) ${Object.keys(found).join(", ")} but not ${missing.join(", ")}.\nLooked in:\n${looked.map((l) => `  - ${l}`).join("\n")}`,
        );
      }
      return { name: spec.name, origin: "local", location: dir, splits, looked };
    }
    throw missingDataError(
      spec,
      wanted,
      looked,
      spec.variants[0]?.id ?? "none",
      spec.variants[0]?.describe(spec.variants[0].defaultBaseUrl) ?? "",
    );
  }

  const variant = opts.variant === undefined ? spec.variants[0] : spec.variants.find((v) => v.id === opts.variant);
  if (variant === undefined) {
    throw new Error(`loadDataset: '${spec.name}' has no variant '${opts.variant}'; variants: ${spec.variants.map((v) => v.id).join(", ")}`);
  }
  const baseUrl = opts.baseUrl ?? envDir("QKVFLOW_DATA_MIRROR");
  const remote = {
    cacheDir: resolveCacheDir(opts.cacheDir),
    download: false,
    log: opts.log ?? (() => undefined),
    ...(baseUrl !== undefined ? { baseUrl } : {}),
    ...(opts.progress !== undefined ? { progress: opts.progress } : {}),
    ...(opts.fetchImpl !== undefined ? { fetchImpl: opts.fetchImpl } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...docOpts,
  };
  const cached = await variant.resolve(wanted, remote, looked);
  if (cached !== undefined) return { name: spec.name, origin: "cache", location: variant.id, splits: cached, looked };
  if (opts.download === true) {
    const got = await variant.resolve(wanted, { ...remote, download: true }, []);
    if (got !== undefined) return { name: spec.name, origin: "download", location: variant.id, splits: got, looked };
  }
  throw missingDataError(spec, wanted, looked, variant.id, variant.describe(baseUrl ?? variant.defaultBaseUrl));
}

/** Options of `loadDataset`. */
export interface LoadDatasetOptions extends FindDatasetOptions {
  /** Tokenizer (default GPT-2). */
  tokenizer?: Tokenizer;
  /** Always re-hash sources instead of trusting unchanged size + mtime. */
  rehash?: boolean;
  /** Called when a split is tokenised instead of read from the cache. */
  onTokenize?: (split: string) => void;
}

/** Loads a data set's splits as GPT-2 tokens (from the token cache when valid). */
export async function loadDataset(opts: LoadDatasetOptions): Promise<Record<string, SplitTokens>> {
  const found = await findDataset(opts);
  const tokenizer = opts.tokenizer ?? gpt2Tokenizer;
  const out: Record<string, SplitTokens> = {};
  for (const [split, src] of Object.entries(found.splits)) {
    if (src.pretokenized !== undefined) {
      if (tokenizer.name !== "gpt2") {
        throw new Error(`loadDataset: ${src.pretokenized} holds GPT-2 tokens, but tokenizer '${tokenizer.name}' was requested`);
      }
      const tokens = await readTokenFile(src.pretokenized);
      let documents = 0;
      for (let i = 0; i < tokens.length; i++) if (tokens[i] === tokenizer.eosId) documents++;
      out[split] = { name: split, tokens, documents, source: src.description, tokenFile: src.pretokenized, fromCache: true };
      continue;
    }
    const documentsOf = src.documents;
    if (documentsOf === undefined) throw new Error(`loadDataset: source of split '${split}' has neither documents nor a token file`);
    const key = `${found.name}-${src.format}-${sha256Text(src.files.join("\n")).slice(0, 12)}`;
    const res = await cachedTokenize({
      ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}),
      key,
      split,
      sources: src.files,
      recipe: src.recipe,
      documents: documentsOf,
      tokenizer,
      description: src.description,
      ...(opts.rehash !== undefined ? { rehash: opts.rehash } : {}),
      onTokenize: (s) => {
        opts.log?.(`tokenising ${found.name}/${s}`);
        opts.onTokenize?.(s);
      },
    });
    out[split] = {
      name: split,
      tokens: res.tokens,
      documents: res.meta.documents,
      source: src.description,
      tokenFile: res.tokenFile,
      fromCache: res.fromCache,
    };
  }
  return out;
}
