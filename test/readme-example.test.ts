import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

test("the README's autograd example runs as written and prints the closed-form gradient", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Autograd in a few lines"));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(m, "README has no ```ts block in the autograd section");
  const dir = join(root, ".cache");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "readme-example.ts");
  writeFileSync(file, m[1]);
  const out = execFileSync(process.execPath, ["--import", "tsx", file], { cwd: root, encoding: "utf8" });
  const first = JSON.parse(
    `[${
      out
        .split("\n")[0]
        .replace(/^\[|\]$/g, "")
        .split("] [")[0]
    }]`,
  ) as number[];
  const expected = [0.5, 1, 2].map((v) => Math.sin(v) + v * Math.cos(v));
  first.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-12, `${v} vs ${expected[i]}`));
  assert.match(out, /\n[\d.e-]+ \[ 3, 1 \] \[ 1 \]\n/);
});
