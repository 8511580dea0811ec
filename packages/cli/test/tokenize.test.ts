/**
 * `qkvflow tokenize`: the splits of a configuration's data section as little-endian uint16 files plus tokens.json,
 * checked against the splits the trainer itself loads (loadRunData) and against the bytes on disk read by hand.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { GPT2_EOS_ID, GPT2_VOCAB_SIZE, loadRunData, readTokenFiles, validateTrainConfig } from "@qkvflow/train";
import { main } from "../src/cli.js";
import { tmpDir } from "../../../test/helpers/tmp.js";

async function quiet(argv: string[]): Promise<{ code: number; err: string }> {
  const saved = { log: console.log, error: console.error };
  let err = "";
  console.log = () => undefined;
  console.error = (...a: unknown[]) => void (err += `${a.join(" ")}\n`);
  try {
    return { code: await main(argv), err };
  } finally {
    console.log = saved.log;
    console.error = saved.error;
  }
}

test("qkvflow tokenize writes every split as uint16 little-endian tokens with a header naming the train and eval splits", async () => {
  const dir = tmpDir();
  const text = path.join(dir, "corpus.txt");
  const lines = Array.from({ length: 200 }, (_, i) => `Line ${i}: the quick brown fox jumps over the lazy dog number ${i * 7}.`);
  fs.writeFileSync(text, lines.join("\n"));
  const raw = {
    name: "tok",
    data: { dataset: "text", dataDir: text, cacheDir: path.join(dir, "cache"), heldOutFraction: 0.2, evalSplit: "test", seqLen: 8 },
  };
  const cfgFile = path.join(dir, "tok.json");
  fs.writeFileSync(cfgFile, JSON.stringify(raw));
  const out = path.join(dir, "tokens");
  const r = await quiet(["tokenize", "--config", cfgFile, "--out", out]);
  assert.equal(r.code, 0, r.err);

  const { header, splits } = readTokenFiles(out);
  const want = await loadRunData(validateTrainConfig(raw).data);
  assert.equal(header.format, "qkvflow-token-files");
  assert.equal(header.vocabSize, GPT2_VOCAB_SIZE);
  assert.equal(header.eosId, GPT2_EOS_ID);
  assert.equal(header.train, want.train.name);
  assert.equal(header.eval, "test");
  assert.deepEqual(Object.keys(header.splits).sort(), Object.keys(want.splits).sort());
  for (const [name, tokens] of Object.entries(want.splits)) {
    assert.deepEqual(splits[name], Uint16Array.from(tokens), `split ${name}`);
    const bytes = fs.readFileSync(path.join(out, header.splits[name]!.file));
    assert.equal(bytes.length, 2 * tokens.length);
    for (const i of [0, 1, tokens.length - 1])
      assert.equal(bytes[2 * i]! | (bytes[2 * i + 1]! << 8), tokens[i], `${name}[${i}] little-endian`);
  }
});

test("qkvflow tokenize without --out is a usage error naming the option", async () => {
  const r = await quiet(["tokenize", "--config", "tiny-gpt2-wikitext2"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /tokenize needs --out DIR/);
});
