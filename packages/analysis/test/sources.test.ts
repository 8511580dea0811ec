import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const srcDir = fileURLToPath(new URL("../src", import.meta.url));
const sources = readdirSync(srcDir)
  .filter((f) => f.endsWith(".ts"))
  .map((f) => ({ file: f, text: readFileSync(join(srcDir, f), "utf8") }));

test("the analysis runs the models' block forward: its sources name no parameters and import no transformer ops", () => {
  assert.ok(sources.length > 5);
  // String literals naming checkpoint parameters (e.g. "h.0.attn.c_attn.weight", `${p}.ln_1.bias`, "wte.weight").
  const paramName = /(\.weight|\.bias|lora_[AB]|\bwte\b|\bwpe\b|\bln_[12fam]\b|c_attn|c_proj|c_fc|\battn\.|\bmlp\.)/;
  const literal = /"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g;
  // The ops a block forward is made of; the analysis gets attention, MLP, LayerNorm and head from @qkvflow/models.
  const forwardOps = ["gelu", "softmax", "causalMask", "layerNorm", "matmulT", "where", "take"];
  for (const { file, text } of sources) {
    const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
    for (const m of code.matchAll(literal)) assert.ok(!paramName.test(m[0]), `${file}: string literal ${m[0]} names a model parameter`);
    for (const imp of code.matchAll(/import\s*{([^}]*)}\s*from\s*"@qkvflow\/autograd"/g)) {
      const names = imp[1].split(",").map((s) => s.trim().replace(/^type\s+/, ""));
      for (const op of forwardOps) assert.ok(!names.includes(op), `${file} imports '${op}' from @qkvflow/autograd`);
    }
  }
});
