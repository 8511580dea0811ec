/**
 * Token files for other engines (`qkvflow tokenize`): the splits a configuration's data section resolves to, as
 * one flat file of little-endian uint16 token ids per split plus a small JSON header, so a trainer elsewhere
 * (python/qkvflow_torch memory-maps them with NumPy, as nanoGPT does) trains on exactly the tokens qkvflow would,
 * with the tokenizer and the data-set code kept here.
 *
 *   <dir>/tokens.json      { format: "qkvflow-token-files", version: 1, dtype: "uint16", byteOrder: "little",
 *                            tokenizer, vocabSize, eosId, dataset, source, note, train, eval,
 *                            splits: { <name>: { file: "<name>.bin", tokens: N } } }
 *   <dir>/<split>.bin      N uint16 token ids (documents joined with EOS)
 *
 * `train` and `eval` name the splits the configuration trains and evaluates on (after the split fallback).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { DataConfig } from "./config.js";
import { GPT2_EOS_ID, GPT2_VOCAB_SIZE, type TokenArray } from "./data/index.js";
import { writeFileAtomicSync } from "./checkpoint.js";
import { loadRunData } from "./run-data.js";

/** Format tag of the header. */
export const TOKEN_FILES_FORMAT = "qkvflow-token-files";
/** The header file of a token folder. */
export const TOKEN_FILES_HEADER = "tokens.json";

/** The header of a token folder. */
export interface TokenFilesHeader {
  format: typeof TOKEN_FILES_FORMAT;
  version: 1;
  dtype: "uint16";
  byteOrder: "little";
  tokenizer: "gpt2";
  vocabSize: number;
  eosId: number;
  dataset: string;
  source: string;
  note: string | null;
  train: string;
  eval: string;
  splits: Record<string, { file: string; tokens: number }>;
}

function asUint16(name: string, t: TokenArray): Uint16Array {
  if (t instanceof Uint16Array) return t;
  const out = new Uint16Array(t.length);
  for (let i = 0; i < t.length; i++) {
    const v = t[i]!;
    if (v < 0 || v > 0xffff) throw new Error(`writeTokenFiles: split '${name}' has token id ${v} at ${i}; uint16 files hold ids 0..65535`);
    out[i] = v;
  }
  return out;
}

/** Writes every split of a data section into `dir` (see the module comment); returns the header. */
export async function writeTokenFiles(
  data: DataConfig,
  dir: string,
  log: (m: string) => void = () => undefined,
): Promise<TokenFilesHeader> {
  const rd = await loadRunData(data, log);
  fs.mkdirSync(dir, { recursive: true });
  const splits: TokenFilesHeader["splits"] = {};
  for (const [name, tokens] of Object.entries(rd.splits)) {
    const u16 = asUint16(name, tokens);
    const file = `${name}.bin`;
    // little-endian on disk whatever the host order
    const bytes = new Uint8Array(u16.length * 2);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < u16.length; i++) view.setUint16(2 * i, u16[i]!, true);
    writeFileAtomicSync(path.join(dir, file), bytes);
    splits[name] = { file, tokens: u16.length };
    log(`${name}: ${u16.length.toLocaleString("en-US")} tokens → ${path.join(dir, file)}`);
  }
  const header: TokenFilesHeader = {
    format: TOKEN_FILES_FORMAT,
    version: 1,
    dtype: "uint16",
    byteOrder: "little",
    tokenizer: "gpt2",
    vocabSize: GPT2_VOCAB_SIZE,
    eosId: GPT2_EOS_ID,
    dataset: data.dataset,
    source: rd.source,
    note: rd.note,
    train: rd.train.name,
    eval: rd.eval.name,
    splits,
  };
  writeFileAtomicSync(path.join(dir, TOKEN_FILES_HEADER), `${JSON.stringify(header, null, 2)}\n`);
  return header;
}

/** Reads a token folder's header and splits (as written by `writeTokenFiles`). */
export function readTokenFiles(dir: string): { header: TokenFilesHeader; splits: Record<string, Uint16Array> } {
  const hp = path.join(dir, TOKEN_FILES_HEADER);
  if (!fs.existsSync(hp))
    throw new Error(`readTokenFiles: ${dir} has no ${TOKEN_FILES_HEADER}; expected a folder written by qkvflow tokenize`);
  const header = JSON.parse(fs.readFileSync(hp, "utf8")) as TokenFilesHeader;
  if (header.format !== TOKEN_FILES_FORMAT || header.version !== 1 || header.dtype !== "uint16")
    throw new Error(
      `readTokenFiles: ${hp} is format ${JSON.stringify(header.format)} version ${header.version}; expected ${TOKEN_FILES_FORMAT} version 1`,
    );
  const splits: Record<string, Uint16Array> = {};
  for (const [name, s] of Object.entries(header.splits)) {
    const b = fs.readFileSync(path.join(dir, s.file));
    if (b.length !== 2 * s.tokens) throw new Error(`readTokenFiles: ${s.file} has ${b.length} bytes; the header says ${s.tokens} tokens`);
    const out = new Uint16Array(s.tokens);
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < s.tokens; i++) out[i] = view.getUint16(2 * i, true);
    splits[name] = out;
  }
  return { header, splits };
}
