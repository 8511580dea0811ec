/**
 * Splits for a run: the training tokens and the evaluation split, chosen from a configuration's `data`
 * section through the data pipeline (local folder → cache → download), with the fallback the examples
 * use when a folder has no train split (train on the evaluation split, evaluate on `test`), and a plain
 * text file source (`dataset: 'text'`, the last `heldOutFraction` of its tokens held out as `test`).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { DataConfig } from "./config.js";
import { decodeTextStrict } from "./data/text-check.js";
import { cachedTokenize, canonicalSplit, gpt2Tokenizer, listDatasets, loadDataset, sha256Text, type TokenArray } from "./data/index.js";

/** The splits a run trains and evaluates on. */
export interface RunData {
  train: { name: string; tokens: TokenArray };
  eval: { name: string; tokens: TokenArray };
  /** All splits loaded, by canonical name. */
  splits: Record<string, TokenArray>;
  /** Where the data came from, for logs and checkpoints. */
  source: string;
  /** Set when the split fallback was used (already worded for the log). */
  note: string | null;
}

/** Reads a plain text file as one document, tokenised with GPT-2 BPE (cached), split into train / test by position. */
async function loadTextFile(cfg: DataConfig, log: (m: string) => void): Promise<Record<string, TokenArray>> {
  const file = cfg.dataDir;
  if (file === null) throw new Error("loadRunData: data.dataset 'text' needs data.dataDir (or --data) naming a UTF-8 text file");
  const abs = path.resolve(file);
  if (!fs.existsSync(abs) || !fs.statSync(abs).isFile())
    throw new Error(`loadRunData: data.dataDir '${file}' is not a file; dataset 'text' reads one UTF-8 text file`);
  const res = await cachedTokenize({
    ...(cfg.cacheDir !== null ? { cacheDir: cfg.cacheDir } : {}),
    key: `text-${sha256Text(abs).slice(0, 12)}`,
    split: "all",
    sources: [abs],
    recipe: "whole-file-one-document;utf8-checked",
    documents: () => [decodeTextStrict(fs.readFileSync(abs), abs)],
    tokenizer: gpt2Tokenizer,
    description: abs,
    onTokenize: () => log(`tokenising ${abs}`),
  });
  const n = res.tokens.length;
  const cut = Math.floor(n * (1 - cfg.heldOutFraction));
  if (cut < 2 || n - cut < 2) throw new Error(`loadRunData: ${abs} has ${n} tokens, too few to hold out a fraction ${cfg.heldOutFraction}`);
  const test = res.tokens.subarray(cut);
  return { train: res.tokens.subarray(0, cut), test, validation: test };
}

/** Loads the splits named by a data section (see the module comment). */
export async function loadRunData(cfg: DataConfig, log: (m: string) => void = () => undefined): Promise<RunData> {
  let splits: Record<string, TokenArray>;
  let source: string;
  if (cfg.dataset === "text") {
    splits = await loadTextFile(cfg, log);
    source = `text file ${path.resolve(cfg.dataDir!)}`;
  } else {
    if (!listDatasets().includes(cfg.dataset)) {
      throw new Error(`config: data.dataset is '${cfg.dataset}'; expected one of ${[...listDatasets(), "text"].join(", ")}`);
    }
    const ds = await loadDataset({
      name: cfg.dataset,
      ...(cfg.dataDir !== null ? { dataDir: cfg.dataDir } : {}),
      ...(cfg.cacheDir !== null ? { cacheDir: cfg.cacheDir } : {}),
      download: cfg.download,
      ...(cfg.maxDocuments !== null ? { maxDocuments: cfg.maxDocuments } : {}),
      log,
    });
    splits = {};
    const sources: string[] = [];
    for (const [k, v] of Object.entries(ds)) {
      splits[k] = v.tokens;
      sources.push(`${k}: ${v.source}`);
    }
    source = `${cfg.dataset} (${sources.join("; ")})`;
  }
  const trainName = canonicalSplit(cfg.trainSplit);
  const evalName = canonicalSplit(cfg.evalSplit);
  const have = Object.keys(splits);
  let note: string | null = null;
  let train = { name: trainName, tokens: splits[trainName] };
  let ev = { name: evalName, tokens: splits[evalName] };
  if (train.tokens === undefined) {
    if (!cfg.splitFallback || splits[evalName] === undefined || splits.test === undefined || evalName === "test") {
      throw new Error(
        `loadRunData: ${cfg.dataset} has no '${trainName}' split here (found: ${have.join(", ") || "none"}); ` +
          "provide it, choose another data.trainSplit, or enable data.splitFallback with both an evaluation split and a test split present",
      );
    }
    train = { name: evalName, tokens: splits[evalName]! };
    ev = { name: "test", tokens: splits.test };
    note = `no '${trainName}' split found: training on '${evalName}' and evaluating on 'test' instead`;
  }
  if (ev.tokens === undefined) {
    throw new Error(
      `loadRunData: ${cfg.dataset} has no '${evalName}' split here (found: ${have.join(", ")}); set data.evalSplit to one of them`,
    );
  }
  return { train: { name: train.name, tokens: train.tokens! }, eval: { name: ev.name, tokens: ev.tokens }, splits, source, note };
}
