import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parquetWriteBuffer } from "hyparquet-writer";
import {
  encode,
  encodeDocuments,
  findDataset,
  hfTrainTestSplit,
  listDatasets,
  loadDataset,
  splitWikitextDocuments,
} from "../src/data/index.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const sharedData = process.env["QKVFLOW_SHARED_DATA"] ?? resolve(repoRoot, "../shared/data");
const wt2 = join(sharedData, "wikitext-2");
const owt = join(sharedData, "openwebtext-sample");
const skipWt2 = existsSync(wt2) ? false : `shared data not found at ${wt2}; set QKVFLOW_SHARED_DATA`;
const skipOwt = existsSync(owt) ? false : `shared data not found at ${owt}; set QKVFLOW_SHARED_DATA`;

const root = mkdtempSync(join(tmpdir(), "qkvflow-datasets-test-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => {
  const d = join(root, `case-${n++}`);
  mkdirSync(d, { recursive: true });
  return d;
};

describe("loadDataset from local folders", () => {
  it("lists the data sets", () => {
    assert.deepEqual(listDatasets(), ["wikitext-2", "wikitext-103", "wikitext-103-detokenized", "openwebtext"]);
  });

  it("loads the real WikiText-2 validation/test files, then reads them from the cache", { skip: skipWt2 }, async () => {
    const cacheDir = freshDir();
    const tokenised: string[] = [];
    const ds = await loadDataset({ name: "wikitext-2", dataDir: wt2, cacheDir, onTokenize: (s) => tokenised.push(s) });
    assert.deepEqual(Object.keys(ds).sort(), ["test", "validation"]);
    assert.deepEqual(tokenised.sort(), ["test", "validation"]);
    for (const [split, file] of [
      ["validation", "valid.txt"],
      ["test", "test.txt"],
    ] as const) {
      const docs = splitWikitextDocuments(readFileSync(join(wt2, file), "utf8"));
      const s = ds[split]!;
      assert.equal(s.documents, 60);
      assert.equal(s.name, split);
      assert.deepEqual(s.tokens, Uint16Array.from(encodeDocuments(docs)));
      assert.equal(s.fromCache, false);
      assert.match(s.source, new RegExp(file.replace(".", "\\.")));
    }
    const again = await loadDataset({ name: "wikitext-2", dataDir: wt2, cacheDir, onTokenize: (s) => tokenised.push(s) });
    assert.equal(tokenised.length, 2, "no re-tokenising on the second load");
    assert.equal(again["test"]!.fromCache, true);
    assert.deepEqual(again["test"]!.tokens, ds["test"]!.tokens);
  });

  it("format 'raw' picks the CRLF raw test file; asking for a missing split names what exists", { skip: skipWt2 }, async () => {
    const cacheDir = freshDir();
    const raw = await loadDataset({ name: "wikitext-2", dataDir: wt2, cacheDir, format: "raw" });
    assert.deepEqual(Object.keys(raw), ["test"]);
    assert.equal(raw["test"]!.documents, 62);
    assert.equal(raw["test"]!.tokens[0], encode(" = Robert Boulter = \n")[0]);
    assert.ok(!raw["test"]!.tokens.includes(encode("\r")[0]!), "CR stripped");
    await assert.rejects(loadDataset({ name: "wikitext-2", dataDir: wt2, cacheDir, splits: ["train", "valid"] }), (err: Error) => {
      assert.match(err.message, /has 'wikitext-2' split\(s\) validation, test but not train/);
      assert.match(err.message, /Looked in:/);
      return true;
    });
    const found = await findDataset({ name: "wikitext-2", dataDir: wt2 });
    assert.equal(found.origin, "local");
    assert.deepEqual(Object.keys(found.splits).sort(), ["test", "validation"]);
  });

  it("maxDocuments and one-document-per-line mode", { skip: skipWt2 }, async () => {
    const cacheDir = freshDir();
    const docs = splitWikitextDocuments(readFileSync(join(wt2, "valid.txt"), "utf8"));
    const two = await loadDataset({ name: "wikitext-2", dataDir: wt2, cacheDir, splits: ["validation"], maxDocuments: 2 });
    assert.deepEqual(two["validation"]!.tokens, Uint16Array.from(encodeDocuments(docs.slice(0, 2))));
    const lines = await loadDataset({
      name: "wikitext-2",
      dataDir: wt2,
      cacheDir,
      splits: ["validation"],
      wikitextDocuments: "lines",
      maxDocuments: 3,
    });
    const nonBlank = readFileSync(join(wt2, "valid.txt"), "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "");
    assert.deepEqual(lines["validation"]!.tokens, Uint16Array.from(encodeDocuments(nonBlank.slice(0, 3))));
  });

  it("reads QKVFLOW_DATA when no folder is passed", { skip: skipWt2 }, async () => {
    const saved = process.env["QKVFLOW_DATA"];
    try {
      process.env["QKVFLOW_DATA"] = wt2;
      const found = await findDataset({ name: "wikitext-2", splits: ["test"], cacheDir: freshDir() });
      assert.equal(found.location, resolve(wt2));
    } finally {
      if (saved === undefined) delete process.env["QKVFLOW_DATA"];
      else process.env["QKVFLOW_DATA"] = saved;
    }
  });

  it("OpenWebText sample: a plain text file is one document; only the splits present are returned", { skip: skipOwt }, async () => {
    const dir = freshDir();
    copyFileSync(join(owt, "openwebtext_sample.txt"), join(dir, "train.txt"));
    const ds = await loadDataset({ name: "openwebtext", dataDir: dir, cacheDir: freshDir() });
    assert.deepEqual(Object.keys(ds), ["train"]);
    const text = readFileSync(join(owt, "openwebtext_sample.txt"), "utf8");
    assert.equal(ds["train"]!.documents, 1);
    assert.deepEqual(ds["train"]!.tokens, Uint16Array.from(encodeDocuments([text])));
  });

  it("missing data: the error lists every folder looked in and how to provide the data", { skip: skipOwt }, async () => {
    await assert.rejects(loadDataset({ name: "openwebtext", dataDir: owt, cacheDir: freshDir() }), (err: Error) => {
      const m = err.message;
      assert.match(m, /^loadDataset: no data for 'openwebtext' \(splits: train, validation\)\./);
      assert.ok(m.includes(`${resolve(owt)} (no matching files)`), m);
      assert.ok(m.includes(`${join(resolve(owt), "openwebtext")} (no such folder)`), m);
      assert.match(m, /download: true/);
      assert.match(m, /--data DIR \(or set QKVFLOW_DATA=DIR\)/);
      assert.match(m, /train\.bin \+ val\.bin/);
      return true;
    });
  });

  it("missing data in the cache without download names the cache folder and the URL", async () => {
    const cacheDir = freshDir();
    const saved = process.env["QKVFLOW_DATA"];
    delete process.env["QKVFLOW_DATA"];
    try {
      await assert.rejects(loadDataset({ name: "wikitext-103", cacheDir }), (err: Error) => {
        assert.ok(err.message.includes(join(cacheDir, "extracted", "wikitext-103-raw-v1")), err.message);
        assert.match(err.message, /https:\/\/wikitext\.smerity\.com\/wikitext-103-raw-v1\.zip/);
        return true;
      });
      await assert.rejects(
        loadDataset({ name: "wikitext-103", cacheDir, variant: "parquet", splits: ["test"] }),
        /Salesforce\/wikitext\/resolve\/main\/\{wikitext-103-raw-v1\/train-00000-of-00002\.parquet/,
      );
    } finally {
      if (saved !== undefined) process.env["QKVFLOW_DATA"] = saved;
    }
  });

  it("rejects unknown names, splits and variants", async () => {
    await assert.rejects(
      loadDataset({ name: "pile" }),
      /getDatasetSpec: unknown data set 'pile'; known: wikitext-2, wikitext-103, wikitext-103-detokenized, openwebtext/,
    );
    await assert.rejects(
      loadDataset({ name: "openwebtext", splits: ["test"] }),
      /'openwebtext' has no split\(s\) test; it has train, validation/,
    );
    await assert.rejects(
      loadDataset({ name: "wikitext-2", variant: "torrent", cacheDir: freshDir() }),
      /'wikitext-2' has no variant 'torrent'; variants: zip, parquet/,
    );
    await assert.rejects(
      loadDataset({ name: "wikitext-2", maxDocuments: 0 }),
      /loadDataset: maxDocuments must be a positive integer, got 0/,
    );
  });

  it("nanoGPT train.bin / val.bin are used as they are", async () => {
    const dir = freshDir();
    const train = Uint16Array.from([1, 2, 50256, 3, 50256]);
    const val = Uint16Array.from([7, 50256]);
    writeFileSync(join(dir, "train.bin"), Buffer.from(train.buffer));
    writeFileSync(join(dir, "val.bin"), Buffer.from(val.buffer));
    const ds = await loadDataset({ name: "openwebtext", dataDir: dir, cacheDir: freshDir() });
    assert.deepEqual(ds["train"]!.tokens, train);
    assert.equal(ds["train"]!.documents, 2);
    assert.deepEqual(ds["validation"]!.tokens, val);
  });

  it("local Parquet shards get the held-out split of HF train_test_split(0.0005, seed 2357)", async () => {
    const dir = freshDir();
    const docs = Array.from({ length: 3000 }, (_, i) => `Document number ${i}.`);
    writeFileSync(
      join(dir, "shard-2.parquet"),
      Buffer.from(parquetWriteBuffer({ columnData: [{ name: "text", data: docs.slice(1800), type: "STRING" }], rowGroupSize: 500 })),
    );
    writeFileSync(
      join(dir, "shard-1.parquet"),
      Buffer.from(parquetWriteBuffer({ columnData: [{ name: "text", data: docs.slice(0, 1800), type: "STRING" }], rowGroupSize: 700 })),
    );
    const ds = await loadDataset({ name: "openwebtext", dataDir: dir, cacheDir: freshDir() });
    // NumPy: default_rng(2357).permutation(3000)[:2] == [2276, 1568]
    assert.deepEqual(Array.from(hfTrainTestSplit(3000, 0.0005, 2357).test), [2276, 1568]);
    assert.deepEqual(ds["validation"]!.tokens, Uint16Array.from(encodeDocuments([docs[2276]!, docs[1568]!])));
    const trainDocs = docs.filter((_, i) => i !== 2276 && i !== 1568);
    assert.equal(ds["train"]!.documents, 2998);
    assert.deepEqual(ds["train"]!.tokens, Uint16Array.from(encodeDocuments(trainDocs)));
  });
});
