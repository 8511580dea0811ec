/**
 * On-disk cache of tokenised splits.
 *
 * Layout under the cache folder (default `$QKVFLOW_CACHE`, else `~/.cache/qkvflow`):
 *
 *   tokens/<key>/<split>.<tokenizer>.u16    raw little-endian uint16 token ids (numpy: `np.fromfile(p, '<u2')`)
 *   tokens/<key>/<split>.<tokenizer>.json   metadata (`TokenCacheMeta`)
 *
 * A cache entry is reused only when its metadata names the same tokenizer and the same source
 * checksum: sha256 over the recipe string (how the documents are cut out of the sources) and the
 * sha256 of every source file. To avoid re-hashing multi-gigabyte sources on every start, a file
 * whose size and mtime equal those recorded last time keeps its recorded sha256; pass
 * `rehash: true` to always hash. Every write goes to a temporary file in the same folder and is
 * renamed into place, so an interrupted run never leaves a truncated entry behind (the token file is
 * renamed first, the metadata last; a token file without matching metadata is ignored).
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { assertUint16Vocab, gpt2Tokenizer, TokenBuffer, type Tokenizer } from "./tokenizer.js";

/** Identity of one source file at the time it was hashed. */
export interface SourceFingerprint {
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** Metadata stored next to a cached token file. */
export interface TokenCacheMeta {
  format: "qkvflow-tokens";
  version: 1;
  key: string;
  split: string;
  tokenizer: string;
  vocabSize: number;
  eosId: number;
  dtype: "uint16";
  tokenCount: number;
  documents: number;
  /** sha256 over the recipe and the per-file sha256 values. */
  sourceSha256: string;
  recipe: string;
  sources: SourceFingerprint[];
  description: string;
  created: string;
  tokenizeSeconds: number;
}

/** Default cache folder: `$QKVFLOW_CACHE`, else `~/.cache/qkvflow`. */
export function defaultCacheDir(): string {
  const env = process.env["QKVFLOW_CACHE"];
  if (env !== undefined && env.trim() !== "") return resolve(env);
  return join(homedir(), ".cache", "qkvflow");
}

/** Resolves an explicit cache folder or falls back to `defaultCacheDir()`. */
export function resolveCacheDir(dir?: string): string {
  return dir !== undefined && dir !== "" ? resolve(dir) : defaultCacheDir();
}

/** A temporary sibling path for an atomic write of `path`. */
export function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** Writes a file atomically: temp file in the same folder, then rename over the target. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** sha256 (hex) of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** sha256 (hex) of a string. */
export function sha256Text(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Fingerprints source files, reusing a previous sha256 when size and mtime are unchanged (unless `rehash`). */
export async function fingerprintSources(
  paths: readonly string[],
  previous: readonly SourceFingerprint[] = [],
  rehash = false,
): Promise<SourceFingerprint[]> {
  const out: SourceFingerprint[] = [];
  for (const p of paths) {
    const abs = resolve(p);
    let st;
    try {
      st = await stat(abs);
    } catch {
      throw new Error(`fingerprintSources: source file ${abs} does not exist`);
    }
    const prev = previous.find((f) => f.path === abs);
    if (!rehash && prev !== undefined && prev.size === st.size && prev.mtimeMs === st.mtimeMs) {
      out.push(prev);
    } else {
      out.push({ path: abs, size: st.size, mtimeMs: st.mtimeMs, sha256: await sha256File(abs) });
    }
  }
  return out;
}

/** Combines a recipe string and per-file checksums into the cache's source checksum. */
export function combinedSourceSha256(recipe: string, fingerprints: readonly SourceFingerprint[]): string {
  return sha256Text(`${recipe}\n${fingerprints.map((f) => f.sha256).join("\n")}`);
}

/** Makes a cache key safe as a folder name. */
export function sanitizeKey(key: string): string {
  const s = key.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^\.+/, "_");
  if (s === "") throw new Error(`sanitizeKey: cache key '${key}' has no usable characters`);
  return s;
}

/** Paths of one cache entry. */
export function tokenCachePaths(cacheDir: string, key: string, split: string, tokenizer: string): { tokens: string; meta: string } {
  const dir = join(resolveCacheDir(cacheDir), "tokens", sanitizeKey(key));
  const base = `${sanitizeKey(split)}.${sanitizeKey(tokenizer)}`;
  return { tokens: join(dir, `${base}.u16`), meta: join(dir, `${base}.json`) };
}

/** Reads a whole uint16 token file into memory. */
export async function readTokenFile(path: string, expectedCount?: number): Promise<Uint16Array> {
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    if (size % 2 !== 0) throw new Error(`readTokenFile: ${path} has ${size} bytes, not a whole number of uint16 tokens`);
    if (expectedCount !== undefined && size !== expectedCount * 2) {
      throw new Error(`readTokenFile: ${path} has ${size / 2} tokens, metadata says ${expectedCount}`);
    }
    let out: Uint16Array;
    try {
      out = new Uint16Array(size / 2);
    } catch {
      throw new Error(
        `readTokenFile: ${path} holds ${size / 2} tokens, more than one typed array can hold here; load fewer documents (maxDocuments)`,
      );
    }
    const bytes = new Uint8Array(out.buffer);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(bytes, off, Math.min(1 << 30, size - off), off);
      if (bytesRead === 0) throw new Error(`readTokenFile: ${path} ended after ${off} of ${size} bytes`);
      off += bytesRead;
    }
    return out;
  } finally {
    await fh.close();
  }
}

/** Reads and validates cache metadata; returns undefined when absent or unreadable. */
export async function readTokenCacheMeta(path: string): Promise<TokenCacheMeta | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    const m = JSON.parse(text) as Partial<TokenCacheMeta>;
    if (m.format !== "qkvflow-tokens" || m.version !== 1 || typeof m.tokenCount !== "number" || typeof m.sourceSha256 !== "string") {
      return undefined;
    }
    return m as TokenCacheMeta;
  } catch {
    return undefined;
  }
}

/** What `cachedTokenize` needs to find, validate or build one cache entry. */
export interface CachedTokenizeOptions {
  /** Cache folder; default `defaultCacheDir()`. */
  cacheDir?: string;
  /** Identifies the data set and source variant (becomes a folder name). */
  key: string;
  /** Split name (train / validation / test / ...). */
  split: string;
  /** Files the documents are read from; their checksums decide whether the cache is valid. */
  sources: readonly string[];
  /** How the documents are cut from the sources (format, held-out parameters, limits...). */
  recipe: string;
  /** Produces the split's documents, in order (called only when tokenising). */
  documents: () => AsyncIterable<string> | Iterable<string>;
  tokenizer?: Tokenizer;
  /** Always hash the sources instead of trusting unchanged size + mtime. */
  rehash?: boolean;
  /** Human-readable origin, stored in the metadata. */
  description?: string;
  /** Called once when the split is (re)tokenised rather than read from the cache. */
  onTokenize?: (split: string) => void;
}

/** A tokenised split as held by the cache. */
export interface CachedTokens {
  tokens: Uint16Array;
  meta: TokenCacheMeta;
  fromCache: boolean;
  tokenFile: string;
  metaFile: string;
}

const FLUSH_TOKENS = 1 << 20;

/** Returns a split's tokens from the cache, tokenising (and caching atomically) when absent or stale. */
export async function cachedTokenize(opts: CachedTokenizeOptions): Promise<CachedTokens> {
  const tokenizer = opts.tokenizer ?? gpt2Tokenizer;
  assertUint16Vocab(tokenizer, "cachedTokenize");
  const cacheDir = resolveCacheDir(opts.cacheDir);
  const paths = tokenCachePaths(cacheDir, opts.key, opts.split, tokenizer.name);
  const old = await readTokenCacheMeta(paths.meta);
  const fingerprints = await fingerprintSources(opts.sources, old?.sources ?? [], opts.rehash ?? false);
  const sourceSha256 = combinedSourceSha256(opts.recipe, fingerprints);

  if (old !== undefined && old.tokenizer === tokenizer.name && old.sourceSha256 === sourceSha256) {
    try {
      const tokens = await readTokenFile(paths.tokens, old.tokenCount);
      return { tokens, meta: old, fromCache: true, tokenFile: paths.tokens, metaFile: paths.meta };
    } catch {
      // token file missing or inconsistent with its metadata: rebuild below
    }
  }

  opts.onTokenize?.(opts.split);
  const t0 = performance.now();
  await mkdir(dirname(paths.tokens), { recursive: true });
  const tmp = tempPathFor(paths.tokens);
  const fh = await open(tmp, "w");
  let tokenCount = 0;
  let documents = 0;
  try {
    const buf = new TokenBuffer(FLUSH_TOKENS + 65536);
    const flush = async (): Promise<void> => {
      const v = buf.view();
      if (v.length === 0) return;
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      let off = 0;
      while (off < bytes.length) off += (await fh.write(bytes, off, bytes.length - off)).bytesWritten;
      tokenCount += v.length;
      buf.clear();
    };
    for await (const doc of opts.documents()) {
      if (typeof doc !== "string") {
        throw new Error(`cachedTokenize: document ${documents} of split '${opts.split}' is a ${typeof doc}, expected a string`);
      }
      buf.push(tokenizer.encode(doc));
      buf.pushOne(tokenizer.eosId);
      documents++;
      if (buf.length >= FLUSH_TOKENS) await flush();
    }
    await flush();
    await fh.close();
    await rename(tmp, paths.tokens);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  const meta: TokenCacheMeta = {
    format: "qkvflow-tokens",
    version: 1,
    key: opts.key,
    split: opts.split,
    tokenizer: tokenizer.name,
    vocabSize: tokenizer.vocabSize,
    eosId: tokenizer.eosId,
    dtype: "uint16",
    tokenCount,
    documents,
    sourceSha256,
    recipe: opts.recipe,
    sources: fingerprints,
    description: opts.description ?? opts.sources.join(", "),
    created: new Date().toISOString(),
    tokenizeSeconds: (performance.now() - t0) / 1000,
  };
  await writeFileAtomic(paths.meta, `${JSON.stringify(meta, null, 2)}\n`);
  const tokens = await readTokenFile(paths.tokens, tokenCount);
  return { tokens, meta, fromCache: false, tokenFile: paths.tokens, metaFile: paths.meta };
}
