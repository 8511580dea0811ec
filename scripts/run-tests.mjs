#!/usr/bin/env node
// Runs every *.test.ts under packages/*/test and test/ with node's test runner (through tsx).
// Extra arguments filter the files by substring, e.g. `npm test -- autograd`.
import { readdirSync, statSync, existsSync } from "node:fs";
import { join, relative } from "node:path";
import { spawnSync } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const files = [];
function walk(dir) {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === "node_modules" || name === "fixtures") continue;
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".test.ts")) files.push(relative(root, p));
  }
}
for (const pkg of readdirSync(join(root, "packages")).sort()) walk(join(root, "packages", pkg, "test"));
walk(join(root, "test"));
const filters = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const picked = filters.length ? files.filter((f) => filters.some((s) => f.includes(s))) : files;
if (picked.length === 0) {
  console.error(`no test files matched ${filters.join(", ")}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", ...picked], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
