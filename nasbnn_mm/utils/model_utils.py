"""Small helpers on models shared by the engine and the hooks."""
import torch.nn as nn
from mmengine.model import is_model_wrapper

__all__ = ['unwrap_model']


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside an mmengine model wrapper (DDP...), or ``model``."""
    return model.module if is_model_wrapper(model) else model
