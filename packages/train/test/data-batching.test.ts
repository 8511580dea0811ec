import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  BatchSampler,
  countEvalWindows,
  countWindows,
  defaultPermute,
  evalBatches,
  type Batch,
  type SamplerState,
} from "../src/data/index.js";

const ramp = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

/** Naive reference: the window starting at `start` as (inputs, targets). */
function naiveWindow(tokens: ArrayLike<number>, start: number, T: number): { x: number[]; y: number[] } {
  const x: number[] = [];
  const y: number[] = [];
  for (let t = 0; t < T; t++) {
    x.push(tokens[start + t]!);
    y.push(tokens[start + t + 1]!);
  }
  return { x, y };
}

function rows(b: Batch): { x: number[]; y: number[] }[] {
  const out: { x: number[]; y: number[] }[] = [];
  for (let r = 0; r < b.batch; r++) {
    out.push({
      x: Array.from(b.inputs.subarray(r * b.seqLen, (r + 1) * b.seqLen)),
      y: Array.from(b.targets.subarray(r * b.seqLen, (r + 1) * b.seqLen)),
    });
  }
  return out;
}

describe("training batches", () => {
  it("windows are seqLen + 1 tokens, targets shifted by one, disjoint by default", () => {
    const tokens = ramp(103);
    const T = 4;
    assert.equal(countWindows(103, T), Math.floor((103 - 5) / 5) + 1); // 20 windows starting at 0, 5, ..., 95
    const s = new BatchSampler(tokens, { batchSize: 3, seqLen: T, seed: 7 });
    assert.equal(s.numWindows, 20);
    assert.equal(s.batchesPerEpoch, 6);
    const order = s.windowOrder(0);
    const b = s.next();
    assert.equal(b.batch, 3);
    assert.equal(b.seqLen, T);
    assert.equal(b.inputs.length, 12);
    rows(b).forEach((row, r) => assert.deepEqual(row, naiveWindow(tokens, order[r]! * 5, T)));
  });

  it("stride = seqLen shares the boundary token", () => {
    const tokens = ramp(21);
    const s = new BatchSampler(tokens, { batchSize: 5, seqLen: 4, stride: 4, permute: (n) => ramp(n) });
    assert.equal(s.numWindows, 5);
    const got = rows(s.next());
    assert.deepEqual(
      got,
      [0, 4, 8, 12, 16].map((st) => naiveWindow(tokens, st, 4)),
    );
    // every token after the first is a target exactly once
    assert.deepEqual(
      got.flatMap((r) => r.y),
      Array.from(tokens.slice(1)),
    );
  });

  it("the default order is NumPy default_rng([seed, epoch]).permutation(n)", () => {
    assert.deepEqual(Array.from(defaultPermute(0)(12, 0)), [9, 2, 7, 4, 5, 11, 0, 3, 6, 10, 8, 1]);
    assert.deepEqual(Array.from(defaultPermute(0)(12, 1)), [0, 7, 1, 11, 3, 10, 4, 6, 9, 8, 2, 5]);
    assert.deepEqual(Array.from(defaultPermute(42)(12, 3)), [9, 3, 7, 11, 5, 4, 2, 8, 1, 10, 0, 6]);
  });

  it("is deterministic per seed, differs across seeds, and reshuffles each epoch", () => {
    const tokens = ramp(5000);
    const take = (seed: number, n: number): number[][] => {
      const s = new BatchSampler(tokens, { batchSize: 4, seqLen: 8, seed });
      return Array.from({ length: n }, () => Array.from(s.next().inputs));
    };
    assert.deepEqual(take(3, 30), take(3, 30));
    assert.notDeepEqual(take(3, 5), take(4, 5));
    const s = new BatchSampler(tokens, { batchSize: 4, seqLen: 8, seed: 1 });
    const starts = (b: Batch): number[] => rows(b).map((r) => r.x[0]!);
    const epoch0: number[] = [];
    for (let i = 0; i < s.batchesPerEpoch; i++) epoch0.push(...starts(s.next()));
    assert.equal(s.state().epoch, 1);
    assert.equal(new Set(epoch0).size, epoch0.length, "no window twice within an epoch");
    assert.equal(epoch0.length, s.batchesPerEpoch * 4);
    const epoch1 = starts(s.next());
    assert.notDeepEqual(epoch1, epoch0.slice(0, 4));
  });

  it("state/restore continues exactly, also through JSON and across an epoch boundary", () => {
    const tokens = ramp(700);
    const opts = { batchSize: 3, seqLen: 10, seed: 11 };
    const full = new BatchSampler(tokens, opts);
    const ref = Array.from({ length: 15 }, () => full.next()); // 6 batches per epoch: crosses two boundaries
    const a = new BatchSampler(tokens, opts);
    for (let i = 0; i < 5; i++) a.next();
    const saved = JSON.parse(JSON.stringify(a.state())) as SamplerState;
    assert.deepEqual(saved, { epoch: 0, index: 5, numWindows: 63, batchSize: 3, seqLen: 10, stride: 11 });
    const b = new BatchSampler(tokens, opts);
    b.restore(saved);
    for (let i = 5; i < 15; i++) assert.deepEqual(b.next(), ref[i], `batch ${i}`);
  });

  it("uses a caller-supplied permutation and validates it", () => {
    const tokens = ramp(30);
    const calls: [number, number][] = [];
    const reverse = (n: number, epoch: number): Int32Array => {
      calls.push([n, epoch]);
      return Int32Array.from({ length: n }, (_, i) => n - 1 - i);
    };
    const s = new BatchSampler(tokens, { batchSize: 1, seqLen: 2, permute: reverse });
    assert.deepEqual(rows(s.next()), [naiveWindow(tokens, 27, 2)]);
    assert.deepEqual(calls, [[10, 0]]);
    const bad = new BatchSampler(tokens, { batchSize: 1, seqLen: 2, permute: (n) => new Int32Array(n) });
    assert.throws(() => bad.next(), /BatchSampler: permute\(10, 0\) is not a permutation of \[0, 10\)/);
  });

  it("rejects bad configurations and mismatched states", () => {
    assert.throws(
      () => new BatchSampler(ramp(10), { batchSize: 2, seqLen: 8 }),
      /BatchSampler: 10 tokens give 1 windows of 9 tokens \(stride 9\), fewer than one batch of 2/,
    );
    assert.throws(
      () => new BatchSampler(ramp(10), { batchSize: 0, seqLen: 2 }),
      /BatchSampler: batchSize must be a positive integer, got 0/,
    );
    const s = new BatchSampler(ramp(100), { batchSize: 2, seqLen: 4 });
    assert.throws(() => s.restore({ ...s.state(), seqLen: 5 }), /BatchSampler.restore: state has seqLen=5, this sampler has seqLen=4/);
    assert.throws(() => s.restore({ ...s.state(), index: 99 }), /index must be an integer in \[0, 10\)/);
  });
});

describe("evaluation batches", () => {
  it("predict every token after the first exactly once, in order (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 300 }), fc.integer({ min: 1, max: 17 }), fc.integer({ min: 1, max: 6 }), (n, T, B) => {
        const tokens = Int32Array.from({ length: n }, (_, i) => (i * 7919) % 50257);
        const predicted: number[] = [];
        const contexts: number[] = [];
        let windows = 0;
        for (const b of evalBatches(tokens, { batchSize: B, seqLen: T })) {
          assert.ok(b.batch >= 1 && b.batch <= B);
          assert.equal(b.inputs.length, b.batch * T);
          windows += b.batch;
          for (let i = 0; i < b.batch * T; i++) {
            if (b.mask![i] === 1) {
              predicted.push(b.targets[i]!);
              contexts.push(b.inputs[i]!);
            }
          }
        }
        assert.equal(windows, countEvalWindows(n, { seqLen: T }));
        assert.deepEqual(predicted, Array.from(tokens.slice(1)));
        assert.deepEqual(contexts, Array.from(tokens.slice(0, -1)));
      }),
      { numRuns: 200 },
    );
  });

  it("pads the last window with a mask, or drops it", () => {
    const tokens = ramp(12); // seqLen 5, stride 5: windows at 0, 5 full (need 6 tokens), 10 partial (1 target)
    const padded = [...evalBatches(tokens, { batchSize: 2, seqLen: 5, padId: 99 })];
    assert.equal(padded.length, 2);
    assert.equal(padded[1]!.batch, 1);
    assert.deepEqual(Array.from(padded[1]!.inputs), [10, 11, 99, 99, 99]);
    assert.deepEqual(Array.from(padded[1]!.targets), [11, 99, 99, 99, 99]);
    assert.deepEqual(Array.from(padded[1]!.mask!), [1, 0, 0, 0, 0]);
    const dropped = [...evalBatches(tokens, { batchSize: 2, seqLen: 5, partial: "drop" })];
    assert.equal(dropped.length, 1);
    assert.deepEqual(Array.from(dropped[0]!.mask!), new Array(10).fill(1));
    assert.equal([...evalBatches(ramp(1), { batchSize: 2, seqLen: 5 })].length, 0);
    assert.throws(
      () => [...evalBatches(tokens, { batchSize: 1, seqLen: 3, stride: 5 })],
      /evalBatches: stride 5 > seqLen \+ 1 = 4 would skip tokens/,
    );
  });
});
