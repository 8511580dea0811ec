import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { unigramCounts, unigramPerplexity } from "../src/data/index.js";

describe("unigram baseline", () => {
  it("matches a hand-computed add-one case", () => {
    // V = 4, train = [0, 0, 1, 2]: p(w) = (c + 1) / (4 + 4) -> p(0) = 3/8, p(3) = 1/8.
    // eval = [0, 3]: ppl = exp(-(ln 3/8 + ln 1/8) / 2) = sqrt(64 / 3).
    const r = unigramPerplexity(new Int32Array([0, 0, 1, 2]), new Int32Array([0, 3]), { vocabSize: 4 });
    assert.ok(Math.abs(r.perplexity - Math.sqrt(64 / 3)) < 1e-12, String(r.perplexity));
    assert.ok(Math.abs(r.crossEntropy - 0.5 * (Math.log(8 / 3) + Math.log(8))) < 1e-12);
    assert.ok(Math.abs(r.bitsPerToken - r.crossEntropy / Math.log(2)) < 1e-12);
    assert.equal(r.tokens, 2);
    assert.equal(r.trainTokens, 4);
  });

  it("is the vocabulary size when nothing was seen, and 1 for a one-token world without smoothing", () => {
    const empty = unigramPerplexity(new Uint16Array(0), new Uint16Array([5, 17, 50256]));
    assert.ok(Math.abs(empty.perplexity - 50257) < 1e-6);
    const certain = unigramPerplexity(new Int32Array([2, 2, 2]), new Int32Array([2, 2]), { vocabSize: 3, alpha: 0 });
    assert.equal(certain.perplexity, 1);
  });

  it("equals the maximum-likelihood entropy when eval = train and alpha = 0", () => {
    const toks = new Int32Array([0, 1, 1, 2, 2, 2, 2, 3]);
    const p = [1 / 8, 2 / 8, 4 / 8, 1 / 8];
    const H = -p.reduce((s, q) => s + q * Math.log(q), 0);
    const r = unigramPerplexity(toks, toks, { vocabSize: 4, alpha: 0 });
    assert.ok(Math.abs(r.crossEntropy - H) < 1e-12);
  });

  it("counts ids", () => {
    assert.deepEqual(Array.from(unigramCounts(new Uint16Array([1, 1, 3]), 4)), [0, 2, 0, 1]);
  });

  it("rejects impossible inputs with named errors", () => {
    assert.throws(
      () => unigramPerplexity(new Int32Array([0]), new Int32Array([1]), { vocabSize: 2, alpha: 0 }),
      /unigramPerplexity: eval token 1 at position 0 never occurs in training and alpha = 0/,
    );
    assert.throws(
      () => unigramPerplexity(new Int32Array([0]), new Int32Array([]), { vocabSize: 2 }),
      /unigramPerplexity: evalTokens is empty/,
    );
    assert.throws(() => unigramCounts(new Int32Array([9]), 4), /unigramCounts: token 9 at position 0 is outside the vocabulary \[0, 4\)/);
    assert.throws(() => unigramPerplexity(new Int32Array([0]), new Int32Array([0]), { alpha: -1 }), /alpha must be a finite number >= 0/);
  });
});
