import { test } from "node:test";
import assert from "node:assert/strict";
import ndarray from "ndarray";
import * as ag from "../src/index.js";

test("creation functions give the documented values, shapes and dtypes", () => {
  const t = ag.tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assert.equal(t.dtype, "float32");
  assert.deepEqual(t.shape, [2, 3]);
  assert.deepEqual(t.toArray(), [
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assert.deepEqual(ag.tensor([1, 2, 3, 4], { shape: [2, 2], dtype: "int32" }).toArray(), [
    [1, 2],
    [3, 4],
  ]);
  assert.equal(ag.tensor(new Float64Array([1, 2])).dtype, "float64");
  assert.deepEqual(ag.zeros([2], "int32").toArray(), [0, 0]);
  assert.deepEqual(ag.ones([1, 2]).toArray(), [[1, 1]]);
  assert.deepEqual(ag.full([2], 7).toArray(), [7, 7]);
  assert.deepEqual(ag.arange(5).toArray(), [0, 1, 2, 3, 4]);
  assert.deepEqual(ag.arange(1, 2, 0.25, "float64").toArray(), [1, 1.25, 1.5, 1.75]);
  assert.deepEqual(ag.linspace(0, 1, 5, "float64").toArray(), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(ag.eye(2, 3).toArray(), [
    [1, 0, 0],
    [0, 1, 0],
  ]);
  assert.equal(ag.scalar(3).item(), 3);
  assert.throws(() => ag.tensor([[1, 2], [3]]), /ragged/);
  assert.throws(() => ag.tensor([1, 2, 3], { shape: [2, 2] }), /3 values do not fill shape \[2, 2\]/);
  assert.throws(() => ag.ones([2]).item(), /item: tensor has shape \[2\]/);
});

test("tensor methods mirror the functional ops", () => {
  const a = ag.tensor(
    [
      [1, 2],
      [3, 4],
    ],
    { dtype: "float64" },
  );
  assert.deepEqual(a.add(1).mul(2).toArray(), [
    [4, 6],
    [8, 10],
  ]);
  assert.deepEqual(a.T.toArray(), [
    [1, 3],
    [2, 4],
  ]);
  assert.deepEqual(a.matmul(a).toArray(), [
    [7, 10],
    [15, 22],
  ]);
  assert.deepEqual(a.sum(0).toArray(), [4, 6]);
  assert.deepEqual(a.mean(1, { keepdims: true }).toArray(), [[1.5], [3.5]]);
  assert.deepEqual(a.max().item(), 4);
  assert.deepEqual(a.var().item(), 1.25);
  assert.deepEqual(a.reshape([4]).slice([1], [3]).toArray(), [2, 3]);
  assert.deepEqual(a.slice([0, 1], [null, null]).toArray(), [[2], [4]]);
  assert.deepEqual(a.slice([0], [null], [2]).toArray(), [[1, 2]]);
});

test("shape ops: concat, stack, split, take, scatterAdd, broadcastTo, squeeze, expandDims", () => {
  const a = ag.tensor([
    [1, 2],
    [3, 4],
  ]);
  assert.deepEqual(ag.concat([a, a], 1).toArray(), [
    [1, 2, 1, 2],
    [3, 4, 3, 4],
  ]);
  assert.deepEqual(ag.stack([a, a], 0).shape, [2, 2, 2]);
  assert.deepEqual(
    ag.split(ag.arange(6, undefined, 1, "float32"), [2, 4]).map((t) => t.toArray()),
    [
      [0, 1],
      [2, 3, 4, 5],
    ],
  );
  assert.deepEqual(ag.take(a, ag.tensor([1, 1, 0], { dtype: "int32" }), 0).toArray(), [
    [3, 4],
    [3, 4],
    [1, 2],
  ]);
  assert.deepEqual(ag.take(a, ag.tensor([[1], [0]], { dtype: "int32" }), 1).toArray(), [
    [[2], [1]],
    [[4], [3]],
  ]);
  assert.deepEqual(ag.scatterAdd(ag.zeros([3]), ag.tensor([0, 2, 0], { dtype: "int32" }), ag.tensor([1, 2, 3])).toArray(), [4, 0, 2]);
  assert.deepEqual(ag.broadcastTo(ag.tensor([1, 2]), [2, 2]).toArray(), [
    [1, 2],
    [1, 2],
  ]);
  assert.deepEqual(ag.squeeze(ag.zeros([1, 2, 1])).shape, [2]);
  assert.deepEqual(ag.expandDims(ag.zeros([2]), -1).shape, [2, 1]);
  assert.deepEqual(ag.transpose(ag.reshape(ag.arange(6, undefined, 1, "float32"), [1, 2, 3]), [2, 0, 1]).toArray(), [
    [[0, 3]],
    [[1, 4]],
    [[2, 5]],
  ]);
});

test("reshape is a view sharing the buffer", () => {
  const a = ag.tensor([1, 2, 3, 4]);
  const b = ag.reshape(a, [2, 2]);
  assert.equal(a.data(), b.data());
});

test("ndarray interop shares memory for row-major layouts and copies others", () => {
  const data = new Float32Array([1, 2, 3, 4, 5, 6]);
  const nd = ndarray(data, [2, 3]);
  const t = ag.fromNdarray(nd);
  assert.deepEqual(t.shape, [2, 3]);
  assert.equal(t.data().buffer, data.buffer);
  const tr = ag.fromNdarray(nd.transpose(1, 0));
  assert.deepEqual(tr.toArray(), [
    [1, 4],
    [2, 5],
    [3, 6],
  ]);
  const back = ag.toNdarray(t);
  assert.equal(back.get(1, 2), 6);
  assert.equal(back.data, t.data());
});

test("random: same key, same numbers; split keys differ; results do not depend on call order", () => {
  const k = ag.random.key(42);
  const a = ag.random.normal(k, [1000], { dtype: "float64" }).data();
  ag.random.uniform(ag.random.key(7), [50]);
  const b = ag.random.normal(k, [1000], { dtype: "float64" }).data();
  assert.deepEqual(Array.from(a), Array.from(b));
  const [k1, k2] = ag.random.split(k, 2);
  assert.notDeepEqual(Array.from(ag.random.uniform(k1, [4]).data()), Array.from(ag.random.uniform(k2, [4]).data()));
  const mean = Array.from(a).reduce((s, v) => s + v, 0) / a.length;
  const v = Array.from(a).reduce((s, x) => s + (x - mean) ** 2, 0) / a.length;
  assert.ok(Math.abs(mean) < 0.1 && Math.abs(v - 1) < 0.1, `normal moments ${mean}, ${v}`);
  const u = Array.from(ag.random.uniform(k, [2000], { low: 2, high: 3 }).data());
  assert.ok(u.every((x) => x >= 2 && x < 3));
  const p = ag.random.permutation(k, 10).toArray() as number[];
  assert.deepEqual(
    [...p].sort((x, y) => x - y),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  const c = ag.random
    .categorical(
      k,
      ag.tensor([
        [0, 0, 30],
        [30, 0, 0],
      ]),
    )
    .toArray();
  assert.deepEqual(c, [2, 0]);
  assert.deepEqual(ag.random.Key.fromJSON(k.toJSON()).toJSON(), k.toJSON());
});
