import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import {
  GPT2_EOS_ID,
  GPT2_VOCAB_SIZE,
  TokenBuffer,
  decode,
  encode,
  encodeDocuments,
  encodeDocumentsUint16,
  gpt2Tokenizer,
} from "../src/data/index.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const sharedData = process.env["QKVFLOW_SHARED_DATA"] ?? resolve(repoRoot, "../shared/data");
const wt2 = join(sharedData, "wikitext-2");
const haveWt2 = existsSync(join(wt2, "test.txt")) && existsSync(join(wt2, "wiki.test.raw"));

describe("GPT-2 tokenizer", () => {
  it("produces the published GPT-2 ids", () => {
    // ids as produced by OpenAI's GPT-2 encoder / tiktoken 'gpt2'
    assert.deepEqual(encode("Hello world"), [15496, 995]);
    assert.deepEqual(encode("hello world"), [31373, 995]);
    assert.deepEqual(encode(" the"), [262]);
    assert.deepEqual(encode("The"), [464]);
    assert.deepEqual(encode("\n"), [198]);
    assert.deepEqual(encode(" "), [220]);
    assert.equal(GPT2_EOS_ID, 50256);
    assert.equal(GPT2_VOCAB_SIZE, 50257);
    assert.equal(gpt2Tokenizer.vocabSize, 50257);
    assert.equal(decode([50256]), "<|endoftext|>");
  });

  it("treats a literal <|endoftext|> inside text as ordinary characters", () => {
    const ids = encode("a <|endoftext|> b");
    assert.ok(!ids.includes(GPT2_EOS_ID), `literal special token became EOS: ${ids.join(",")}`);
    assert.equal(decode(ids), "a <|endoftext|> b");
  });

  it("round-trips arbitrary unicode text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 60 }), (s) => decode(encode(s)) === s),
      { numRuns: 200 },
    );
  });

  it("encodeDocuments puts EOS after every document", () => {
    const docs = ["Hello world", "", " the"];
    const expected = [15496, 995, 50256, 50256, 262, 50256];
    assert.deepEqual(Array.from(encodeDocuments(docs)), expected);
    assert.deepEqual(Array.from(encodeDocumentsUint16(docs)), expected);
    assert.ok(encodeDocuments(docs) instanceof Int32Array);
    assert.deepEqual(Array.from(encodeDocuments([])), []);
  });

  it("rejects bad input with a named error", () => {
    assert.throws(() => decode([50257]), /decode: id 50257 at position 0 is outside the vocabulary \[0, 50257\)/);
    assert.throws(() => decode([-1]), /decode: id -1/);
    assert.throws(() => encodeDocuments([1 as unknown as string]), /encodeDocuments: document 0 is a number/);
  });

  it("TokenBuffer grows and keeps order", () => {
    const b = new TokenBuffer(2);
    const ref: number[] = [];
    for (let i = 0; i < 1000; i++) {
      if (i % 3 === 0) {
        b.pushOne(i);
        ref.push(i);
      } else {
        b.push([i, i + 1]);
        ref.push(i, i + 1);
      }
    }
    assert.deepEqual(Array.from(b.view()), ref);
  });

  it('counts 287,644 tokens on the WikiText-2 raw test split joined with "\\n\\n" (the published Hugging Face figure)', {
    skip: haveWt2 ? false : `shared data not found at ${wt2}; set QKVFLOW_SHARED_DATA`,
  }, () => {
    // Rebuild the HF rows: the tokenised file gives the positions of blank rows (same line layout as
    // the raw file), the blank-dropped raw re-export gives the text of the non-blank rows.
    const layout = readFileSync(join(wt2, "test.txt"), "utf8").split("\n");
    layout.pop();
    const raw = readFileSync(join(wt2, "wiki.test.raw"), "utf8").replace(/\r/g, "").split("\n");
    if (raw[raw.length - 1] === "") raw.pop();
    const rows: string[] = [];
    let k = 0;
    for (const l of layout) rows.push(l.trim() === "" ? "" : `${raw[k++]}\n`);
    assert.equal(rows.length, 4358);
    assert.equal(k, raw.length);
    assert.equal(encode(rows.join("\n\n")).length, 287644);
  });
});
