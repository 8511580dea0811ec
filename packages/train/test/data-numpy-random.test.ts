import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Pcg64, hfTrainTestSplit, numpyPermutation, seedSequenceState } from "../src/data/index.js";

// Reference values printed by NumPy 2.4 (np.random.SeedSequence / default_rng / Generator.permutation).
describe("NumPy-compatible SeedSequence, PCG64 and permutation", () => {
  it("SeedSequence.generate_state matches NumPy", () => {
    assert.deepEqual(
      Array.from(seedSequenceState(2357, 8)),
      [0x792d950a, 0x8b21db77, 0xa47ddf8f, 0x9651a62f, 0x47ca1aed, 0xe1d75b51, 0xc08db64f, 0x8ce7c169],
    );
    assert.deepEqual(Array.from(seedSequenceState(0, 4)), [2968811710, 3677149159, 745650761, 2884920346]);
    // more entropy words than the pool size (4) exercises the second mixing loop
    assert.deepEqual(Array.from(seedSequenceState([1, 2, 3, 4, 5, 6], 4)), [488360481, 3956080669, 2986500235, 3488252836]);
    // an integer above 2^32 is split into 32-bit words
    assert.deepEqual(Array.from(seedSequenceState(2 ** 40 + 7, 4)), [238885397, 226915041, 1322230113, 2599373530]);
  });

  it("PCG64 raw outputs match NumPy random_raw", () => {
    const a = new Pcg64(2357);
    assert.equal(a.nextUint64(), 3554037535358686929n);
    assert.equal(a.nextUint64(), 17305761578865237604n);
    const b = new Pcg64(0);
    assert.deepEqual([b.nextUint64(), b.nextUint64(), b.nextUint64()], [11749869230777074271n, 4976686463289251617n, 755828109848996024n]);
  });

  it("permutation matches NumPy default_rng(seed).permutation(n)", () => {
    assert.deepEqual(Array.from(numpyPermutation(10, 2357)), [8, 3, 0, 9, 5, 6, 2, 7, 4, 1]);
    assert.deepEqual(
      Array.from(numpyPermutation(100, 2357).slice(0, 20)),
      [28, 89, 46, 88, 47, 52, 16, 97, 20, 30, 44, 14, 25, 94, 12, 91, 67, 54, 72, 4],
    );
    assert.deepEqual(Array.from(numpyPermutation(12, [5, 3])), [0, 1, 9, 4, 10, 7, 3, 11, 8, 2, 6, 5]);
    assert.deepEqual(Array.from(numpyPermutation(12, [0, 0])), [9, 2, 7, 4, 5, 11, 0, 3, 6, 10, 8, 1]);
    assert.deepEqual(Array.from(numpyPermutation(0, 1)), []);
    assert.deepEqual(Array.from(numpyPermutation(1, 1)), [0]);
  });

  it("reproduces the OpenWebText held-out split of HF train_test_split(test_size=0.0005, seed=2357)", () => {
    const n = 8013769; // rows of Skylion007/openwebtext
    const { train, test } = hfTrainTestSplit(n, 0.0005, 2357);
    assert.equal(test.length, 4007); // nanoGPT reports val: 4007 rows, train: 8009762 rows
    assert.equal(train.length, 8009762);
    assert.deepEqual(Array.from(test.slice(0, 5)), [4327249, 4286500, 2184614, 4793011, 1709068]);
    assert.deepEqual(Array.from(test.slice(4004)), [6546526, 4897055, 2048232]);
    assert.deepEqual(Array.from(train.slice(0, 3)), [4269689, 2140761, 3324742]);
    assert.deepEqual(Array.from(train.slice(-2)), [5405262, 7706321]);
  });

  it("small held-out splits use ceil(test_size * n)", () => {
    assert.deepEqual(Array.from(hfTrainTestSplit(3000, 0.0005, 2357).test), [2276, 1568]);
    assert.deepEqual(Array.from(hfTrainTestSplit(5000, 0.0005, 2357).test), [4105, 1895, 1009]);
  });

  it("rejects bad arguments", () => {
    assert.throws(() => numpyPermutation(-1, 0), /numpyPermutation: n must be an integer/);
    assert.throws(() => seedSequenceState(-3, 4), /seedSequenceState: entropy values must be non-negative safe integers, got -3/);
    assert.throws(() => hfTrainTestSplit(10, 1.5, 0), /hfTrainTestSplit: testSize must be in \(0, 1\)/);
    assert.throws(() => new Pcg64(1).interval(2 ** 33), /Pcg64.interval: max must be an integer in \[0, 2\^32-1\]/);
  });
});
