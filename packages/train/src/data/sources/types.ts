/** Shared types of the data-set sources. */
import type { FetchLike } from "../download.js";

/** Canonical split names; aliases such as `valid` and `val` map onto `validation`. */
export const CANONICAL_SPLITS = ["train", "validation", "test"] as const;

/** Names a split may be stored under, per canonical split. */
export const SPLIT_ALIASES: Readonly<Record<string, readonly string[]>> = {
  train: ["train"],
  validation: ["valid", "validation", "val"],
  test: ["test"],
};

/** Maps a split name or alias to its canonical name. */
export function canonicalSplit(name: string): string {
  const n = name.trim().toLowerCase();
  for (const [canon, aliases] of Object.entries(SPLIT_ALIASES)) if (aliases.includes(n)) return canon;
  return n;
}

/** Where the documents of one split come from, ready to be tokenised (or already tokenised). */
export interface SplitSource {
  /** Canonical split name. */
  split: string;
  /** Files read (their checksums key the token cache). */
  files: string[];
  /** Short format label (`wikitext-lines`, `parquet`, `jsonl`, `nanogpt-bin`, ...). */
  format: string;
  /** Human-readable origin. */
  description: string;
  /** How documents are cut from the files; part of the cache checksum. */
  recipe: string;
  /** The split's documents in order; absent for pre-tokenised sources. */
  documents?: () => AsyncIterable<string>;
  /** A pre-tokenised uint16 file (nanoGPT `train.bin` / `val.bin`), used as is. */
  pretokenized?: string;
}

/** Options that shape how documents are read (shared by all sources). */
export interface DocumentOptions {
  /** WikiText: `articles` (default) groups lines into articles at top-level headings; `lines` makes every non-blank line a document (the Levanter convention for the detokenised rows). */
  wikitextDocuments?: "articles" | "lines";
  /** Keep only the first N documents of each split. */
  maxDocuments?: number;
}

/** Options for fetching a remote variant. */
export interface RemoteOptions {
  cacheDir: string;
  /** Replaces the variant's default URL root (mirror). */
  baseUrl?: string;
  download: boolean;
  progress?: boolean;
  fetchImpl?: FetchLike;
  timeoutMs?: number;
  log: (msg: string) => void;
}

/** A way to obtain a data set from the network into the cache. */
export interface RemoteVariant {
  /** Variant id (`zip`, `parquet`, `jsonl-zst`). */
  id: string;
  /** Default URL root; `baseUrl` replaces it. */
  defaultBaseUrl: string;
  /** One-line description for messages. */
  describe(baseUrl: string): string;
  /**
   * Returns the sources of the wanted splits from the cache, downloading missing files first when
   * `download` is true. Records the folders it looked in into `looked`. Returns undefined when the
   * files are not cached and downloading is off.
   */
  resolve(
    wanted: readonly string[],
    opts: RemoteOptions & DocumentOptions,
    looked: string[],
  ): Promise<Record<string, SplitSource> | undefined>;
}

/** A named data set: local layouts it understands and remote variants it can fetch. */
export interface DatasetSpec {
  name: string;
  description: string;
  /** Splits the data set has. */
  splits: readonly string[];
  /** File names accepted in a local folder, for error messages. */
  localLayouts: string;
  variants: readonly RemoteVariant[];
  /** Looks for the data set in a local folder; records the folders looked in. */
  findLocal(dir: string, opts: DocumentOptions & { format?: string }, looked: string[]): Promise<Record<string, SplitSource>>;
}
