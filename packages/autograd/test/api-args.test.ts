import { test } from "node:test";
import assert from "node:assert/strict";
import * as ag from "../src/index.js";

const mask = (xs: number[]) => ag.gt(ag.tensor(xs), 0.5);

test("bool masks: add / sub / mul / div / pow are refused with a message saying what to do; maximum / minimum are logical or / and", () => {
  const a = mask([1, 1, 0, 0]);
  const b = mask([1, 0, 1, 0]);
  for (const [name, f] of [
    ["add", ag.add],
    ["sub", ag.sub],
    ["mul", ag.mul],
    ["div", ag.div],
    ["pow", ag.pow],
  ] as const) {
    assert.throws(
      () => f(a, b),
      new RegExp(`^Error: ${name}: both operands are bool masks; arithmetic on bool is refused.*cast\\(mask, 'float32'\\)`),
    );
  }
  assert.deepEqual(Array.from(ag.maximum(a, b).data()), [1, 1, 1, 0]);
  assert.deepEqual(Array.from(ag.minimum(a, b).data()), [1, 0, 0, 0]);
  // the documented way: cast first; the sum of two masks counts
  const s = ag.add(ag.cast(a, "int32"), ag.cast(b, "int32"));
  assert.equal(s.dtype, "int32");
  assert.deepEqual(Array.from(s.data()), [2, 1, 1, 0]);
});

test("binary ops name a non-tensor operand instead of a raw TypeError", () => {
  const t = ag.tensor([1, 2]);
  const cases: [unknown, unknown, RegExp][] = [
    [t, null, /the second operand is null; expected a Tensor or a number/],
    [null, t, /the first operand is null; expected a Tensor or a number/],
    [t, undefined, /the second operand is undefined/],
    [t, "1", /the second operand is string/],
    [t, [1, 2], /the second operand is an array \(wrap it with tensor\(\.\.\.\)\)/],
    [{}, t, /the first operand is object/],
  ];
  for (const [x, y, re] of cases) {
    for (const f of [ag.add, ag.sub, ag.mul, ag.div, ag.maximum, ag.lt]) {
      assert.throws(
        () => f(x as ag.Tensor, y as ag.Tensor),
        (e: Error) => e.constructor === Error && re.test(e.message),
      );
    }
  }
});

test("creation: shapes are checked before allocation (null, negative, fractional, over the element limit)", () => {
  const cases: [unknown, RegExp][] = [
    [null, /^zeros|^full: shape is null; expected an array of non-negative integer sizes/],
    ["3", /full: shape is string/],
    [[-1], /full: invalid shape \[-1\]; expected non-negative integer sizes/],
    [[2.5], /invalid shape/],
    [[1e6, 1e6], /full: shape \[1000000, 1000000\] has 1000000000000 elements, more than the limit of 2147483647 elements per tensor/],
  ];
  for (const [shape, re] of cases) {
    assert.throws(
      () => ag.zeros(shape as number[]),
      (e: Error) => e.constructor === Error && re.test(e.message),
    );
  }
  assert.throws(() => ag.ones([65536, 65536]), /more than the limit/);
  assert.throws(() => ag.random.normal(ag.random.key(0), [1e5, 1e5]), /more than the limit of 2147483647/);
  assert.equal(ag.MAX_TENSOR_ELEMENTS, 2 ** 31 - 1);
  assert.equal(ag.zeros([0, 5]).size, 0);
});
