"""Typed options of a segmentation run, shared by the Python API, the CLI and the widget.

Each field is an :func:`~napari_medseg.options.option`: its help, flag and control are
declared here once; ``napari-medseg predict`` builds its flags and the Segment widget its
Advanced controls from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from napari_medseg.inference.postprocess import PostprocessOptions
from napari_medseg.options import option

SLICE_AXES = (("axial (0)", 0), ("coronal (1)", 1), ("sagittal (2)", 2))


@dataclass(kw_only=True)
class PredictOptions:
    """How to run a model over a scan.

    Attributes
    ----------
    device
        ``"auto"`` (CUDA, then MPS, then CPU), or a torch device string such as ``"cpu"``.
    tile
        Window size in voxels ``(Z, Y, X)`` (2D models: ``(Y, X)``); ``None`` takes the
        checkpoint's patch size, else 96^3 / 256^2.
    overlap
        Fraction of a window shared with its neighbour (0-0.9); outputs are blended with a
        Gaussian importance map.
    batch_size
        Windows per forward pass; ``None`` plans it: 1 on the CPU (batching gains nothing
        there and doubles the activations), and on a GPU as many as half its free memory
        holds.  Halved automatically when the device runs out of memory.
    tta
        Mirroring test-time augmentation: average the probabilities over flips of every
        spatial axis (2^D forward passes per window).
    slice_axis
        2D models on a 3D scan: the array axis to slice along (0 = axial for a ``(Z, Y, X)``
        scan).  Required in that case.
    context_slices
        2.5D: neighbouring slices on each side fed as extra channels (the model must have
        been trained that way: ``in_channels = channels * (2k + 1)``).
    keep_probabilities
        Also return the blended per-class probabilities ``(K, Z, Y, X)`` as float16.
    amp
        Mixed precision (bf16 where supported, else fp16) on CUDA.
    resample
        Resample the scan to the checkpoint's ``target_spacing`` (and the labels back).
    own_scan
        A checkpoint that keeps the annotation it was learned from
        (:class:`~napari_medseg.models.scan_annotation.ScanAnnotation`): on that very scan
        (same content hash), build the mask as training did (network labels connected to the
        annotation, ...).  Any other scan gets the network's labels.
    """

    device: str = option("auto", help="auto (default), cpu, cuda, cuda:N, mps")
    tile: tuple[int, ...] | None = option(
        None, metavar="N", nargs="+", help="window size in voxels (Z Y X or Y X; default: the "
        "model's patch size)")
    overlap: float = option(0.5, low=0.0, high=0.9, step=0.05,
                            help="fraction of a window shared with its neighbour (default 0.5)")
    batch_size: int | None = option(
        None, flag="--batch", label="batch", low=0, high=64, none_as=0,
        help="windows per forward pass (default: planned from free memory, halved when it "
        "runs out)")
    tta: bool = option(False, label="mirroring TTA",
                       help="mirroring test-time augmentation (average over flips; slower)")
    slice_axis: int | None = option(
        None, label="2D slicing", choices=SLICE_AXES,
        help="2D models on 3D scans: array axis to slice along (0 = axial)")
    context_slices: int = option(0, low=0, high=16,
                                 help="2.5D: neighbouring slices per side given as channels")
    keep_probabilities: bool = option(False, cli=False, label="probability layer",
                                      help="also return the per-class probabilities")
    amp: bool = option(True, cli=False, gui=False,
                       help="mixed precision (bf16, else fp16) on CUDA")
    resample: bool = option(True, label="resample to the model's spacing",
                            help="resample the scan to the model's spacing (and the labels back)")
    own_scan: bool = option(True, label="follow the training annotation on its own scan",
                            help="on the very scan a model learned from a few slices of, "
                                 "combine its labels with that annotation as training did")
    postprocess: PostprocessOptions = field(default_factory=PostprocessOptions)

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap < 1.0:
            msg = f"overlap must be in [0, 1), got {self.overlap}"
            raise ValueError(msg)
        if self.batch_size is not None and self.batch_size < 1:
            msg = f"batch_size must be at least 1, got {self.batch_size}"
            raise ValueError(msg)
        if self.context_slices < 0:
            msg = f"context_slices must be >= 0, got {self.context_slices}"
            raise ValueError(msg)
        if self.tile is not None:
            self.tile = tuple(int(t) for t in self.tile)
            if any(t < 1 for t in self.tile):
                msg = f"tile sizes must be positive, got {self.tile}"
                raise ValueError(msg)
