import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

test("the packed @qkvflow/autograd installs into an empty folder and works from ESM and CommonJS", { timeout: 240_000 }, () => {
  execFileSync(npm, ["run", "build"], { cwd: pkgDir, stdio: "pipe" });
  const work = mkdtempSync(join(tmpdir(), "qkvflow-pack-"));
  try {
    const out = execFileSync(npm, ["pack", "--pack-destination", work], { cwd: pkgDir, encoding: "utf8" });
    const tgz = readdirSync(work).find((f) => f.endsWith(".tgz"));
    assert.ok(tgz, `npm pack produced no tarball: ${out}`);
    const app = join(work, "app");
    execFileSync("mkdir", ["-p", app]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
    execFileSync(npm, ["install", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts", join(work, tgz)], { cwd: app, stdio: "pipe" });
    const esm = `import { grad, tensor, sum, mul, sin } from "@qkvflow/autograd";
const g = grad((x) => sum(mul(sin(x), x)))(tensor([0.5, 1.0], { dtype: "float64" }));
console.log(JSON.stringify(Array.from(g.data())));`;
    const cjs = `const { grad, tensor, sum, mul, sin } = require("@qkvflow/autograd");
const g = grad((x) => sum(mul(sin(x), x)))(tensor([0.5, 1.0], { dtype: "float64" }));
console.log(JSON.stringify(Array.from(g.data())));`;
    writeFileSync(join(app, "esm.mjs"), esm);
    writeFileSync(join(app, "cjs.cjs"), cjs);
    const expected = [0.5, 1.0].map((v) => Math.sin(v) + v * Math.cos(v));
    for (const file of ["esm.mjs", "cjs.cjs"]) {
      const res = JSON.parse(execFileSync(process.execPath, [file], { cwd: app, encoding: "utf8" }).trim()) as number[];
      res.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-12, `${file}: ${v} vs ${expected[i]}`));
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
