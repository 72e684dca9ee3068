"""Freeze the encoder of a network for transfer learning: train the decoder only.

The zoo has no single encoder attribute, so the encoder is found by a documented naming rule
on parameter names (``model.named_parameters()``, split at dots, leading ``net`` wrapper
components dropped): a parameter is in the encoder when its first remaining component (a
top-level block of the network) matches :data:`ENCODER_PATTERN`:
``encoders``/``encoder`` (our U-Nets, SegNet, U-Net++), ``backbone`` (FCN, DeepLab),
``entry*``/``down*`` (V-Net, MONAI BasicUNet/SegResNet/DynUNet), ``input_block``,
``convInit``, ``vit``/``swinViT`` (UNETR, SwinUNETR), ``conv_0`` and ``conv_<i>_0`` (MONAI
BasicUNet and BasicUNet++).  When no name matches (an unknown network), the first half of the
parameter tensors in registration order is taken, which for an encoder-decoder is the
contracting path.  Batch-norm statistics of frozen layers still update in training mode.
"""

from __future__ import annotations

import re

from torch import nn

ENCODER_PATTERN = re.compile(
    r"^(encoders?|backbone|entry\w*|down\w*|input_block|convinit|vit|swinvit|conv_0|conv_\d+_0)$",
    re.IGNORECASE,
)


def encoder_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters the rule above counts as the encoder's."""
    names = [name for name, _ in model.named_parameters()]
    matched = [n for n in names if ENCODER_PATTERN.match(_top_level(n))]
    if matched:
        return matched
    return names[: len(names) // 2]


def _top_level(name: str) -> str:
    parts = name.split(".")
    while len(parts) > 1 and parts[0] == "net":
        parts.pop(0)
    return parts[0]


def freeze_encoder(model: nn.Module) -> list[str]:
    """Set ``requires_grad=False`` on the encoder's parameters; return their names."""
    frozen = set(encoder_parameter_names(model))
    for name, parameter in model.named_parameters():
        if name in frozen:
            parameter.requires_grad_(False)
    return sorted(frozen)
