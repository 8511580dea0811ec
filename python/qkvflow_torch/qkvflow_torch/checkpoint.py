"""qkvflow's model files and checkpoint folders, read and written from PyTorch.

  model file          safetensors: every parameter under its qkvflow name (F32 / F64), metadata
                      qkvflow.format = qkvflow-model/1 and qkvflow.config = the model configuration JSON
  <run>/checkpoints/step-00000100/
      model.safetensors      the model file
      optimizer.safetensors  AdamW moments m.<name>, v.<name>; metadata format qkvflow-adamw-v1, count, hyper, names
      state.json             step, sampler position, metrics.jsonl length, elapsed time, tokens, last evaluation
      config.json            the training configuration
  <run>/checkpoints/latest.json   {"step": 100, "dir": "step-00000100"}

Writing is atomic as in qkvflow: the files go into a hidden temporary folder that is renamed into place once
complete; latest.json is replaced afterwards; older checkpoints beyond `keep` are removed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from typing import Any, Dict, List, Optional, Tuple

import torch

from . import safetensors_io as st
from .config import upgrade_model_config

FORMAT_KEY = "qkvflow.format"
CONFIG_KEY = "qkvflow.config"
FORMAT_TAG = "qkvflow-model/1"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest.json"
CHECKPOINT_FILES = (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, CONFIG_FILE)


def js_json(v: Any, indent: Optional[int] = None) -> str:
    """JSON as JavaScript's JSON.stringify writes it (integral floats without '.0', no spaces unless indented)."""

    def norm(x):
        if isinstance(x, float) and x.is_integer() and abs(x) < 2**53:
            return int(x)
        if isinstance(x, dict):
            return {k: norm(y) for k, y in x.items()}
        if isinstance(x, (list, tuple)):
            return [norm(y) for y in x]
        return x

    if indent is None:
        return json.dumps(norm(v), separators=(",", ":"), ensure_ascii=False)
    return json.dumps(norm(v), indent=indent, ensure_ascii=False)


def read_model_file(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """The state dict and the model configuration of a model file."""
    tensors, meta = st.read(path)
    if CONFIG_KEY not in meta:
        raise ValueError(f"{path} has no '{CONFIG_KEY}' metadata entry; expected a model file written by qkvflow or qkvflow_torch")
    try:
        cfg = json.loads(meta[CONFIG_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: '{CONFIG_KEY}' is not JSON ({err})") from None
    return tensors, upgrade_model_config(cfg)


def encode_model_file(state: Dict[str, torch.Tensor], config: Dict[str, Any]) -> bytes:
    return st.encode(state, {FORMAT_KEY: FORMAT_TAG, CONFIG_KEY: js_json(config)})


def write_model_file(path: str, state: Dict[str, torch.Tensor], config: Dict[str, Any]) -> None:
    st.write_bytes_atomic(path, encode_model_file(state, config))


def checkpoint_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def _complete(d: str, files=CHECKPOINT_FILES) -> bool:
    return all(os.path.exists(os.path.join(d, f)) for f in files)


def list_checkpoints(root: str, files=CHECKPOINT_FILES) -> List[Tuple[int, str]]:
    if not os.path.isdir(root):
        return []
    out = []
    for name in os.listdir(root):
        m = re.fullmatch(r"step-(\d+)", name)
        if m and _complete(os.path.join(root, name), files):
            out.append((int(m.group(1)), os.path.join(root, name)))
    return sorted(out)


def resolve_checkpoint_dir(p: str, files=CHECKPOINT_FILES) -> Optional[str]:
    """A checkpoint folder from a checkpoint folder, a run folder (its latest) or a checkpoints folder."""
    p = os.path.abspath(p)
    if not os.path.exists(p):
        raise FileNotFoundError(f"'{p}' does not exist; expected a run folder, its checkpoints folder or a step-* checkpoint folder")
    if _complete(p, files):
        return p
    root = os.path.join(p, CHECKPOINTS_DIR) if os.path.isdir(os.path.join(p, CHECKPOINTS_DIR)) else p
    latest = os.path.join(root, LATEST_FILE)
    if os.path.exists(latest):
        try:
            with open(latest, encoding="utf-8") as f:
                d = os.path.join(root, json.load(f)["dir"])
            if _complete(d, files):
                return d
        except (OSError, ValueError, KeyError, TypeError):
            pass
    found = list_checkpoints(root, files)
    return found[-1][1] if found else None


def resolve_model_file(p: str) -> str:
    """A model file from a .safetensors path, a checkpoint folder or a run folder."""
    if os.path.isfile(p):
        return p
    d = resolve_checkpoint_dir(p, (MODEL_FILE,))
    if d is None:
        raise FileNotFoundError(f"'{p}' holds no {MODEL_FILE} (nor {CHECKPOINTS_DIR}/step-*/{MODEL_FILE})")
    return os.path.join(d, MODEL_FILE)


def load_checkpoint(p: str) -> Dict[str, Any]:
    """Everything a checkpoint folder holds: model, model_config, optimizer (tensors, metadata), state, config, step, dir."""
    d = resolve_checkpoint_dir(p)
    if d is None:
        raise FileNotFoundError(f"'{p}' has no complete checkpoint (no {CHECKPOINTS_DIR}/step-* folder with {', '.join(CHECKPOINT_FILES)})")
    model, model_config = read_model_file(os.path.join(d, MODEL_FILE))
    opt_t, opt_m = st.read(os.path.join(d, OPTIMIZER_FILE))
    with open(os.path.join(d, STATE_FILE), encoding="utf-8") as f:
        state = json.load(f)
    with open(os.path.join(d, CONFIG_FILE), encoding="utf-8") as f:
        config = json.load(f)
    step = state.get("step")
    if not isinstance(step, int) or step < 0:
        raise ValueError(f"{os.path.join(d, STATE_FILE)} has step {step!r}; expected a non-negative integer")
    return {"dir": d, "step": step, "model": model, "model_config": model_config, "optimizer": (opt_t, opt_m), "state": state, "config": config}


def _write_synced(path: str, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(
    run_dir: str,
    step: int,
    model: Dict[str, torch.Tensor],
    model_config: Dict[str, Any],
    optimizer: Tuple[Dict[str, torch.Tensor], Dict[str, str]],
    state: Dict[str, Any],
    config: Dict[str, Any],
    keep: int = 2,
) -> str:
    """Writes the checkpoint of `step` atomically under <run_dir>/checkpoints and prunes to the newest `keep`."""
    root = os.path.join(run_dir, CHECKPOINTS_DIR)
    os.makedirs(root, exist_ok=True)
    name = checkpoint_dir_name(step)
    final = os.path.join(root, name)
    tmp = os.path.join(root, f".tmp-{name}-{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(tmp)
    try:
        _write_synced(os.path.join(tmp, MODEL_FILE), encode_model_file(model, model_config))
        _write_synced(os.path.join(tmp, OPTIMIZER_FILE), st.encode(optimizer[0], optimizer[1]))
        _write_synced(os.path.join(tmp, CONFIG_FILE), (js_json(config, 2) + "\n").encode())
        _write_synced(os.path.join(tmp, STATE_FILE), (js_json({**state, "step": step}, 2) + "\n").encode())
        if os.path.exists(final):
            old = os.path.join(root, f".old-{name}-{os.getpid()}-{secrets.token_hex(4)}")
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    st.write_bytes_atomic(os.path.join(root, LATEST_FILE), (js_json({"step": step, "dir": name}) + "\n").encode())
    for _, d in list_checkpoints(root)[: max(0, len(list_checkpoints(root)) - keep)]:
        if d != final:
            shutil.rmtree(d, ignore_errors=True)
    return final
