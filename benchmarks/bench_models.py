"""Time every zoo network at a reference patch, side by side with MONAI's equivalents.

    python benchmarks/bench_models.py            # 2D 256x256 and 3D 96^3, batch 1, CPU
    python benchmarks/bench_models.py --quick    # tiny sizes, a smoke run
    python benchmarks/bench_models.py --device cuda --amp   # GPU numbers with autocast

Forward is timed in eval mode under ``no_grad``; forward+backward in train mode with the
gradient of ``logits.mean()``.  Each time is the best of ``--repeats`` runs after one warm-up.
FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (one forward; a multiply-add
counts 2).  Results go to ``benchmarks/results/models_<device>.json`` and the table of
``docs/models.md`` is regenerated from them.  These are measurements, not pass/fail tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from napari_medseg.models import available_models, create_model
from napari_medseg.models.padding import SizeAgnostic

ROOT = Path(__file__).resolve().parents[1]

# (ours, our options, MONAI class, MONAI kwargs): matched widths, norms and activations.
PAIRS: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("unet", {}, "BasicUNet",
     {"features": (16, 32, 64, 128, 256, 16), "norm": "batch", "act": "relu"}),
    ("attention-unet", {}, "AttentionUnet",
     {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2)}),
    ("unet++", {"deep_supervision": False}, "BasicUNetPlusPlus",
     {"features": (16, 32, 64, 128, 256, 16), "norm": "batch", "act": "relu"}),
    ("vnet", {"width": 16}, "VNet", {"dropout_prob_down": 0.0, "dropout_prob_up": (0.0, 0.0)}),
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


def _best(fn: Callable[[], None], repeats: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(model: nn.Module, shape: tuple[int, ...], *, repeats: int, device: str,
            amp: bool) -> dict[str, float]:
    model = model.to(device)
    x = torch.randn(shape, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    autocast = torch.autocast(device_type=device, dtype=torch.float16 if device == "cuda"
                              else torch.bfloat16, enabled=amp)

    def forward() -> None:
        with torch.no_grad(), autocast:
            model(x)

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        with autocast:
            y = model(x)
        y.float().mean().backward()

    model.eval()
    fwd = _best(forward, repeats, sync)
    model.train()
    fwd_bwd = _best(forward_backward, repeats, sync)
    return {"forward_s": fwd, "forward_backward_s": fwd_bwd}


def count_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(shape))
    return int(counter.get_total_flops())


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = {2: (64, 64), 3: (32, 32, 32)} if args.quick else {2: (256, 256), 3: (96, 96, 96)}
    infos = [i for i in available_models() if not args.models or i.name in args.models]
    rows = []
    for info in infos:
        for dims in args.dims:
            shape = (1, 1, *sizes[dims])
            row: dict[str, Any] = {"name": info.name, "dims": dims, "shape": shape[2:],
                                   "params": info.params[dims]}
            try:
                model = create_model(info.name, spatial_dims=dims, in_channels=1,
                                     out_channels=2)
                row["flops"] = count_flops(model, shape)
                row.update(measure(model, shape, repeats=args.repeats, device=args.device,
                                   amp=args.amp))
            except Exception as error:  # keep going; record what failed
                row["error"] = f"{type(error).__name__}: {error}"
            rows.append(row)
            print(_line(row), flush=True)
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
                                     "shape": shape[2:], "options": options}
            for label, model in (("ours", mine), ("monai", theirs)):
                entry[f"{label}_params"] = sum(p.numel() for p in model.parameters())
                entry[f"{label}_flops"] = count_flops(model, shape)
                entry[label] = measure(model, shape, repeats=args.repeats, device=args.device,
                                       amp=args.amp)
            for key in ("forward_s", "forward_backward_s"):
                entry[f"ratio_{key}"] = entry["ours"][key] / entry["monai"][key]
            comparisons.append(entry)
            print(f"{ours:>16s} vs MONAI {monai_name:<18s} {dims}D  fwd "
                  f"{entry['ours']['forward_s']:.3f}/{entry['monai']['forward_s']:.3f}s "
                  f"= {entry['ratio_forward_s']:.2f}  fwd+bwd "
                  f"{entry['ours']['forward_backward_s']:.3f}/"
                  f"{entry['monai']['forward_backward_s']:.3f}s "
                  f"= {entry['ratio_forward_backward_s']:.2f}", flush=True)
    return {
        "device": args.device, "amp": args.amp, "quick": args.quick,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "repeats": args.repeats, "models": rows, "comparisons": comparisons,
    }


def _line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['name']:>24s} {row['dims']}D  ERROR {row['error'][:120]}"
    return (f"{row['name']:>24s} {row['dims']}D  params {row['params']:>11,}  "
            f"GFLOPs {row['flops'] / 1e9:8.1f}  fwd {row['forward_s']:7.3f}s  "
            f"fwd+bwd {row['forward_backward_s']:7.3f}s")


def write_docs(results: dict[str, Any], path: Path) -> None:
    """Regenerate ``docs/models.md``: the zoo table, then the hand-written notes below it."""
    infos = {i.name: i for i in available_models()}
    by_key = {(r["name"], r["dims"]): r for r in results["models"]}
    lines = [
        "# The model zoo",
        "",
        "<!-- The table is generated by benchmarks/bench_models.py; edit the notes below it "
        "in that script. -->",
        "",
        f"CPU times: {results['machine']}, {results['threads']} threads, torch "
        f"{results['torch']}, batch 1, best of {results['repeats']} after a warm-up, "
        f"{results['date']}.  Reference patch 2D 256x256, 3D 96^3, one input channel, two "
        "classes, default options.  GFLOPs: one forward (multiply-add = 2).",
        "",
        "| name | paper | ours / MONAI | dims | params 2D | params 3D | GFLOPs 2D | GFLOPs 3D "
        "| CPU fwd 2D (s) | CPU fwd+bwd 2D (s) | CPU fwd 3D (s) | CPU fwd+bwd 3D (s) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(name: str, dims: int, key: str, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
        row = by_key.get((name, dims))
        if row is None or key not in row:
            return "n/a"
        return fmt.format(row[key] / scale)

    for name, info in infos.items():
        dims = "2D, 3D" + (" (3D: our extension)" if info.extension_3d else "")
        lines.append(
            f"| `{name}` | {info.paper} | {info.implementation} | {dims} | "
            f"{info.params[2]:,} | {info.params[3]:,} | "
            f"{cell(name, 2, 'flops', 1e9, '{:.1f}')} | {cell(name, 3, 'flops', 1e9, '{:.1f}')} | "
            f"{cell(name, 2, 'forward_s')} | {cell(name, 2, 'forward_backward_s')} | "
            f"{cell(name, 3, 'forward_s')} | {cell(name, 3, 'forward_backward_s')} |"
        )
    if results["comparisons"]:
        lines += ["", "## Ours vs MONAI, same run (ratio < 1: ours is faster)", "",
                  "| ours | MONAI | dims | params ours / MONAI | GFLOPs ours / MONAI "
                  "| fwd ratio | fwd+bwd ratio |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for c in results["comparisons"]:
            lines.append(f"| `{c['ours']}` {c['options'] or ''} | {c['monai']} | {c['dims']}D "
                         f"| {c['ours_params']:,} / {c['monai_params']:,} "
                         f"| {c['ours_flops'] / 1e9:.1f} / {c['monai_flops'] / 1e9:.1f} "
                         f"| {c['ratio_forward_s']:.2f} | {c['ratio_forward_backward_s']:.2f} |")
    lines += ["", NOTES.strip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


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
  list; MONAI's VNet has fixed widths, ELU instead of PReLU and other stage depths
  (1, 2, 3, 2 / 2, 2, 1, 1 instead of the paper's 1, 2, 3, 3, 3 / 3, 3, 2, 1) and needs
  `in_channels` to divide 16; MONAI's AttentionUnet computes the gate at the skip's resolution
  rather than the paper's coarse-grid gating.  Ours share one skeleton (`UNet`), so a variant is
  a block or a gate, and the benchmark above keeps them at least as fast as MONAI's.
  MONAI's versions stay reachable as `monai-basicunet`, `monai-attentionunet`,
  `monai-basicunetplusplus` (same contract) for comparison.
- **MONAI adapters**: SegResNet, DynUNet (nnU-Net style), UNETR, Swin UNETR: faithful, well
  tested implementations of transformer/nnU-Net machinery we have no reason to rewrite.
  UNETR's position embedding fixes its input to `img_size` (default 96^3 / 256^2): smaller
  inputs are padded, larger ones cut into tiles of `img_size` (use the inference engine's
  sliding window at that patch size for overlap).  Swin UNETR needs multiples of 32 and at
  least 64 per axis (instance norm at its 1/32 bottleneck).

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
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="autocast (fp16 on CUDA)")
    parser.add_argument("--out", type=Path, help="JSON path (default results/models_<dev>.json)")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "models.md")
    parser.add_argument("--docs-only", action="store_true", help="regenerate docs from --out")
    args = parser.parse_args()
    suffix = args.device + ("_amp" if args.amp else "") + ("_quick" if args.quick else "")
    out = args.out or ROOT / "benchmarks" / "results" / f"models_{suffix}.json"
    if args.docs_only:
        write_docs(json.loads(out.read_text()), args.docs)
        return
    results = run(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=list))
    print(f"wrote {out}")
    if args.device == "cpu" and not args.quick and not args.models:
        write_docs(results, args.docs)
        print(f"wrote {args.docs}")


if __name__ == "__main__":
    main()
