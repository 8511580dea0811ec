import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { RunningStat, aggregateCorpus, ranks, spearman, splitSentences, type SentenceAnalysis } from "../src/index.js";

test("RunningStat agrees with the two-pass mean and population std", () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 1, maxLength: 50 }), (xs) => {
      const s = new RunningStat();
      xs.forEach((x) => s.add(x));
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
      const g = s.get();
      return g.count === xs.length && Math.abs(g.mean - mean) < 1e-9 * (1 + Math.abs(mean)) && Math.abs(g.std - std) < 1e-7 * (1 + std);
    }),
  );
  const s = new RunningStat();
  s.add(NaN);
  s.add(Infinity);
  assert.deepEqual(s.get(), { count: 0, mean: 0, std: 0 });
});

test("Spearman correlation: ±1 for monotone maps, the d² formula without ties, averaged ranks with ties", () => {
  assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 45]), 1);
  assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  // no ties: ρ = 1 − 6Σd²/(n(n²−1)); d = (−1, 1, −1, 1, 0) → 1 − 24/120
  assert.ok(Math.abs(spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) - 0.8) < 1e-12);
  assert.deepEqual(ranks([10, 20, 10, 5]), [2.5, 4, 2.5, 1]);
  assert.ok(Number.isNaN(spearman([1, 2], [2, 1])));
  assert.ok(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])));
  assert.throws(() => spearman([1, 2, 3], [1, 2]), /spearman: lengths 3 and 2 differ/);
});

function sentence(ids: number[], maxExponent: number[], rollout: number[], grad: number[]): SentenceAnalysis {
  return {
    ids,
    tokens: ids.map((i) => `t${i}`),
    query: ids.length - 1,
    maxExponent,
    sumExponent: maxExponent,
    kaplanYorke: maxExponent.map(() => 0),
    rollout,
    gradInput: { target: 0, logProb: 0, signed: grad, abs: grad.map(Math.abs) },
  };
}

test("aggregateCorpus: per token id, position and distance statistics by hand (query tokens excluded)", () => {
  const s1 = sentence([7, 8, 7, 9], [1, 2, 3, 100], [0.1, 0.2, 0.3, 0.4], [3, 2, 1, 0]);
  const s2 = sentence([8, 7, 5], [4, 5, 200], [0.5, 0.1, 0.4], [1, 2, 3]);
  const c = aggregateCorpus([s1, s2]);
  assert.equal(c.sentences, 2);
  assert.equal(c.overall.count, 5);
  assert.ok(Math.abs(c.overall.mean - 3) < 1e-12);
  const by = new Map(c.byToken.map((t) => [t.id, t]));
  assert.deepEqual([...by.keys()].sort(), [7, 8]); // 9 and 5 are only queries
  // id 7: values 1, 3, 5 → mean 3, std √(8/3); id 8: values 2, 4 → mean 3, std 1
  assert.equal(by.get(7)!.count, 3);
  assert.ok(Math.abs(by.get(7)!.std - Math.sqrt(8 / 3)) < 1e-12);
  assert.ok(Math.abs(by.get(8)!.mean - 3) < 1e-12 && Math.abs(by.get(8)!.std - 1) < 1e-12);
  assert.equal(by.get(7)!.token, "t7");
  // positions: 0 → {1, 4}, 1 → {2, 5}, 2 → {3}
  assert.deepEqual(
    c.byPosition.map((s) => [s.count, s.mean]),
    [
      [2, 2.5],
      [2, 3.5],
      [1, 3],
    ],
  );
  // distances to the query: s1 (j=3): 1→3, 2→2, 3→1; s2 (j=2): 1→5, 2→4
  assert.deepEqual(
    c.byDistance.map((s) => [s.count, s.mean]),
    [
      [0, 0],
      [2, 4],
      [2, 3],
      [1, 1],
    ],
  );
  // correlations: s1 Lyapunov (1,2,3) vs rollout (0.1,0.2,0.3) = 1, vs grad (3,2,1) = −1; s2 has 2 sources → NaN, skipped
  assert.deepEqual([c.correlation.lyapunovVsRollout.count, c.correlation.lyapunovVsRollout.mean], [1, 1]);
  assert.equal(c.correlation.lyapunovVsGradInput.mean, -1);
});

test("splitSentences splits on line breaks and sentence punctuation", () => {
  assert.deepEqual(splitSentences("One two. Three four!  Five?\r\n\nSix seven\n"), ["One two.", "Three four!", "Five?", "Six seven"]);
});
