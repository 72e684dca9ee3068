"""The model zoo on one screen: registry name -> builder, with what users need to choose.

:func:`create_model` builds any of them for 2D or 3D and wraps it in
:class:`~.padding.SizeAgnostic`, so every model maps ``(B, C_in, *S)`` to logits
``(B, C_out, *S)`` for any ``S``.  :func:`available_models` lists them with metadata.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import deeplab, fcn, monai_nets, segnet, unet, unet_variants, unetpp, vnet
from .padding import SizeAgnostic

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one network.

    ``params`` maps ``spatial_dims`` to the parameter count at default options with one input
    channel and two classes; patch sizes are ``(Y, X)`` and ``(Z, Y, X)`` voxels.
    """

    name: str
    family: str
    paper: str
    dims: tuple[int, ...]
    default_options: dict[str, Any]
    params: dict[int, int]
    patch_size_2d: tuple[int, int]
    patch_size_3d: tuple[int, int, int]
    implementation: str  # "ours" or "monai"
    extension_3d: bool  # the paper is 2D; the 3D form is an extension (ours, or MONAI's)
    summary: str = field(default="")


@dataclass(frozen=True)
class _Entry:
    builder: Builder
    family: str
    paper: str
    implementation: str = "ours"
    extension_3d: bool = True
    patch_size_2d: tuple[int, int] = (256, 256)
    patch_size_3d: tuple[int, int, int] = (96, 96, 96)


_P = (256, 256)
_REGISTRY: dict[str, _Entry] = {
    "fcn-32s": _Entry(fcn.build_fcn(32), "FCN", "Long et al., CVPR 2015"),
    "fcn-16s": _Entry(fcn.build_fcn(16), "FCN", "Long et al., CVPR 2015"),
    "fcn-8s": _Entry(fcn.build_fcn(8), "FCN", "Long et al., CVPR 2015"),
    "segnet": _Entry(segnet.SegNet, "SegNet", "Badrinarayanan et al., TPAMI 2017"),
    "unet": _Entry(unet.build_unet, "U-Net", "Ronneberger et al., MICCAI 2015"),
    "unet++": _Entry(unetpp.UNetPlusPlus, "U-Net++", "Zhou et al., DLMIA 2018"),
    "unet-3d": _Entry(unet.build_unet_3d, "U-Net", "Cicek et al., MICCAI 2016",
                      extension_3d=False),
    "vnet": _Entry(vnet.VNet, "V-Net", "Milletari et al., 3DV 2016", extension_3d=False),
    "attention-unet": _Entry(unet_variants.build_attention_unet, "U-Net variants",
                             "Oktay et al., MIDL 2018 (review: Siddique et al. 2021)",
                             extension_3d=False),
    "residual-unet": _Entry(unet_variants.build_residual_unet, "U-Net variants",
                            "Zhang et al., GRSL 2018 (review: Siddique et al. 2021)"),
    "dense-unet": _Entry(unet_variants.build_dense_unet, "U-Net variants",
                         "Huang et al. 2017 dense blocks (review: Siddique et al. 2021)"),
    "inception-unet": _Entry(unet_variants.build_inception_unet, "U-Net variants",
                             "Szegedy et al. 2015 modules (review: Siddique et al. 2021)"),
    "r2unet": _Entry(unet_variants.build_r2unet, "U-Net variants",
                     "Alom et al. 2018 (review: Siddique et al. 2021)"),
    "deeplab-v1": _Entry(deeplab.DeepLabV1, "DeepLab", "Chen et al., ICLR 2015"),
    "deeplab-v3": _Entry(deeplab.DeepLabV3, "DeepLab", "Chen et al., arXiv 2017"),
    "deeplab-v3plus": _Entry(deeplab.DeepLabV3Plus, "DeepLab", "Chen et al., ECCV 2018"),
    "monai-segresnet": _Entry(monai_nets.build_segresnet, "MONAI", "Myronenko, BrainLes 2018",
                              "monai", extension_3d=False),
    "monai-dynunet": _Entry(monai_nets.build_dynunet, "MONAI", "Isensee et al., Nat Methods 2021",
                            "monai", extension_3d=False),
    "monai-unetr": _Entry(monai_nets.build_unetr, "MONAI", "Hatamizadeh et al., WACV 2022",
                          "monai", extension_3d=False),
    "monai-swinunetr": _Entry(monai_nets.build_swinunetr, "MONAI",
                              "Hatamizadeh et al., BrainLes 2021", "monai", extension_3d=False,
                              patch_size_2d=(224, 224)),
    "monai-basicunet": _Entry(monai_nets.build_monai_basicunet, "MONAI",
                              "Ronneberger et al., MICCAI 2015", "monai"),
    "monai-basicunetplusplus": _Entry(monai_nets.build_monai_basicunetplusplus, "MONAI",
                                      "Zhou et al., DLMIA 2018", "monai"),
    "monai-attentionunet": _Entry(monai_nets.build_monai_attentionunet, "MONAI",
                                  "Oktay et al., MIDL 2018", "monai", extension_3d=False),
}


def model_names() -> list[str]:
    """Registered names, in registry order."""
    return list(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        msg = f"unknown model {name!r}; valid names: {', '.join(_REGISTRY)}"
        raise KeyError(msg) from None


def default_options(name: str) -> dict[str, Any]:
    """The keyword options of a model's builder with their defaults."""
    signature = inspect.signature(_entry(name).builder)
    return {p.name: p.default for p in signature.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def create_model(name: str, *, spatial_dims: int, in_channels: int, out_channels: int,
                 **options: Any) -> SizeAgnostic:
    """Build a registered network: ``(B, in_channels, *S)`` -> logits ``(B, out_channels, *S)``.

    Args:
        name: a registry name (see :func:`available_models`).
        spatial_dims: 2 (``S = (Y, X)``) or 3 (``S = (Z, Y, X)``).
        in_channels: input channels (e.g. co-registered modalities).
        out_channels: classes, background included.
        **options: keyword options of that network (widths etc., see ``default_options``).

    Raises:
        KeyError: unknown name (the message lists the valid ones).
        TypeError: unknown option (the message lists the valid ones).
        ValueError: bad dims, channel counts or option values.
    """
    entry = _entry(name)
    if spatial_dims not in (2, 3):
        msg = f"spatial_dims must be 2 or 3, got {spatial_dims!r}"
        raise ValueError(msg)
    for label, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            msg = f"{label} must be a positive int, got {value!r}"
            raise ValueError(msg)
    known = default_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        msg = f"{name} has no option {', '.join(unknown)}; valid options: {', '.join(known)}"
        raise TypeError(msg)
    net = entry.builder(spatial_dims, in_channels, out_channels, **options)
    return SizeAgnostic(net, spatial_dims)


class _MetaItem(torch.overrides.TorchFunctionMode):
    """``Tensor.item()`` of a meta tensor gives 0 (MONAI's SwinUNETR reads drop-path rates
    while it builds; a model built on ``meta`` only has its shapes counted, never runs)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.item and args[0].is_meta:
            return 0.0
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def meta_device() -> Iterator[None]:
    """Build modules on the ``meta`` device: shapes without memory, for size checks."""
    with torch.device("meta"), _MetaItem():
        yield


def count_parameters(name: str, *, spatial_dims: int, in_channels: int = 1,
                     out_channels: int = 2, **options: Any) -> int:
    """Parameter count, computed on the ``meta`` device (no memory is allocated)."""
    with meta_device():
        model = create_model(name, spatial_dims=spatial_dims, in_channels=in_channels,
                             out_channels=out_channels, **options)
    return sum(p.numel() for p in model.parameters())


@functools.cache
def _info(name: str) -> ModelInfo:
    entry = _entry(name)
    doc = inspect.getdoc(entry.builder) or ""
    return ModelInfo(
        name=name,
        family=entry.family,
        paper=entry.paper,
        dims=(2, 3),
        default_options=default_options(name),
        params={d: count_parameters(name, spatial_dims=d) for d in (2, 3)},
        patch_size_2d=entry.patch_size_2d,
        patch_size_3d=entry.patch_size_3d,
        implementation=entry.implementation,
        extension_3d=entry.extension_3d,
        summary=doc.split("\n\n")[0].replace("\n", " "),
    )


def available_models() -> list[ModelInfo]:
    """Metadata of every registered network, in registry order."""
    return [_info(name) for name in _REGISTRY]
