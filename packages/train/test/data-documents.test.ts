import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import {
  WikitextDocumentSplitter,
  isWikitextTitleLine,
  linesFromChunks,
  splitWikitextDocuments,
  wikitextDocuments,
  wikitextRowToLine,
} from "../src/data/index.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const sharedData = process.env["QKVFLOW_SHARED_DATA"] ?? resolve(repoRoot, "../shared/data");
const wt2 = join(sharedData, "wikitext-2");
const skipWt2 = existsSync(wt2) ? false : `shared data not found at ${wt2}; set QKVFLOW_SHARED_DATA`;

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("WikiText document splitting", () => {
  it("recognises top-level headings only", () => {
    assert.equal(isWikitextTitleLine(" = Valkyria Chronicles III = "), true);
    assert.equal(isWikitextTitleLine("= A ="), true);
    assert.equal(isWikitextTitleLine(" = = Gameplay = = "), false);
    assert.equal(isWikitextTitleLine(" = = = Plot = = = "), false);
    assert.equal(isWikitextTitleLine(" The = sign is used here . "), false);
    assert.equal(isWikitextTitleLine(" "), false);
  });

  it("cuts articles at top-level headings and keeps the text as is", () => {
    const text = [
      " ",
      " = Alpha = ",
      " ",
      " Alpha text . ",
      " ",
      " = = Section = = ",
      " ",
      " More alpha . ",
      " ",
      " = Beta = ",
      " ",
      " Beta text . ",
      "",
    ].join("\n");
    const docs = splitWikitextDocuments(text);
    assert.deepEqual(docs, [
      " = Alpha = \n \n Alpha text . \n \n = = Section = = \n \n More alpha . \n \n",
      " = Beta = \n \n Beta text . \n",
    ]);
    // concatenation reproduces the text after the whitespace-only preamble
    assert.equal(docs.join(""), text.slice(2));
  });

  it("ignores heading-like formula lines that do not follow a blank line", () => {
    const text = [" ", " = Filter = ", " ", " The impedance is ", " = 1 ohm = ", " and so on . ", " ", " = Next = ", " ", " x ", ""].join(
      "\n",
    );
    assert.equal(splitWikitextDocuments(text).length, 2);
    // without blank lines anywhere the rule cannot apply, so the pattern alone decides
    const noBlanks = [" = Filter = ", " The impedance is ", " = 1 ohm = ", " = Next = ", " x ", ""].join("\n");
    assert.equal(splitWikitextDocuments(noBlanks).length, 3);
    assert.equal(splitWikitextDocuments(noBlanks, "required").length, 1);
    assert.equal(splitWikitextDocuments(text, "ignored").length, 3);
  });

  it("keeps non-blank text before the first heading as its own document and strips CR", () => {
    assert.deepEqual(splitWikitextDocuments("intro\r\n = T = \r\nbody\r\n"), ["intro\n", " = T = \nbody\n"]);
    assert.deepEqual(splitWikitextDocuments(""), []);
    assert.deepEqual(splitWikitextDocuments(" \n \n"), []);
  });

  it("the streaming splitter agrees with the whole-text splitter", async () => {
    const text = " \n = A = \n \n a \n \n = B = \n b1 \n = x = \n \n = C = \n";
    const lines = text.split("\n");
    lines.pop();
    assert.deepEqual(await collect(wikitextDocuments(lines)), splitWikitextDocuments(text));
    const sp = new WikitextDocumentSplitter();
    const out: string[] = [];
    for (const l of lines) {
      const d = sp.push(l);
      if (d !== undefined) out.push(d);
    }
    const last = sp.finish();
    if (last !== undefined) out.push(last);
    assert.deepEqual(out, splitWikitextDocuments(text));
  });

  it("maps Hugging Face rows back to file lines", () => {
    assert.equal(wikitextRowToLine(" = Valkyria = \n"), " = Valkyria = ");
    assert.equal(wikitextRowToLine(""), " ");
    assert.equal(wikitextRowToLine("no newline"), "no newline");
  });

  it("splits the real WikiText-2 files into 60 articles each", { skip: skipWt2 }, () => {
    for (const f of ["valid.txt", "test.txt"]) {
      const text = readFileSync(join(wt2, f), "utf8");
      const docs = splitWikitextDocuments(text);
      assert.equal(docs.length, 60, f);
      assert.ok(
        docs.every((d) => isWikitextTitleLine(d.slice(0, d.indexOf("\n")))),
        `${f}: every article starts with its title`,
      );
      assert.equal(docs.join(""), text.replace(/^( \n)+/, ""), f);
    }
    assert.ok(splitWikitextDocuments(readFileSync(join(wt2, "test.txt"), "utf8"))[0]!.startsWith(" = Robert <unk> = \n"));
    // the blank-dropped CRLF re-export has no blank lines, so two formula lines also count as headings
    const raw = readFileSync(join(wt2, "wiki.test.raw"), "utf8");
    const rawDocs = splitWikitextDocuments(raw);
    assert.equal(rawDocs.length, 62);
    assert.ok(rawDocs[0]!.startsWith(" = Robert Boulter = \n"));
    assert.ok(!rawDocs.join("").includes("\r"));
  });
});

describe("linesFromChunks", () => {
  it("gives the same lines however the bytes are chunked", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.string({ unit: "grapheme", maxLength: 12 }), { maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (lines, crlf, trailing, cuts) => {
          const clean = lines.map((l) => l.replace(/[\r\n]/g, ""));
          const text = clean.join(crlf ? "\r\n" : "\n") + (trailing && clean.length > 0 ? (crlf ? "\r\n" : "\n") : "");
          const bytes = new TextEncoder().encode(text);
          const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
          const chunks: Uint8Array[] = [];
          let prev = 0;
          for (const p of [...points, bytes.length]) {
            chunks.push(bytes.slice(prev, p));
            prev = p;
          }
          const got = await collect(
            linesFromChunks(
              (async function* () {
                yield* chunks;
              })(),
            ),
          );
          const expected = text === "" ? [] : text.replace(/\r\n/g, "\n").replace(/\n$/, "").split("\n");
          assert.deepEqual(got, expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
