import { test } from "node:test";
import assert from "node:assert/strict";
import { random } from "@qkvflow/autograd";
import { countParameters, createModel, parameterShapes, preset, presets, validateConfig } from "@qkvflow/models";

test("GPT-2 small (V 50257, context 1024) has 124,439,808 parameters", () => {
  const c = presets["gpt2-small"];
  assert.equal(c.vocabSize, 50257);
  assert.equal(c.blockSize, 1024);
  assert.equal(countParameters(c), 124_439_808);
});

test("DiffEqFormer small (E 768, 12 heads, L 12, d 20, S 128) has 188,254,152 parameters", () => {
  const c = presets["diffeqformer-small"];
  assert.deepEqual([c.nEmbd, c.nHead, c.nLayer], [768, 12, 12]);
  assert.equal(c.kind === "diffeqformer" && c.timeEmbedDim, 20);
  assert.equal(c.kind === "diffeqformer" && c.sinusoidalDim, 128);
  assert.equal(countParameters(c), 188_254_152);
});

test("paper-scale counts agree with the published sizes (GPT-2 354.8M / 774M, DiffEqFormer table of §1.2)", () => {
  // Published GPT-2 sizes (tied unembedding, no lm_head): medium 354,823,168 and large 774,030,080.
  assert.equal(countParameters(presets["gpt2-medium"]), 354_823_168);
  assert.equal(countParameters(presets["gpt2-large"]), 774_030_080);
  const approx = (got: number, want: number, rel: number) =>
    assert.ok(Math.abs(got - want) / want < rel, `count ${got} is not within ${rel * 100}% of ${want}`);
  approx(countParameters(presets["diffeqformer-medium-wiki"]), 670e6, 0.01);
  approx(countParameters(presets["diffeqformer-medium"]), 1.27e9, 0.01);
  approx(countParameters(presets["diffeqformer-large"]), 1.97e9, 0.01);
  approx(countParameters(presets["diffeqformer-finetune"]), 1.33e9, 0.01);
  // the count does not depend on the number of Euler steps L
  assert.equal(countParameters(preset("diffeqformer-small", { nLayer: 3 })), 188_254_152);
});

test("countParameters and parameterShapes match the allocated micro models exactly", () => {
  for (const name of ["gpt2-micro", "diffeqformer-micro"]) {
    const c = presets[name];
    const m = createModel(c, random.key(1));
    const shapes = parameterShapes(c);
    assert.deepEqual(Object.keys(m.parameters()), Object.keys(shapes), `${name}: names and order`);
    assert.deepEqual(m.parameterShapes(), shapes, `${name}: shapes`);
    let sum = 0;
    for (const p of Object.values(m.parameters())) sum += p.size;
    assert.equal(countParameters(c), sum, name);
  }
  const disc = validateConfig({ kind: "discretized", vocabSize: 30, blockSize: 8, nEmbd: 8, nHead: 2, nLayer: 5 });
  const m = createModel(disc, random.key(2));
  assert.deepEqual(m.parameterShapes(), parameterShapes(disc));
  assert.equal(m.numParameters(), countParameters(disc));
});

test("DiffEqFormer parameter names are the documented safetensors names", () => {
  const c = presets["diffeqformer-micro"];
  if (c.kind !== "diffeqformer") throw new Error("expected a diffeqformer preset");
  const s = parameterShapes(c);
  const E = c.nEmbd,
    d = c.timeEmbedDim,
    w = 2 * c.sinusoidalDim + 1;
  assert.deepEqual(s["block.attn.c_attn.lin1.weight"], [w, d]);
  assert.deepEqual(s["block.attn.c_attn.lin1.bias"], [d]);
  assert.deepEqual(s["block.attn.c_attn.lin2.weight"], [d, d]);
  assert.deepEqual(s["block.attn.c_attn.lin2.bias"], [d]);
  assert.deepEqual(s["block.attn.c_attn.f_W.weight"], [d, E, 3 * E]);
  assert.deepEqual(s["block.attn.c_attn.f_W.bias"], [E, 3 * E]);
  assert.deepEqual(s["block.attn.c_attn.f_b"], [d, 3 * E]);
  assert.deepEqual(s["block.mlp.c_proj.f_W.weight"], [d, 4 * E, E]);
  assert.deepEqual(s["block.ln_a.gamma"], [E, d]);
  assert.deepEqual(s["block.ln_m.beta"], [E, d]);
  assert.deepEqual(s["ln_f.bias"], [E]);
  assert.equal(Object.keys(s).length, 2 + 4 * 7 + 2 * 6 + 2);
});

test("configurations validate with clear errors and survive JSON", () => {
  assert.throws(
    () => validateConfig({ kind: "gpt2", vocabSize: 10, blockSize: 4, nEmbd: 8, nHead: 2, nLayer: 1, nLayers: 3 }),
    /unknown key 'nLayers'.*valid keys are kind, vocabSize, blockSize, nEmbd, nHead, nLayer/,
  );
  assert.throws(() => validateConfig({ kind: "bert" }), /kind is "bert"; expected one of gpt2, diffeqformer, discretized/);
  assert.throws(
    () => validateConfig({ kind: "gpt2", vocabSize: 10, blockSize: 4, nEmbd: 10, nHead: 3, nLayer: 1 }),
    /nEmbd 10 is not divisible by nHead 3/,
  );
  assert.throws(
    () => validateConfig({ kind: "gpt2", vocabSize: 0, blockSize: 4, nEmbd: 8, nHead: 2, nLayer: 1 }),
    /vocabSize is 0; expected a positive integer/,
  );
  assert.throws(
    () => validateConfig({ kind: "gpt2", vocabSize: 9, blockSize: 4, nEmbd: 8, nHead: 2, nLayer: 1, residPdrop: 1 }),
    /residPdrop is 1; expected a number in \[0, 1\)/,
  );
  assert.throws(
    () => validateConfig({ ...presets["diffeqformer-micro"], solver: { method: "rk4", tol: 1 } }),
    /unknown key 'tol' in solver; valid keys are method, steps, rtol, atol, maxSteps/,
  );
  assert.throws(
    () => validateConfig({ ...presets["gpt2-micro"], timeEmbedDim: 4 }),
    /unknown key 'timeEmbedDim' in a 'gpt2' configuration/,
  );
  assert.throws(() => preset("gpt5"), /unknown preset 'gpt5'; valid presets are gpt2-small/);
  for (const [name, c] of Object.entries(presets)) assert.deepEqual(validateConfig(JSON.parse(JSON.stringify(c))), c, name);
  const tiny = presets["diffeqformer-tiny"];
  assert.deepEqual([tiny.nEmbd, tiny.nLayer, tiny.nHead, tiny.blockSize], [128, 4, 4, 128]);
  assert.ok(tiny.kind === "diffeqformer" && tiny.timeEmbedDim === 8 && tiny.sinusoidalDim === 16);
});
