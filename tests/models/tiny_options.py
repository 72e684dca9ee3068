"""Tiny options for every registered model, so the contract tests run in seconds on 2 cores."""

from __future__ import annotations

from typing import Any

TINY: dict[str, dict[str, Any]] = {
    "fcn-32s": {"width": 4, "fc_width": 16, "dropout": 0.0, "norm": "batch"},
    "fcn-16s": {"width": 4, "fc_width": 16, "dropout": 0.0, "norm": "batch"},
    "fcn-8s": {"width": 4, "fc_width": 16, "dropout": 0.0, "norm": "batch"},
    "segnet": {"width": 4},
    "unet": {"features": (4, 8, 16)},
    "unet++": {"features": (4, 8, 16)},
    "unet-3d": {"features": (4, 8, 16)},
    "vnet": {"width": 4, "convs": (1, 2, 2), "kernel_size": 3},
    "attention-unet": {"features": (4, 8, 16)},
    "residual-unet": {"features": (4, 8, 16)},
    "dense-unet": {"features": (4, 8, 16), "layers": 2},
    "inception-unet": {"features": (4, 8, 16)},
    "r2unet": {"features": (4, 8, 16), "steps": 1},
    "deeplab-v1": {"width": 4, "fc_width": 16, "dropout": 0.0, "norm": "batch"},
    "deeplab-v3": {"width": 4, "aspp_channels": 8},
    "deeplab-v3plus": {"width": 4, "aspp_channels": 8, "low_level_channels": 4},
    "monai-segresnet": {"init_filters": 8, "blocks_down": (1, 1, 1), "blocks_up": (1, 1)},
    "monai-dynunet": {"filters": (4, 8, 16)},
    "monai-unetr": {"img_size": 16, "feature_size": 4, "hidden_size": 16, "mlp_dim": 32,
                    "num_heads": 2},
    "monai-swinunetr": {"feature_size": 12, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1),
                        "window_size": 4},
    "monai-basicunet": {"features": (4, 4, 8, 16, 32, 4)},
    "monai-basicunetplusplus": {"features": (4, 4, 8, 16, 32, 4)},
    "monai-attentionunet": {"channels": (4, 8, 16)},
}
