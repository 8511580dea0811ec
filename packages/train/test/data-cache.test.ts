import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  cachedTokenize,
  defaultCacheDir,
  encodeDocuments,
  gpt2Tokenizer,
  readTokenCacheMeta,
  tokenCachePaths,
  writeFileAtomic,
  type Tokenizer,
} from "../src/data/index.js";

const root = mkdtempSync(join(tmpdir(), "qkvflow-cache-test-"));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = (): string => {
  const d = join(root, `case-${dirCount++}`);
  return d;
};

function countingTokenizer(): Tokenizer & { calls: number } {
  const t = {
    ...gpt2Tokenizer,
    calls: 0,
    encode(text: string): number[] {
      t.calls++;
      return gpt2Tokenizer.encode(text);
    },
  };
  return t;
}

const sha = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");

describe("token cache", () => {
  it("tokenises once, then reuses the cache; metadata records the sources", async () => {
    const cacheDir = freshDir();
    const src = join(root, "src-a.txt");
    writeFileSync(src, "Hello world\nsecond doc\n");
    const tok = countingTokenizer();
    let tokenised = 0;
    const run = () =>
      cachedTokenize({
        cacheDir,
        key: "unit",
        split: "train",
        sources: [src],
        recipe: "lines-as-docs",
        tokenizer: tok,
        onTokenize: () => tokenised++,
        documents: () =>
          readFileSync(src, "utf8")
            .split("\n")
            .filter((l) => l !== ""),
      });
    const first = await run();
    assert.equal(first.fromCache, false);
    assert.deepEqual(Array.from(first.tokens), Array.from(encodeDocuments(["Hello world", "second doc"])));
    assert.equal(tok.calls, 2);
    const mtimeBefore = statSync(first.tokenFile).mtimeMs;
    const second = await run();
    assert.equal(second.fromCache, true);
    assert.equal(tok.calls, 2, "second run must not tokenise");
    assert.equal(tokenised, 1);
    assert.equal(statSync(second.tokenFile).mtimeMs, mtimeBefore, "token file not rewritten");
    assert.deepEqual(second.tokens, first.tokens);
    // the file is raw little-endian uint16, readable without the metadata
    const raw = readFileSync(first.tokenFile);
    assert.equal(raw.length, first.tokens.length * 2);
    assert.equal(raw.readUInt16LE(0), 15496);
    const meta = (await readTokenCacheMeta(first.metaFile))!;
    assert.equal(meta.tokenizer, "gpt2");
    assert.equal(meta.tokenCount, first.tokens.length);
    assert.equal(meta.documents, 2);
    assert.equal(meta.sources[0]!.sha256, sha(readFileSync(src)));
    assert.equal(meta.sourceSha256, sha(`lines-as-docs\n${sha(readFileSync(src))}`));
    assert.ok(!Number.isNaN(Date.parse(meta.created)));
    // nothing but the two entry files in the folder (no temp files left)
    assert.deepEqual(readdirSync(join(cacheDir, "tokens", "unit")).sort(), ["train.gpt2.json", "train.gpt2.u16"]);
  });

  it("re-tokenises when the source changes, the recipe changes or the token file is damaged", async () => {
    const cacheDir = freshDir();
    const src = join(root, "src-b.txt");
    writeFileSync(src, "one");
    const tok = countingTokenizer();
    const run = (recipe = "r1") =>
      cachedTokenize({
        cacheDir,
        key: "k",
        split: "test",
        sources: [src],
        recipe,
        tokenizer: tok,
        documents: () => [readFileSync(src, "utf8")],
      });
    await run();
    assert.equal(tok.calls, 1);
    writeFileSync(src, "two words");
    const changed = await run();
    assert.equal(changed.fromCache, false);
    assert.equal(tok.calls, 2);
    assert.deepEqual(Array.from(changed.tokens), Array.from(encodeDocuments(["two words"])));
    assert.equal((await run()).fromCache, true);
    assert.equal((await run("r2")).fromCache, false);
    assert.equal(tok.calls, 3);
    writeFileSync(changed.tokenFile, Buffer.from([1, 2, 3])); // truncated token file
    const repaired = await run("r2");
    assert.equal(repaired.fromCache, false);
    assert.deepEqual(Array.from(repaired.tokens), Array.from(encodeDocuments(["two words"])));
  });

  it("trusts size + mtime unless rehash is set", async () => {
    const cacheDir = freshDir();
    const src = join(root, "src-c.txt");
    writeFileSync(src, "abc");
    const mtime = new Date("2020-01-01T00:00:00Z");
    utimesSync(src, mtime, mtime);
    const run = (rehash: boolean) =>
      cachedTokenize({ cacheDir, key: "k", split: "s", sources: [src], recipe: "r", rehash, documents: () => [readFileSync(src, "utf8")] });
    await run(false);
    writeFileSync(src, "xyz"); // same size ...
    utimesSync(src, mtime, mtime); // ... and same mtime
    assert.equal((await run(false)).fromCache, true);
    const re = await run(true);
    assert.equal(re.fromCache, false);
    assert.deepEqual(Array.from(re.tokens), Array.from(encodeDocuments(["xyz"])));
  });

  it("keeps separate entries per tokenizer name", async () => {
    const cacheDir = freshDir();
    const src = join(root, "src-d.txt");
    writeFileSync(src, "hi");
    const other: Tokenizer = {
      name: "bytes",
      vocabSize: 256,
      eosId: 0,
      encode: (t) => Array.from(Buffer.from(t)),
      decode: (ids) => Buffer.from(Array.from(ids)).toString(),
    };
    const a = await cachedTokenize({ cacheDir, key: "k", split: "s", sources: [src], recipe: "r", documents: () => ["hi"] });
    const b = await cachedTokenize({
      cacheDir,
      key: "k",
      split: "s",
      sources: [src],
      recipe: "r",
      tokenizer: other,
      documents: () => ["hi"],
    });
    assert.equal(b.fromCache, false);
    assert.deepEqual(Array.from(b.tokens), [104, 105, 0]);
    assert.notEqual(a.tokenFile, b.tokenFile);
    assert.equal(tokenCachePaths(cacheDir, "k", "s", "bytes").tokens, b.tokenFile);
  });

  it("leaves nothing behind when the documents fail mid-way", async () => {
    const cacheDir = freshDir();
    const src = join(root, "src-e.txt");
    writeFileSync(src, "x");
    await assert.rejects(
      cachedTokenize({
        cacheDir,
        key: "broken",
        split: "train",
        sources: [src],
        recipe: "r",
        documents: async function* () {
          yield "fine";
          throw new Error("disk on fire");
        },
      }),
      /disk on fire/,
    );
    assert.deepEqual(readdirSync(join(cacheDir, "tokens", "broken")), []);
    await assert.rejects(
      cachedTokenize({ cacheDir, key: "k", split: "s", sources: [join(root, "missing.txt")], recipe: "r", documents: () => [] }),
      /fingerprintSources: source file .*missing\.txt does not exist/,
    );
  });

  it("writes atomically and resolves the default folder from QKVFLOW_CACHE", async () => {
    const p = join(freshDir(), "sub", "f.json");
    await writeFileAtomic(p, "v1");
    await writeFileAtomic(p, "v2");
    assert.equal(readFileSync(p, "utf8"), "v2");
    assert.deepEqual(readdirSync(join(p, "..")), ["f.json"]);
    const saved = process.env["QKVFLOW_CACHE"];
    try {
      process.env["QKVFLOW_CACHE"] = join(root, "env-cache");
      assert.equal(defaultCacheDir(), join(root, "env-cache"));
      delete process.env["QKVFLOW_CACHE"];
      assert.match(defaultCacheDir(), /[/\\]\.cache[/\\]qkvflow$/);
    } finally {
      if (saved === undefined) delete process.env["QKVFLOW_CACHE"];
      else process.env["QKVFLOW_CACHE"] = saved;
    }
  });
});
