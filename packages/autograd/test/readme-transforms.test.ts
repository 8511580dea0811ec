/**
 * The README's vmap / jit example runs as written, and what it prints equals independent computations: the
 * per-example gradients by a loop of grad over the rows, the SGD step eagerly, the Jacobian by `jacobian`.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import * as ag from "../src/index.js";
import type { Tensor } from "../src/index.js";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const root = resolve(pkg, "../..");

test("the README's vmap and jit example runs as written and prints values equal to eager references", () => {
  const readme = readFileSync(join(pkg, "README.md"), "utf8");
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf("## vmap and jit")));
  assert.ok(m, "README has no ```ts block in the vmap and jit section");
  const dir = join(root, ".cache");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "readme-transforms.ts");
  writeFileSync(file, m[1]);
  const out = execFileSync(process.execPath, ["--import", "tsx", file], { cwd: root, encoding: "utf8" });
  const [perExample, step, jac] = out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as number[]);

  const w = ag.tensor(
    [
      [0.5, -1],
      [2, 0.25],
    ],
    { dtype: "float64" },
  );
  const xs = ag.tensor(
    [
      [1, 2],
      [3, 4],
      [5, 6],
    ],
    { dtype: "float64" },
  );
  const ys = ag.tensor(
    [
      [0, 1],
      [1, 0],
      [1, 1],
    ],
    { dtype: "float64" },
  );
  const loss = (w: Tensor, x: Tensor, y: Tensor) => ag.mean(ag.square(ag.sub(ag.tanh(ag.matmul(x, w)), y)));
  const row = (t: Tensor, i: number) => ag.squeeze(ag.slice(t, [i], [i + 1]), 0);
  const loop = [0, 1, 2].map((i) => (ag.grad(loss)(w, row(xs, i), row(ys, i)) as Tensor).toArray());
  const close = (a: unknown, b: unknown, what: string) => {
    const fa = [a].flat(3) as number[],
      fb = [b].flat(3) as number[];
    assert.equal(fa.length, fb.length, what);
    fa.forEach((v, i) => assert.ok(Math.abs(v - fb[i]) < 1e-12, `${what}: ${v} vs ${fb[i]}`));
  };
  close(perExample, loop, "per-example gradients");
  close(step, ag.sub(w, ag.mul(ag.grad(loss)(w, xs, ys) as Tensor, 0.1)).toArray(), "jitted SGD step");
  close(
    jac,
    ag
      .jacobian((v: Tensor) => ag.tanh(ag.matmul(w, v)))(ag.tensor([0.1, 0.2], { dtype: "float64" }))
      .toArray(),
    "jacfwd",
  );
});
