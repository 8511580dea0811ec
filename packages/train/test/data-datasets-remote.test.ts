import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { zipSync } from "fflate";
import { parquetWriteBuffer } from "hyparquet-writer";
import { encodeDocuments, loadDataset, splitWikitextDocuments } from "../src/data/index.js";

// ---- fixtures built at run time -------------------------------------------------------------
const article = (title: string, paras: string[]): string[] => [
  " ",
  ` = ${title} = `,
  " ",
  ...paras.flatMap((p) => [` ${p} `, " "]),
  " = = Notes = = ",
  " ",
  " See also . ",
  " ",
];
const splitText: Record<string, string> = {
  train: [...article("Alpha", ["Alpha is a letter .", "It comes first ."]), ...article("Beta", ["Beta follows alpha ."])].join("\n") + "\n",
  valid: [...article("Gamma", ["Gamma rays are energetic ."])].join("\n") + "\n",
  test: [...article("Delta", ["A delta forms at a river mouth ."]), ...article("Epsilon", ["Small quantity ."])].join("\n") + "\n",
};
const enc = new TextEncoder();
const zipBytes = zipSync({
  "wikitext-2-raw/wiki.train.raw": enc.encode(splitText["train"]!),
  "wikitext-2-raw/wiki.valid.raw": enc.encode(splitText["valid"]!),
  "wikitext-2-raw/wiki.test.raw": enc.encode(splitText["test"]!),
});
/** Hugging Face WikiText rows: a row per line, "\n" kept, blank lines as "". */
const hfRows = (text: string): string[] =>
  text
    .slice(0, -1)
    .split("\n")
    .map((l) => (l.trim() === "" ? "" : `${l}\n`));
const parquetOf = (rows: string[]): Buffer =>
  Buffer.from(parquetWriteBuffer({ columnData: [{ name: "text", data: rows, type: "STRING" }], rowGroupSize: 4 }));

/** A valid zstd frame holding `data` in raw (stored) blocks, per RFC 8878. */
function zstdRawFrame(data: Uint8Array): Buffer {
  const out: number[] = [
    0x28,
    0xb5,
    0x2f,
    0xfd,
    0xa0,
    data.length & 255,
    (data.length >>> 8) & 255,
    (data.length >>> 16) & 255,
    (data.length >>> 24) & 255,
  ];
  let off = 0;
  do {
    const len = Math.min(65536, data.length - off);
    const h = (len << 3) | (off + len === data.length ? 1 : 0);
    out.push(h & 255, (h >>> 8) & 255, (h >>> 16) & 255);
    for (let i = 0; i < len; i++) out.push(data[off + i]!);
    off += len;
  } while (off < data.length);
  return Buffer.from(out);
}
const detokRows = ["= Gamma =", "Gamma rays are energetic.", "= = Notes = =", "See also.", "= Zeta =", "Zeta is the sixth letter."];
const detokJsonl = zstdRawFrame(enc.encode(detokRows.map((t) => JSON.stringify({ text: t })).join("\n") + "\n"));

const owtDocs = Array.from({ length: 3000 }, (_, i) => `Web page ${i} says hello.\n\nSecond paragraph ${i % 7}.`);
const owtShards = [parquetOf(owtDocs.slice(0, 1200)), parquetOf(owtDocs.slice(1200))];

// ---- server ---------------------------------------------------------------------------------
const hits = new Map<string, number>();
const bodies = new Map<string, Buffer | string>();
let server: Server;
let base = "";
let partialListing = false;

before(async () => {
  bodies.set("/smerity/wikitext-2-raw-v1.zip", Buffer.from(zipBytes));
  bodies.set("/broken/wikitext-2-raw-v1.zip", Buffer.from(zipBytes.subarray(0, Math.floor(zipBytes.length / 2))));
  for (const [split, key] of [
    ["train", "train"],
    ["validation", "valid"],
    ["test", "test"],
  ] as const) {
    bodies.set(`/hf/wikitext-2-raw-v1/${split}-00000-of-00001.parquet`, parquetOf(hfRows(splitText[key]!)));
  }
  bodies.set("/dlwh/data/validation/validation.jsonl.zst", detokJsonl);
  owtShards.forEach((b, i) => bodies.set(`/owt-files/${i}.parquet`, b));
  server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path === "/viewer/parquet") {
      const listing = {
        parquet_files: owtShards.map((b, i) => ({
          dataset: "Skylion007/openwebtext",
          config: "plain_text",
          split: "train",
          url: `${base}/owt-files/${i}.parquet`,
          filename: `${String(i).padStart(4, "0")}.parquet`,
          size: b.length,
        })),
        ...(partialListing ? { partial: true } : {}),
      };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(listing));
      return;
    }
    const body = bodies.get(path);
    if (body === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

const root = mkdtempSync(join(tmpdir(), "qkvflow-remote-test-"));
after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(root, { recursive: true, force: true });
});
let n = 0;
const freshDir = (): string => join(root, `case-${n++}`);
const expectedTokens = (key: string): Uint16Array => Uint16Array.from(encodeDocuments(splitWikitextDocuments(splitText[key]!)));
/** Regular files under `dir` (relative paths). */
const listFiles = (dir: string): string[] =>
  existsSync(dir)
    ? readdirSync(dir, { recursive: true })
        .map(String)
        .filter((f) => statSync(join(dir, f)).isFile())
    : [];

describe("loadDataset downloading from a local mirror", () => {
  it("wikitext-2 zip: download, extract, tokenise; later runs use the cache without the network", async () => {
    const saved = process.env["QKVFLOW_DATA"];
    delete process.env["QKVFLOW_DATA"];
    try {
      const cacheDir = freshDir();
      const ds = await loadDataset({ name: "wikitext-2", cacheDir, download: true, baseUrl: `${base}/smerity`, progress: false });
      assert.deepEqual(Object.keys(ds).sort(), ["test", "train", "validation"]);
      assert.deepEqual(ds["train"]!.tokens, expectedTokens("train"));
      assert.deepEqual(ds["validation"]!.tokens, expectedTokens("valid"));
      assert.deepEqual(ds["test"]!.tokens, expectedTokens("test"));
      assert.equal(ds["train"]!.documents, 2);
      assert.equal(hits.get("/smerity/wikitext-2-raw-v1.zip"), 1);
      assert.deepEqual(listFiles(join(cacheDir, "extracted", "wikitext-2-raw-v1")).sort(), [
        "wiki.test.raw",
        "wiki.train.raw",
        "wiki.valid.raw",
      ]);
      const again = await loadDataset({ name: "wikitext-2", cacheDir, baseUrl: `${base}/smerity` });
      assert.equal(hits.get("/smerity/wikitext-2-raw-v1.zip"), 1, "no second download");
      assert.ok(Object.values(again).every((s) => s.fromCache));
    } finally {
      if (saved !== undefined) process.env["QKVFLOW_DATA"] = saved;
    }
  });

  it("wikitext-2 parquet (Hugging Face rows) gives exactly the tokens of the zip text", async () => {
    const cacheDir = freshDir();
    const ds = await loadDataset({
      name: "wikitext-2",
      variant: "parquet",
      cacheDir,
      download: true,
      baseUrl: `${base}/hf`,
      progress: false,
      splits: ["validation", "test"],
    });
    assert.deepEqual(Object.keys(ds).sort(), ["test", "validation"]);
    assert.deepEqual(ds["validation"]!.tokens, expectedTokens("valid"));
    assert.deepEqual(ds["test"]!.tokens, expectedTokens("test"));
    assert.equal(hits.get("/hf/wikitext-2-raw-v1/train-00000-of-00001.parquet"), undefined, "train not downloaded when not asked for");
  });

  it("wikitext-103-detokenized: zstd JSONL rows grouped into articles, or one document per row", async () => {
    const cacheDir = freshDir();
    const ds = await loadDataset({
      name: "wikitext-103-detokenized",
      cacheDir,
      download: true,
      baseUrl: `${base}/dlwh`,
      progress: false,
      splits: ["validation"],
    });
    const articles = ["= Gamma =\nGamma rays are energetic.\n= = Notes = =\nSee also.\n", "= Zeta =\nZeta is the sixth letter.\n"];
    assert.deepEqual(ds["validation"]!.tokens, Uint16Array.from(encodeDocuments(articles)));
    const rows = await loadDataset({ name: "wikitext-103-detokenized", cacheDir, splits: ["validation"], wikitextDocuments: "lines" });
    assert.deepEqual(rows["validation"]!.tokens, Uint16Array.from(encodeDocuments(detokRows)));
  });

  it("openwebtext: listing + shards, with the held-out validation documents in permutation order", async () => {
    const cacheDir = freshDir();
    const ds = await loadDataset({ name: "openwebtext", cacheDir, download: true, baseUrl: `${base}/viewer`, progress: false });
    // NumPy: default_rng(2357).permutation(3000)[:ceil(0.0005 * 3000)] == [2276, 1568]
    assert.deepEqual(ds["validation"]!.tokens, Uint16Array.from(encodeDocuments([owtDocs[2276]!, owtDocs[1568]!])));
    assert.deepEqual(ds["train"]!.tokens, Uint16Array.from(encodeDocuments(owtDocs.filter((_, i) => i !== 2276 && i !== 1568))));
    const listingHits = hits.get("/viewer/parquet");
    const again = await loadDataset({ name: "openwebtext", cacheDir, splits: ["validation"] });
    assert.equal(again["validation"]!.fromCache, true);
    assert.equal(hits.get("/viewer/parquet"), listingHits, "saved listing reused, no network");
  });

  it("a partial Parquet conversion is refused", async () => {
    partialListing = true;
    try {
      const cacheDir = freshDir();
      await assert.rejects(
        loadDataset({ name: "openwebtext", cacheDir, download: true, baseUrl: `${base}/viewer`, progress: false }),
        /partial Parquet conversion.*--data DIR/s,
      );
      assert.deepEqual(listFiles(join(cacheDir, "downloads")), []);
    } finally {
      partialListing = false;
    }
  });

  it("a missing archive (HTTP 404) fails with advice and leaves nothing in the cache", async () => {
    const cacheDir = freshDir();
    await assert.rejects(
      loadDataset({ name: "wikitext-103", cacheDir, download: true, baseUrl: `${base}/nowhere`, progress: false }),
      (err: Error) => {
        assert.match(err.message, /HTTP 404/);
        assert.match(
          err.message,
          /download 'wikitext-103-raw-v1\.zip' yourself and pass its folder with --data DIR \(or set QKVFLOW_DATA=DIR\)/,
        );
        return true;
      },
    );
    assert.deepEqual(listFiles(join(cacheDir, "downloads")), []);
    assert.deepEqual(listFiles(join(cacheDir, "extracted")), []);
  });

  it("a truncated archive fails extraction and leaves no extracted files", async () => {
    const cacheDir = freshDir();
    await assert.rejects(
      loadDataset({ name: "wikitext-2", cacheDir, download: true, baseUrl: `${base}/broken`, progress: false }),
      /extractZipEntries: .*wikitext-2-raw-v1\.zip.*The archive was removed/s,
    );
    assert.deepEqual(listFiles(join(cacheDir, "extracted")), []);
    assert.deepEqual(listFiles(join(cacheDir, "downloads")), [], "damaged archive removed");
  });
});
