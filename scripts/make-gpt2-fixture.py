#!/usr/bin/env python3
"""Independent reference for @qkvflow/models: a tiny random GPT-2 in the Hugging Face layout.

Writes, into packages/models/fixtures/:
  gpt2-tiny-hf.safetensors  the weights, named as Hugging Face's GPT2LMHeadModel saves them
                            (`transformer.` prefix, `attn.bias` / `attn.masked_bias` buffers, tied `lm_head.weight`)
  gpt2-tiny-hf.json         the configuration, the input token ids and the reference logits

The forward pass below is written from the GPT-2 equations with NumPy in float64 (from the float32 weights
that are stored), without using any qkvflow code. Run from the repository root:
    python3 scripts/make-gpt2-fixture.py
"""
import json
import math
import os
import struct

import numpy as np

V, P, E, H, L = 64, 16, 16, 2, 2
B, T = 2, 12
EPS = 1e-5
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packages", "models", "fixtures")

rng = np.random.default_rng(20250301)


def f32(a):
    return np.asarray(a, dtype=np.float32)


w = {}
w["wte.weight"] = f32(rng.normal(0, 0.5, (V, E)))
w["wpe.weight"] = f32(rng.normal(0, 0.3, (P, E)))
for i in range(L):
    p = f"h.{i}."
    w[p + "ln_1.weight"] = f32(1 + rng.normal(0, 0.2, E))
    w[p + "ln_1.bias"] = f32(rng.normal(0, 0.1, E))
    w[p + "attn.c_attn.weight"] = f32(rng.normal(0, 0.4, (E, 3 * E)))
    w[p + "attn.c_attn.bias"] = f32(rng.normal(0, 0.1, 3 * E))
    w[p + "attn.c_proj.weight"] = f32(rng.normal(0, 0.3, (E, E)))
    w[p + "attn.c_proj.bias"] = f32(rng.normal(0, 0.1, E))
    w[p + "ln_2.weight"] = f32(1 + rng.normal(0, 0.2, E))
    w[p + "ln_2.bias"] = f32(rng.normal(0, 0.1, E))
    w[p + "mlp.c_fc.weight"] = f32(rng.normal(0, 0.3, (E, 4 * E)))
    w[p + "mlp.c_fc.bias"] = f32(rng.normal(0, 0.1, 4 * E))
    w[p + "mlp.c_proj.weight"] = f32(rng.normal(0, 0.2, (4 * E, E)))
    w[p + "mlp.c_proj.bias"] = f32(rng.normal(0, 0.1, E))
w["ln_f.weight"] = f32(1 + rng.normal(0, 0.2, E))
w["ln_f.bias"] = f32(rng.normal(0, 0.1, E))

ids = rng.integers(0, V, size=(B, T))


def layer_norm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * g + b


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def forward(ids):
    W = {k: v.astype(np.float64) for k, v in w.items()}
    x = W["wte.weight"][ids] + W["wpe.weight"][: ids.shape[1]]
    D = E // H
    causal = np.tril(np.ones((T, T), dtype=bool))
    for i in range(L):
        p = f"h.{i}."
        a = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"])
        qkv = a @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        q, k, v = np.split(qkv, 3, axis=-1)
        heads = lambda z: z.reshape(B, T, H, D).transpose(0, 2, 1, 3)
        q, k, v = heads(q), heads(k), heads(v)
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D)
        s = np.where(causal, s, -np.inf)
        y = (softmax(s) @ v).transpose(0, 2, 1, 3).reshape(B, T, E)
        x = x + y @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        m = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"])
        hdn = gelu_new(m @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
        x = x + hdn @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    x = layer_norm(x, W["ln_f.weight"], W["ln_f.bias"])
    return x @ W["wte.weight"].T


logits = forward(ids)

# Hugging Face layout: prefix, causal-mask buffers, tied lm_head.
tensors = {f"transformer.{k}": v for k, v in w.items()}
for i in range(L):
    tensors[f"transformer.h.{i}.attn.bias"] = f32(np.tril(np.ones((P, P)))).reshape(1, 1, P, P)
    tensors[f"transformer.h.{i}.attn.masked_bias"] = f32(-1e4).reshape(())
tensors["lm_head.weight"] = w["wte.weight"]


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs = []
    off = 0
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


os.makedirs(OUT, exist_ok=True)
write_safetensors(os.path.join(OUT, "gpt2-tiny-hf.safetensors"), tensors, {"format": "pt"})
with open(os.path.join(OUT, "gpt2-tiny-hf.json"), "w") as f:
    json.dump(
        {
            "description": "Tiny random GPT-2 in the Hugging Face layout; logits computed with NumPy float64 by scripts/make-gpt2-fixture.py",
            "config": {"vocab_size": V, "n_positions": P, "n_embd": E, "n_head": H, "n_layer": L, "layer_norm_epsilon": EPS},
            "input_ids": ids.tolist(),
            "logits": [[[float(repr_v) for repr_v in row] for row in seq] for seq in logits.tolist()],
        },
        f,
    )
print("wrote", OUT, "logits range", float(logits.min()), float(logits.max()))
