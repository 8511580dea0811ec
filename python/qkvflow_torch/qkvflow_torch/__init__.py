"""qkvflow_torch: qkvflow's GPT-2 and DiffEqFormer as PyTorch modules, reading and writing qkvflow's configuration
files, token files and checkpoints, with a torchrun (DDP / FSDP) trainer. See the package README."""

from .config import load_train_config, resolve_model_section, validate_model_config
from .models import DiffEqFormer, Discretized, Gpt2, create_model, discretize, load_state, state_dict

__version__ = "0.1.0"
__all__ = [
    "DiffEqFormer",
    "Discretized",
    "Gpt2",
    "create_model",
    "discretize",
    "load_state",
    "load_train_config",
    "resolve_model_section",
    "state_dict",
    "validate_model_config",
]
