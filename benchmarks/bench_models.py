"""Time every zoo network at a reference patch, side by side with MONAI's equivalents.

    python benchmarks/bench_models.py                 # the table and the pairs, CPU, 2 threads
    python benchmarks/bench_models.py --pairs-only    # ours vs MONAI only
    python benchmarks/bench_models.py --models vnet unet --dims 3   # refresh some rows
    python benchmarks/bench_models.py --quick         # tiny sizes, a smoke run
    python benchmarks/bench_models.py --device cuda --amp   # GPU numbers with autocast

Reference patch: 2D 256x256, 3D 96^3, batch 1, one input channel, two classes.  Forward is
timed in eval mode under ``no_grad``; forward+backward in train mode with the gradient of
``logits.mean()``.  Each time is the *minimum* over ``--repeats`` runs after one warm-up (the
warm-up counts as a run where it takes longer than ``--warmup-cap`` seconds, i.e. for the
largest 3D networks); the minimum is the estimate least disturbed by other processes on a
shared machine.  Ours vs MONAI pairs are timed *interleaved* (ours, MONAI, ours, MONAI, ...)
so that a change of machine load hits both, and reported as ratios.  The 1-minute load
average is recorded before and after every row.  FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode`` (one forward; a multiply-add counts 2).

Results are merged into ``benchmarks/results/models_<device>.json`` (rows of a run replace
the same rows of earlier runs) and ``docs/models.md`` is regenerated from that file on CPU.
These are measurements, not pass/fail tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from napari_medseg.models import available_models, cpu_conv, create_model
from napari_medseg.models.padding import SizeAgnostic

ROOT = Path(__file__).resolve().parents[1]
SIZES = {2: (256, 256), 3: (96, 96, 96)}
QUICK_SIZES = {2: (64, 64), 3: (32, 32, 32)}

# (ours, our options, MONAI class, MONAI kwargs): matched widths, depths, norms and activations.
# BasicUNet's last feature is the width of its final up-sampling (ours: the finest level's).
# MONAI's VNet has fixed widths (16, 32, ..., 256) and stage depths (left 1, 1, 2, 3, 2; right
# from the finest 1, 1, 2, 2); ours is compared at those depths and with MONAI's act=PReLU (the
# paper's), and separately at the paper's depths (1, 2, 3, 3, 3 / 1, 2, 3, 3): 1.4x the FLOPs.
# MONAI's AttentionUnet has one conv per decoder stage (the paper's U-Net decoder, ours by
# default, has two): ours is compared with decoder_convs=1, and separately at the default.
PAIRS: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("unet", {}, "BasicUNet",
     {"features": (16, 32, 64, 128, 256, 16), "norm": "batch", "act": "relu"}),
    ("attention-unet", {"decoder_convs": 1}, "AttentionUnet",
     {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2)}),
    ("attention-unet", {}, "AttentionUnet",
     {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2)}),
    ("unet++", {"deep_supervision": False}, "BasicUNetPlusPlus",
     {"features": (16, 32, 64, 128, 256, 16), "norm": "batch", "act": "relu"}),
    ("vnet", {"width": 16, "convs": (1, 1, 2, 3, 2), "up_convs": (1, 1, 2, 2)}, "VNet",
     {"act": "prelu", "dropout_prob_down": None, "dropout_prob_up": (None, 0.0)}),
    ("vnet", {"width": 16}, "VNet",
     {"act": "prelu", "dropout_prob_down": None, "dropout_prob_up": (None, 0.0)}),
]


def _monai(name: str, dims: int, kwargs: dict[str, Any]) -> nn.Module:
    import monai.networks.nets as nets

    net = getattr(nets, name)(spatial_dims=dims, in_channels=1, out_channels=2, **kwargs)
    return SizeAgnostic(_First(net), dims)


class _First(nn.Module):
    """MONAI's U-Net++ returns a list; take its tensor like our registry adapter does."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.size_multiple = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y[-1] if isinstance(y, list | tuple) else y


def _load() -> float:
    return os.getloadavg()[0]


def _steps(model: nn.Module, x: torch.Tensor, amp: bool) -> dict[str, Callable[[], None]]:
    device = x.device.type
    autocast = torch.autocast(device_type=device, dtype=torch.float16 if device == "cuda"
                              else torch.bfloat16, enabled=amp)

    def forward() -> None:
        model.eval()
        with torch.no_grad(), autocast:
            model(x)

    def forward_backward() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        with autocast:
            y = model(x)
        y.float().mean().backward()

    return {"forward_s": forward, "forward_backward_s": forward_backward}


def measure(models: dict[str, nn.Module], shape: tuple[int, ...], *, repeats: int, device: str,
            amp: bool, warmup_cap: float, budget: float = 120.0) -> dict[str, dict[str, Any]]:
    """Time forward and forward+backward of several models, interleaved run by run.

    A model stops after two runs once its runs add up to ``budget`` seconds (3D giants).

    Returns ``{label: {"forward_s": best, "forward_backward_s": best, "runs": {...}}}``.
    """
    x = torch.randn(shape, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    steps = {label: _steps(model.to(device), x, amp) for label, model in models.items()}
    out: dict[str, dict[str, Any]] = {label: {"runs": {}} for label in models}
    for key in ("forward_s", "forward_backward_s"):
        runs: dict[str, list[float]] = {label: [] for label in models}
        for label, step in steps.items():  # warm-up; a long one is a run like the others
            start = time.perf_counter()
            step[key]()
            sync()
            if time.perf_counter() - start > warmup_cap:
                runs[label].append(time.perf_counter() - start)
        for _ in range(repeats):
            for label, step in steps.items():
                done = runs[label]
                if len(done) >= repeats or (len(done) >= 2 and sum(done) > budget):
                    continue
                start = time.perf_counter()
                step[key]()
                sync()
                runs[label].append(time.perf_counter() - start)
        for label in models:
            out[label][key] = min(runs[label])
            out[label]["runs"][key] = runs[label]
    for label in models:
        if out[label]["forward_s"] > out[label]["forward_backward_s"]:
            out[label]["suspect"] = "forward slower than forward+backward (machine load)"
    return out


def count_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs of one forward; torch's own kernels, which the counter sees (see cpu_conv)."""
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), cpu_conv.torch_kernels(), counter:
        model(torch.zeros(shape))
    return int(counter.get_total_flops())


def _table(args: argparse.Namespace, sizes: dict[int, tuple[int, ...]]) -> list[dict[str, Any]]:
    infos = [i for i in available_models() if not args.models or i.name in args.models]
    rows = []
    for info in infos:
        for dims in args.dims:
            shape = (1, 1, *sizes[dims])
            row: dict[str, Any] = {"name": info.name, "dims": dims, "shape": shape[2:],
                                   "params": info.params[dims], "load_before": _load(),
                                   "date": _now()}
            try:
                torch.manual_seed(0)
                model = create_model(info.name, spatial_dims=dims, in_channels=1,
                                     out_channels=2)
                row["flops"] = count_flops(model, shape)
                row.update(measure({"m": model}, shape, repeats=args.repeats,
                                   device=args.device, amp=args.amp,
                                   warmup_cap=args.warmup_cap)["m"])
            except Exception as error:  # keep going; record what failed
                row["error"] = f"{type(error).__name__}: {error}"
            row["load_after"] = _load()
            rows.append(row)
            print(_line(row), flush=True)
    return rows


def _pairs(args: argparse.Namespace, sizes: dict[int, tuple[int, ...]]) -> list[dict[str, Any]]:
    comparisons = []
    for ours, options, monai_name, kwargs in PAIRS:
        if args.models and ours not in args.models:
            continue
        for dims in args.dims:
            shape = (1, 1, *sizes[dims])
            torch.manual_seed(0)
            mine = create_model(ours, spatial_dims=dims, in_channels=1, out_channels=2,
                                **options)
            theirs = _monai(monai_name, dims, kwargs)
            entry: dict[str, Any] = {"ours": ours, "monai": monai_name, "dims": dims,
                                     "shape": shape[2:], "options": options,
                                     "monai_options": kwargs, "load_before": _load(),
                                     "date": _now(), "pair_repeats": args.pair_repeats}
            for label, model in (("ours", mine), ("monai", theirs)):
                entry[f"{label}_params"] = sum(p.numel() for p in model.parameters())
                entry[f"{label}_flops"] = count_flops(model, shape)
            times = measure({"ours": mine, "monai": theirs}, shape, repeats=args.pair_repeats,
                            device=args.device, amp=args.amp, warmup_cap=args.warmup_cap)
            entry["times"] = times
            entry["load_after"] = _load()
            for key in ("forward_s", "forward_backward_s"):
                # ratio of the minima, and the median of the ratios of runs next to each other
                entry[f"ratio_{key}"] = times["ours"][key] / times["monai"][key]
                paired = [a / b for a, b in zip(times["ours"]["runs"][key],
                                                times["monai"]["runs"][key], strict=False)]
                entry[f"paired_ratio_{key}"] = statistics.median(paired)
            comparisons.append(entry)
            o, m = times["ours"], times["monai"]
            print(f"{ours:>16s} vs MONAI {monai_name:<18s} {dims}D  fwd "
                  f"{o['forward_s']:.3f}/{m['forward_s']:.3f}s "
                  f"= {entry['ratio_forward_s']:.2f} ({entry['paired_ratio_forward_s']:.2f})  "
                  f"fwd+bwd {o['forward_backward_s']:.3f}/{m['forward_backward_s']:.3f}s "
                  f"= {entry['ratio_forward_backward_s']:.2f} "
                  f"({entry['paired_ratio_forward_backward_s']:.2f})  load "
                  f"{entry['load_before']:.1f}->{entry['load_after']:.1f}  {options}",
                  flush=True)
    return comparisons


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK_SIZES if args.quick else SIZES
    load_start = os.getloadavg()
    comparisons = [] if args.table_only else _pairs(args, sizes)
    rows = [] if args.pairs_only else _table(args, sizes)
    return {
        "device": args.device, "amp": args.amp, "quick": args.quick,
        "threads": torch.get_num_threads(), "cores": os.cpu_count(), "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "date": _now(), "repeats": args.repeats, "pair_repeats": args.pair_repeats,
        "warmup_cap": args.warmup_cap, "load_start": load_start, "load_end": os.getloadavg(),
        "models": rows, "comparisons": comparisons,
    }


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Rows of ``new`` replace the same (name, dims) / (pair, options, dims) rows of ``old``."""

    def model_key(r: dict[str, Any]) -> tuple:
        return r["name"], r["dims"]

    def pair_key(c: dict[str, Any]) -> tuple:
        return c["ours"], json.dumps(c["options"], sort_keys=True), c["monai"], c["dims"]

    merged = dict(new)
    for field, key in (("models", model_key), ("comparisons", pair_key)):
        fresh = {key(r): r for r in new[field]}
        kept = [r for r in old.get(field, []) if key(r) not in fresh]
        merged[field] = kept + new[field]
    order = {name: i for i, name in enumerate(i.name for i in available_models())}
    merged["models"].sort(key=lambda r: (order.get(r["name"], 99), r["dims"]))
    pair_order = {(o, json.dumps(opt, sort_keys=True)): i for i, (o, opt, _, _) in
                  enumerate(PAIRS)}
    merged["comparisons"].sort(key=lambda c: (
        pair_order.get((c["ours"], json.dumps(c["options"], sort_keys=True)), 99), c["dims"]))
    return merged


def _line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['name']:>24s} {row['dims']}D  ERROR {row['error'][:120]}"
    flag = "  SUSPECT" if "suspect" in row else ""
    return (f"{row['name']:>24s} {row['dims']}D  params {row['params']:>11,}  "
            f"GFLOPs {row['flops'] / 1e9:8.1f}  fwd {row['forward_s']:7.3f}s  "
            f"fwd+bwd {row['forward_backward_s']:7.3f}s  load {row['load_before']:.1f}->"
            f"{row['load_after']:.1f}{flag}")


def _repeats(results: dict[str, Any]) -> str:
    """The runs per pair of the comparison rows, e.g. ``8`` or ``8 to 12``."""
    counts = sorted({r.get("pair_repeats", results["pair_repeats"])
                     for r in results["comparisons"]})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"


def _span(rows: list[dict[str, Any]]) -> str:
    """Dates and 1-minute load averages of a set of rows, for the table headers."""
    dates = sorted(r["date"] for r in rows if "date" in r)
    loads = [r[k] for r in rows for k in ("load_before", "load_after") if k in r]
    when = (f"{dates[0][:16]} to {dates[-1][:16]}".replace("T", " ") + " UTC" if dates
            else "date unknown")
    load = f"{min(loads):.1f} to {max(loads):.1f}" if loads else "unknown"
    return f"{when}, 1-minute load average {load}"


def write_docs(results: dict[str, Any], path: Path) -> None:
    """Regenerate ``docs/models.md``: the zoo table, the pairs, then the notes below them."""
    infos = {i.name: i for i in available_models()}
    by_key = {(r["name"], r["dims"]): r for r in results["models"]}
    machine = (f"{results['machine']}, {results['cores']} cores shared with other jobs, "
               f"{results['threads']} torch threads, torch {results['torch']}")
    lines = [
        "# The model zoo",
        "",
        "<!-- The tables are generated by benchmarks/bench_models.py; edit the notes below "
        "them in that script. -->",
        "",
        f"CPU times: {machine}; measured {_span(results['models'])} (the machine was shared: "
        "a load above the core count means other jobs competed for the cores).  Batch 1, "
        f"minimum over {results['repeats']} runs after a warm-up (the warm-up counts as a run "
        f"where it took over {results['warmup_cap']:g} s; at least two runs, fewer than "
        f"{results['repeats']} only where they took over 120 s together).  Reference patch "
        "2D 256x256, 3D 96^3, one input channel, two classes, default options.  GFLOPs: one "
        "forward (multiply-add = 2).  `*`: forward measured slower than forward+backward, i.e. "
        "disturbed by load.",
        "",
        "| name | paper | ours / MONAI | dims | params 2D | params 3D | GFLOPs 2D | GFLOPs 3D "
        "| CPU fwd 2D (s) | CPU fwd+bwd 2D (s) | CPU fwd 3D (s) | CPU fwd+bwd 3D (s) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(name: str, dims: int, key: str, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
        row = by_key.get((name, dims))
        if row is None or key not in row:
            return "n/a"
        flag = "*" if "suspect" in row and key.endswith("_s") else ""
        return fmt.format(row[key] / scale) + flag

    for name, info in infos.items():
        owner = "MONAI's" if info.implementation == "monai" else "our"
        dims = "2D, 3D" + (f" (3D: {owner} extension)" if info.extension_3d else "")
        lines.append(
            f"| `{name}` | {info.paper} | {info.implementation} | {dims} | "
            f"{info.params[2]:,} | {info.params[3]:,} | "
            f"{cell(name, 2, 'flops', 1e9, '{:.1f}')} | {cell(name, 3, 'flops', 1e9, '{:.1f}')} | "
            f"{cell(name, 2, 'forward_s')} | {cell(name, 2, 'forward_backward_s')} | "
            f"{cell(name, 3, 'forward_s')} | {cell(name, 3, 'forward_backward_s')} |"
        )
    if results["comparisons"]:
        lines += [
            "", "## Ours vs MONAI, interleaved in one run (ratio < 1: ours is faster)", "",
            f"Same machine; measured {_span(results['comparisons'])}.  Each pair alternates "
            f"ours and MONAI's run by run, {_repeats(results)} runs each (fewer for the 3D "
            "giants, whose runs stop after 120 s); the ratio is "
            "that of the minima, in parentheses the median of the ratios of neighbouring runs "
            "(two estimates that a load change can sway differently).  Both networks are "
            "wrapped in the same `SizeAgnostic` padding (a no-op at these sizes).  Options as "
            "in `PAIRS` of the script: matched widths, norm (batch) and activation.",
            "",
            "| ours (options) | MONAI (options) | dims | params ours / MONAI "
            "| GFLOPs ours / MONAI | fwd ours / MONAI (s) | fwd ratio "
            "| fwd+bwd ours / MONAI (s) | fwd+bwd ratio |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for c in results["comparisons"]:
            o, m = c["times"]["ours"], c["times"]["monai"]
            lines.append(
                f"| `{c['ours']}` {_options(c['options'])} | {c['monai']} "
                f"{_options(c.get('monai_options', {}))} | {c['dims']}D "
                f"| {c['ours_params']:,} / {c['monai_params']:,} "
                f"| {c['ours_flops'] / 1e9:.1f} / {c['monai_flops'] / 1e9:.1f} "
                f"| {o['forward_s']:.3f} / {m['forward_s']:.3f} "
                f"| **{c['ratio_forward_s']:.2f}** ({c['paired_ratio_forward_s']:.2f}) "
                f"| {o['forward_backward_s']:.3f} / {m['forward_backward_s']:.3f} "
                f"| **{c['ratio_forward_backward_s']:.2f}** "
                f"({c['paired_ratio_forward_backward_s']:.2f}) |")
    lines += ["", NOTES.strip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def _options(options: dict[str, Any]) -> str:
    if not options:
        return ""
    text = ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v}" for k, v in options.items())
    return f"({text})"


NOTES = """
## Using the zoo

```python
from napari_medseg.models import create_model, available_models
model = create_model("unet", spatial_dims=3, in_channels=2, out_channels=4)
logits = model(volume)  # (B, 2, Z, Y, X) -> (B, 4, Z, Y, X), any Z, Y, X
```

Every network maps `(B, C_in, *S)` to logits `(B, C_out, *S)` for **any** `S`: the registry
wraps it in `SizeAgnostic`, which pads symmetrically with zeros to the multiple the network
needs (and to a minimum size where instance norm needs more than one voxel at the bottleneck)
and crops the logits back.  Several co-registered modalities are simply `in_channels`.
U-Net++ returns its head at `prune_level`; `model.deep_supervision(x)` returns every head for
the loss.  Checkpoints are one `.safetensors` file whose header holds the JSON spec
(`save_checkpoint`, `load_checkpoint`); plain PyTorch state dicts are imported weights-only
(`import_state_dict`); `export_torchscript` / `export_onnx` trace the model at a given patch.

## Ours or MONAI's, and why

- **Ours** (written once for 2D and 3D on `models/blocks.py`): FCN-32s/16s/8s, SegNet,
  U-Net, U-Net++, 3D U-Net, V-Net, the five U-Net variants, DeepLab v1/v3/v3+.  MONAI has no
  FCN, SegNet, DeepLab, dense/inception/R2 U-Nets.  Where MONAI has one (BasicUNet,
  AttentionUnet, VNet, BasicUNetPlusPlus) we still wrote ours because MONAI's differ from the
  papers in what makes them themselves: BasicUNetPlusPlus has no pruning and always returns a
  list; MONAI's VNet has fixed widths, ELU instead of PReLU and other
  stage depths (left 1, 1, 2, 3, 2 / right 2, 2, 1, 1 from the coarsest, instead of the
  paper's 1, 2, 3, 3, 3 / 3, 3, 2, 1) and needs `in_channels` to divide 16; MONAI's
  AttentionUnet computes the gate at the skip's resolution rather than the paper's coarse-grid
  gating, and its decoder has one conv per level where the U-Net decoder (ours, as in the
  paper) has two (1.2x the FLOPs).  Ours share one skeleton (`UNet`), so a variant is a block
  or a gate.
  MONAI's versions stay reachable as `monai-basicunet`, `monai-attentionunet`,
  `monai-basicunetplusplus` (same contract) for comparison.
- **MONAI adapters**: SegResNet, DynUNet (nnU-Net style), UNETR, Swin UNETR: faithful, well
  tested implementations of transformer/nnU-Net machinery we have no reason to rewrite.
  UNETR's position embedding fixes its input to `img_size` (default 96^3 / 256^2): smaller
  inputs are padded, larger ones cut into tiles of `img_size` (use the inference engine's
  sliding window at that patch size for overlap).  Swin UNETR needs multiples of 32 and at
  least 64 per axis (instance norm at its 1/32 bottleneck).

## Speed on CPU, and the pairs above

The pairs compare like with like: the same widths, batch norm, activation (MONAI's VNet with
`act="prelu"`, the paper's), the same padding wrapper, and for V-Net the same stage depths
(ours has `convs` / `up_convs` options; MONAI's are fixed).  The V-Net row at the paper's
depths does 1.4x MONAI's FLOPs and shows that cost; it is not a like-for-like pair.  Likewise
Attention U-Net: MONAI's decoder runs one conv per stage, ours two by default (the paper's
U-Net decoder), so the like-for-like pair is ours with `decoder_convs=1`; the pair at our
default shows the cost of the second conv.

Our convolutions are torch's layers with CPU fast paths (`models/cpu_conv.py`, same weights
and `state_dict`, results equal up to float rounding): 1x1 convolutions and the 2x
up-convolutions run as matrix products, kernel = stride convolutions get a matrix-product
backward, and 3D convolutions that torch would send to its slow vol2col kernel (batch 1,
`N*C*D*H <= 20480`: a U-Net's first layer and coarse levels) run on oneDNN with a oneDNN
input gradient.  Elsewhere (CUDA, autocast, tracing for export) torch's own kernels run.
Channels-last memory format and `amax` pooling were measured too and brought nothing here.

## Our changes and 3D extensions

- FCN, SegNet, the U-Net variants from 2D papers (residual, dense, inception, R2), and DeepLab
  v1/v3/v3+ are 2D papers: their 3D forms (3x3x3 convs, 2x2x2 pools, trilinear upsampling)
  are our extension.  U-Net is 2D in the paper; 3D U-Net (Cicek) and V-Net are 3D papers, and
  their 2D forms are the same nets with 2D layers.
- FCN: VGG-16 stages at a configurable width (default 16 instead of 64), fc6 as a 3x3 conv
  (paper: 7x7 on 224-pixel crops, with a 100-pixel pad); 2x up-convolutions initialised
  bilinear and learned, final upsampling fixed bilinear, as in the paper.
- DeepLab v1: the LargeFOV VGG (pool4/pool5 stride 1, atrous conv5 rate 2, fc6 rate 12).  The
  fully connected CRF (`crf_refine`, also `crf=True` in eval mode) is a documented mean-field
  approximation: exact Gaussian smoothness kernel, bilateral kernel over a dilated local
  window instead of the permutohedral lattice; 2D and 3D, plain torch.
- DeepLab v3/v3+: no torchvision ResNet-101 / Xception here: a dilated ResNet-18-like backbone
  (`models/backbones.py`) with output stride 8 or 16 and multi-grid (1, 2, 4); ASPP with image
  pooling (no norm in the pooling branch so batch 1 trains); v3+ uses depthwise separable
  convs in ASPP and decoder.
- Batch norm is added to U-Net, SegNet (as in the paper), V-Net and the variants (`norm=`
  chooses batch / instance / group / none).
- Default widths are small (U-Net base 16, V-Net base 8) so starter checkpoints stay a few MB;
  raise them with the options.  UNETR keeps the paper's ViT-B defaults (87 M parameters).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--models", nargs="*", help="registry names (default: all)")
    parser.add_argument("--dims", nargs="*", type=int, default=[2, 3])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per table row")
    parser.add_argument("--pair-repeats", type=int, default=12, help="timed runs per pair")
    parser.add_argument("--warmup-cap", type=float, default=5.0,
                        help="a warm-up longer than this many seconds counts as a run")
    parser.add_argument("--pairs-only", action="store_true", help="ours vs MONAI only")
    parser.add_argument("--table-only", action="store_true", help="no ours vs MONAI pairs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="autocast (fp16 on CUDA)")
    parser.add_argument("--out", type=Path, help="JSON path (default results/models_<dev>.json)")
    parser.add_argument("--fresh", action="store_true", help="replace --out instead of merging")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "models.md")
    parser.add_argument("--docs-only", action="store_true", help="regenerate docs from --out")
    args = parser.parse_args()
    if args.quick:
        args.repeats = args.pair_repeats = 1
    suffix = args.device + ("_amp" if args.amp else "") + ("_quick" if args.quick else "")
    out = args.out or ROOT / "benchmarks" / "results" / f"models_{suffix}.json"
    if not args.docs_only:
        results = run(args)
        if out.exists() and not args.fresh:
            results = merge(json.loads(out.read_text()), results)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1, default=list))
        print(f"wrote {out}")
    if args.device == "cpu" and not args.quick and not args.amp:
        write_docs(json.loads(out.read_text()), args.docs)
        print(f"wrote {args.docs}")


if __name__ == "__main__":
    main()
