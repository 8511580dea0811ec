import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import { loadDataset, loadRunData, validateTrainConfig } from "../src/index.js";
import { Utf8TextChecker, decodeTextStrict, scanUtf8 } from "../src/data/text-check.js";
import { tmpDir } from "../../../test/helpers/tmp.js";

const TEXT = "The quick brown fox jumps over the lazy dog. Ünïcödé is fine: 日本語, emoji 🦊.\n".repeat(40);

function dataCfg(file: string, cacheDir: string) {
  return validateTrainConfig({
    name: "t",
    model: { kind: "gpt2", vocabSize: 50257, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 1 },
    data: { dataset: "text", dataDir: file, cacheDir, seqLen: 8 },
    train: { steps: 1, batchSize: 1 },
  }).data;
}

function files(dir: string): Record<string, Buffer> {
  const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(TEXT, "utf16le")]);
  const latin1 = Buffer.from([...TEXT].map((c) => (c.codePointAt(0)! > 0xff ? "?" : c)).join(""), "latin1");
  const binary = Buffer.alloc(4096);
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 7919 + 13) % 256;
  const out = { "utf16.txt": utf16, "latin1.txt": latin1, "binary.bin": binary };
  for (const [n, b] of Object.entries(out)) fs.writeFileSync(path.join(dir, n), b);
  return out;
}

test("text data: binary, Latin-1 and UTF-16 files are refused with the file and the byte offset; UTF-8 (with BOM) is read", async () => {
  const dir = tmpDir();
  const cache = path.join(dir, "cache");
  files(dir);
  const expectations: Record<string, RegExp> = {
    "utf16.txt": /utf16\.txt is not valid UTF-8: byte 0xFF at byte offset 0; expected UTF-8 text/,
    "latin1.txt": new RegExp(`latin1\\.txt is not valid UTF-8: byte 0xDC at byte offset ${TEXT.indexOf("Ü")}; expected UTF-8 text`),
    "binary.bin": /binary\.bin (is not valid UTF-8: byte 0x[0-9A-F]{2} at byte offset \d+|has a NUL byte at byte offset \d+)/,
  };
  for (const [name, re] of Object.entries(expectations)) {
    await assert.rejects(loadRunData(dataCfg(path.join(dir, name), cache)), (err: Error) => {
      assert.match(err.message, re);
      assert.ok(err.message.includes(path.join(dir, name)), err.message);
      return true;
    });
  }
  // UTF-16 without BOM (ASCII text): NUL bytes
  const noBom = path.join(dir, "utf16-nobom.txt");
  fs.writeFileSync(noBom, Buffer.from("plain ascii text ".repeat(50), "utf16le"));
  await assert.rejects(loadRunData(dataCfg(noBom, cache)), /utf16-nobom\.txt has a NUL byte at byte offset 1; it is binary or UTF-16 data/);
  // control characters (not NUL) in bulk
  const ctl = path.join(dir, "ctl.txt");
  fs.writeFileSync(ctl, Buffer.from("a\x01b\x02c\x03 ".repeat(200), "latin1"));
  await assert.rejects(
    loadRunData(dataCfg(ctl, cache)),
    /ctl\.txt has 600 control bytes in 1400 bytes \(first at byte offset 1\); it looks like binary data/,
  );
  // valid UTF-8 with a BOM tokenises as the text without BOM: same tokens as the file without it
  const plain = path.join(dir, "plain.txt");
  const bom = path.join(dir, "bom.txt");
  fs.writeFileSync(plain, TEXT);
  fs.writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(TEXT)]));
  const a = await loadRunData(dataCfg(plain, cache));
  const b = await loadRunData(dataCfg(bom, cache));
  assert.deepEqual(Array.from(a.splits.train!), Array.from(b.splits.train!));
  assert.ok(a.splits.train!.length > 100);
});

test("text data: a WikiText folder whose wiki.*.raw files are not UTF-8 is refused naming the file", async () => {
  const dir = tmpDir();
  const wt = path.join(dir, "wikitext-2");
  fs.mkdirSync(wt);
  const good = " = Title = \n \n Some text here .\n";
  fs.writeFileSync(path.join(wt, "wiki.train.raw"), good.repeat(20));
  fs.writeFileSync(path.join(wt, "wiki.valid.raw"), Buffer.from(good.replace("Some", "Sömé"), "latin1"));
  fs.writeFileSync(path.join(wt, "wiki.test.raw"), good);
  await assert.rejects(loadDataset({ name: "wikitext-2", dataDir: wt, cacheDir: path.join(dir, "c"), format: "raw" }), (err: Error) => {
    const at = good.replace("Some", "Sömé").indexOf("ö"); // ASCII before it: byte offset = character index
    assert.ok(err.message.includes(`wiki.valid.raw is not valid UTF-8: byte 0xF6 at byte offset ${at};`), err.message);
    return true;
  });
});

test("scanUtf8 agrees with a fatal TextDecoder on arbitrary bytes and on chunked input (2,000 cases)", () => {
  const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const valid = (b: Uint8Array): boolean => {
    try {
      fatal.decode(b);
      return true;
    } catch {
      return false;
    }
  };
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 40 }),
    fc.string({ unit: "grapheme", maxLength: 20 }).map((s) => new Uint8Array(Buffer.from(s, "utf8"))),
    fc.tuple(fc.string({ unit: "grapheme", maxLength: 10 }), fc.nat(), fc.integer({ min: 0x80, max: 0xff })).map(([s, i, v]) => {
      const b = new Uint8Array(Buffer.from(s, "utf8"));
      if (b.length > 0) b[i % b.length] = v;
      return b;
    }),
  );
  fc.assert(
    fc.property(bytes, fc.nat(), (b, cut) => {
      const r = scanUtf8(b);
      assert.equal(r.invalidAt < 0, valid(b));
      if (r.invalidAt >= 0) assert.ok(valid(b.subarray(0, r.invalidAt)), "the prefix before the reported offset is valid");
      // chunked: the same verdict when the bytes arrive in two pieces, and the same text
      const k = b.length === 0 ? 0 : cut % (b.length + 1);
      let text: string | null;
      try {
        text = decodeTextStrict(b, "x");
      } catch {
        text = null;
      }
      const hasNulOrCtl =
        b.some((c) => c === 0) || b.filter((c) => (c < 0x20 && ![9, 10, 11, 12, 13, 27].includes(c)) || c === 0x7f).length > 1;
      if (valid(b) && !hasNulOrCtl) {
        const want = new TextDecoder("utf-8").decode(b);
        assert.equal(text, want);
      } else assert.equal(text, null);
      let chunked: string | null;
      try {
        const c = new Utf8TextChecker("x");
        chunked = c.push(b.subarray(0, k)) + c.push(b.subarray(k)) + c.end();
      } catch {
        chunked = null;
      }
      assert.equal(chunked, text);
    }),
    { numRuns: 2000, seed: 16 },
  );
});
