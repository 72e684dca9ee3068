"""A Session: prompts on one scan -> one object at a time, with unlimited undo and a memory.

Coordinates are voxel indices of the scan's array, ``(Z, Y, X)`` (or ``(Y, X)``), as
:func:`napari_medseg.io.read_scan` gives it.  Each interaction returns the current object as
a boolean array of the scan's shape.  The engine works in a crop around the prompts that grows
while the object reaches its border, so the whole object comes back; large crops are worked
on coarser (block means) to keep a click under a second.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from napari_medseg.errors import MedsegError
from napari_medseg.interactive.engine import (
    EngineOptions,
    IntensityMapping,
    Prompts,
    Result,
    appearance_counts,
    features,
    segment,
)
from napari_medseg.interactive.memory import SAMPLES_PER_OBJECT, Example, Memory
from napari_medseg.interactive.prompts import (
    Box,
    Lasso,
    MaskPrompt,
    Point,
    Prompt,
    Scribble,
    rasterise,
)
from napari_medseg.interactive.region import Region, touching_border
from napari_medseg.scan import LabelMap, Scan

#: The engine works on at most this many voxels per interaction (coarser beyond).
MAX_VOXELS = 400_000
#: How many times a region grows in one interaction.
MAX_GROWTH = 4
#: An object covering more than this fraction of the scan gets a warning note.
HUGE_FRACTION = 0.5
#: The surroundings an accepted object is learned against (mm around it).
RING_MM = 15.0


class InteractiveError(MedsegError):
    """A prompt that cannot be used (outside the scan, a box of no size, ...)."""


@dataclass(frozen=True, eq=False)
class Accepted:
    """An accepted object: its name, the box it lies in and its mask there."""

    name: str
    region: Region
    mask: npt.NDArray[np.bool_] = field(repr=False)
    example: Example | None = field(default=None, repr=False)

    @property
    def voxels(self) -> int:
        return int(self.mask.sum())

    def full(self, shape: Sequence[int]) -> npt.NDArray[np.bool_]:
        out = np.zeros(tuple(shape), bool)
        out[self.region.slices] = self.mask
        return out


@dataclass(frozen=True, eq=False)
class State:
    """Everything one step of the session holds (undo/redo move between these)."""

    prompts: tuple[Prompt, ...] = ()
    region: Region | None = None
    mask: npt.NDArray[np.bool_] | None = field(default=None, repr=False)  # in region
    accepted: tuple[Accepted, ...] = ()
    note: str = ""


class Session:
    """Interactive segmentation of ``scan``: see the module docstring.

    ``memory`` carries what a person taught in earlier sessions (accepted objects); ``kind``
    names the kind of object being made (default: the last accepted kind)."""

    def __init__(self, scan: Scan, *, memory: Memory | None = None, kind: str | None = None,
                 options: EngineOptions | None = None, max_voxels: int = MAX_VOXELS) -> None:
        if scan.array.ndim not in (2, 3):
            msg = (f"interactive segmentation needs a 2D or 3D single-channel scan, got shape "
                   f"{scan.array.shape}")
            raise InteractiveError(msg)
        self.scan = scan
        self.shape = tuple(int(s) for s in scan.array.shape)
        self.spacing = tuple(float(s) for s in scan.geometry.spacing)
        self.memory = memory if memory is not None else Memory()
        self.kind = kind
        self.options = options or EngineOptions()
        self.max_voxels = max_voxels
        self.mapping = IntensityMapping.for_scan(scan.array, scan.modality)
        self._history: list[State] = [State()]
        self._cursor = 0
        self._margin: tuple[Region, npt.NDArray[np.float32], tuple[int, ...]] | None = None
        self.last_seconds = 0.0
        self.used_taught = False  # whether the last interaction used the memory

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> State:
        return self._history[self._cursor]

    @property
    def note(self) -> str:
        """What the last step did, in words for a status line."""
        return self.state.note

    @property
    def objects(self) -> tuple[Accepted, ...]:
        return self.state.accepted

    @property
    def mask(self) -> npt.NDArray[np.bool_]:
        """The current object, scan shape."""
        out = np.zeros(self.shape, bool)
        state = self.state
        if state.region is not None and state.mask is not None:
            out[state.region.slices] = state.mask
        return out

    @property
    def can_undo(self) -> bool:
        return self._cursor > 0

    @property
    def can_redo(self) -> bool:
        return self._cursor < len(self._history) - 1

    @property
    def taught(self) -> int:
        """How many accepted objects of the current kind the memory uses."""
        return len(self.memory.of_kind(self._kind()))

    def _kind(self) -> str | None:
        if self.kind:
            return self.kind
        if self.state.accepted:
            return self.state.accepted[-1].name
        kinds = self.memory.kinds()
        return kinds[0] if len(kinds) == 1 else None

    def _push(self, state: State) -> npt.NDArray[np.bool_]:
        self._move(len(self._history), [*self._history[: self._cursor + 1], state])
        return self.mask

    def _move(self, cursor: int, history: list[State] | None = None) -> None:
        """Go to ``cursor`` (in ``history``), keeping the memory in step with what is
        accepted there."""
        before = set(map(id, self.state.accepted))
        if history is not None:
            self._history = history
            cursor = len(history) - 1
        self._cursor = cursor
        after = {id(a): a for a in self.state.accepted}
        for accepted in self._history_objects():
            if accepted.example is None:
                continue
            if id(accepted) in before and id(accepted) not in after:
                self.memory.remove(accepted.example)
            elif id(accepted) in after and id(accepted) not in before:
                self.memory.add(accepted.example)

    def _history_objects(self) -> list[Accepted]:
        seen: dict[int, Accepted] = {}
        for state in self._history:
            for a in state.accepted:
                seen[id(a)] = a
        return list(seen.values())

    # ---------------------------------------------------------------- prompts
    def _check_index(self, at: Sequence[int], what: str) -> tuple[int, ...]:
        index = tuple(round(float(v)) for v in at)
        if len(index) != len(self.shape):
            msg = (f"a {what} needs {len(self.shape)} voxel indices "
                   f"({'(Z, Y, X)' if len(self.shape) == 3 else '(Y, X)'}), got {tuple(at)}")
            raise InteractiveError(msg)
        if any(not 0 <= i < n for i, n in zip(index, self.shape, strict=True)):
            msg = (f"the {what} at {index} is outside the scan (shape {self.shape}); click "
                   "inside the scan")
            raise InteractiveError(msg)
        return index

    def add_point(self, at: Sequence[int], *, positive: bool = True) -> npt.NDArray[np.bool_]:
        """A click inside the object (``positive``) or outside it."""
        return self._interact(Point(self._check_index(at, "click"), positive))

    def add_scribble(self, points: Sequence[Sequence[int]], *, positive: bool = True,
                     joined: bool = True) -> npt.NDArray[np.bool_]:
        """A stroke through the object or outside it: consecutive voxels joined by lines, or
        (``joined=False``) the voxels a brush painted, as they are."""
        path = tuple(self._check_index(p, "scribble point") for p in points)
        if not path:
            msg = "a scribble needs at least one point"
            raise InteractiveError(msg)
        return self._interact(Scribble(path, positive, joined))

    def add_box(self, corner_a: Sequence[int], corner_b: Sequence[int]) -> npt.NDArray[np.bool_]:
        """A box around the object (drawn on one slice, or a 3D box)."""
        a, b = self._check_index(corner_a, "box corner"), self._check_index(corner_b,
                                                                           "box corner")
        extent = [abs(x - y) for x, y in zip(a, b, strict=True)]
        if sum(e == 0 for e in extent) > (1 if len(self.shape) == 3 else 0):
            msg = (f"the box from {a} to {b} has no area; drag a box around the object")
            raise InteractiveError(msg)
        return self._interact(Box(a, b))

    def add_lasso(self, outline: Sequence[Sequence[int]]) -> npt.NDArray[np.bool_]:
        """A closed outline of the object drawn on one slice."""
        pts = tuple(self._check_index(p, "lasso point") for p in outline)
        lasso = Lasso(pts)
        if len(pts) < 3 or (len(self.shape) == 3 and lasso.axis is None):
            msg = ("a lasso needs at least 3 points on one slice; draw the outline on one "
                   "slice")
            raise InteractiveError(msg)
        return self._interact(lasso)

    def set_mask(self, mask: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Start from an existing mask (scan shape) and refine it with further prompts."""
        array = np.asarray(mask)
        if array.shape != self.shape:
            msg = (f"a mask of shape {array.shape} does not fit the scan's {self.shape}; "
                   "use labels made on this scan")
            raise InteractiveError(msg)
        array = array.astype(bool)
        if not array.any():
            msg = "the mask is empty; choose labels that hold the object"
            raise InteractiveError(msg)
        box = ndimage.find_objects(array.astype(np.uint8))[0]
        region = Region(tuple(s.start for s in box), tuple(s.stop for s in box))
        prompt = MaskPrompt(region, array[region.slices].copy())
        state = self.state
        return self._push(State(prompts=(*state.prompts, prompt), region=region,
                                mask=prompt.mask, accepted=state.accepted,
                                note=f"started from a mask of {int(prompt.mask.sum())} voxels"))

    # ---------------------------------------------------------------- undo
    def undo(self) -> npt.NDArray[np.bool_]:
        """Back one step (an interaction, an accept or a reset); any number of times."""
        if self.can_undo:
            self._move(self._cursor - 1)
        return self.mask

    def redo(self) -> npt.NDArray[np.bool_]:
        if self.can_redo:
            self._move(self._cursor + 1)
        return self.mask

    def reset(self) -> npt.NDArray[np.bool_]:
        """Drop the current object's prompts (undoable); accepted objects stay."""
        return self._push(State(accepted=self.state.accepted, note="started a new object"))

    # ---------------------------------------------------------------- accept
    def accept(self, name: str) -> Accepted:
        """Commit the current object under ``name``; the memory learns it, the next
        interaction starts a new object."""
        state = self.state
        if state.mask is None or state.region is None or not state.mask.any():
            msg = "there is no object to accept yet; click inside the object first"
            raise InteractiveError(msg)
        name = name.strip() or "object"
        box = ndimage.find_objects(state.mask.astype(np.uint8))[0]
        start = tuple(r + s.start for r, s in zip(state.region.start, box, strict=True))
        region = Region(start, tuple(r + s.stop for r, s in zip(state.region.start, box,
                                                                   strict=True)))
        mask = state.mask[box].copy()
        values = self.mapping(np.asarray(self.scan.array[region.slices])[mask])
        rng = np.random.default_rng(len(self.memory.examples))
        if values.size > SAMPLES_PER_OBJECT:
            values = rng.choice(values, SAMPLES_PER_OBJECT, replace=False)
        example = Example(kind=name, samples=values.astype(np.float32),
                          volume_ml=float(mask.sum() * np.prod(self.spacing) / 1000.0),
                          scan=self.scan.name or "",
                          mapping=(self.mapping.low, self.mapping.high),
                          appearance=self._appearance(region, mask))
        accepted = Accepted(name, region, mask, example)
        self._push(State(accepted=(*state.accepted, accepted),
                         note=f"accepted {name!r} ({accepted.voxels} voxels)"))
        return accepted

    def _appearance(self, region: Region, mask: npt.NDArray[np.bool_]
                    ) -> npt.NDArray[np.float32]:
        """What the accepted object looks like against its surroundings (within
        :data:`RING_MM`), for the next object of its kind."""
        around = Region.around(np.asarray([region.start, np.asarray(region.stop) - 1]),
                               self.shape, self.spacing, margin_mm=RING_MM)
        inside = _place(region, mask, around)
        assert inside is not None
        image = self.mapping(np.asarray(self.scan.array[around.slices]))
        ring = ndimage.distance_transform_edt(~inside, sampling=self.spacing) <= RING_MM
        return appearance_counts(*features(image, self.spacing), inside, ring & ~inside)

    def labels(self, *, values: dict[str, int] | None = None) -> LabelMap:
        """The accepted objects as a label map on the scan's grid: one value per name (in
        order of first acceptance, or ``values``); a later object wins where they touch."""
        names: dict[str, int] = dict(values or {})
        array = np.zeros(self.shape, np.uint16)
        for a in self.objects:
            value = names.setdefault(a.name, max(names.values(), default=0) + 1)
            array[a.region.slices][a.mask] = value
        class_names = {0: "background", **{v: k for k, v in names.items()}}
        return LabelMap(array=array, geometry=self.scan.geometry, class_names=class_names,
                        display_name="accepted objects")

    # ---------------------------------------------------------------- where next
    def least_sure(self) -> tuple[int, ...] | None:
        """The voxel near the current object's border where the engine was least sure (to
        check there first); ``None`` without an object."""
        if self._margin is None or self.state.mask is None:
            return None
        region, margin, coarse = self._margin
        mask = self.state.mask
        if margin.shape != mask.shape:
            margin = _upsample(margin, coarse, mask.shape)
        band = ndimage.binary_dilation(mask, iterations=2) & ~ndimage.binary_erosion(
            mask, iterations=2)
        if not band.any():
            return None
        doubt = ndimage.gaussian_filter(np.abs(margin), 1.5)
        doubt[~band] = np.inf
        local = np.unravel_index(int(np.argmin(doubt)), doubt.shape)
        return tuple(int(a + b) for a, b in zip(local, region.start, strict=True))

    # ---------------------------------------------------------------- the work
    def _interact(self, prompt: Prompt) -> npt.NDArray[np.bool_]:
        started = time.perf_counter()
        state = self.state
        prompts = (*state.prompts, prompt)
        if not any(_is_positive(p) for p in prompts):
            self.last_seconds = time.perf_counter() - started
            return self._push(replace(state, prompts=prompts, note=(
                "a negative prompt alone makes no object: click inside the object first")))
        points = np.concatenate([p.points() for p in prompts])
        region = Region.around(points, self.shape, self.spacing)
        if state.region is not None and state.mask is not None and state.mask.any():
            region = region.union(state.region)
        result = None
        note = ""
        for growth in range(MAX_GROWTH + 1):
            result, coarse = self._segment(prompts, region, state)
            touching = touching_border(result.mask, region, self.shape)
            if not any(a or b for a, b in touching) or growth == MAX_GROWTH:
                break
            region = region.grown(touching, self.shape, self.spacing)
        assert result is not None
        mask = result.mask
        self._margin = (region, result.margin, coarse)
        n = int(mask.sum())
        if n > HUGE_FRACTION * np.prod(self.shape):
            note = (f"the object fills {100 * n / np.prod(self.shape):.0f} % of the scan; add "
                    "negative clicks outside it, or undo")
        elif n == 0:
            note = "no object here: the prompts exclude everything; undo or click elsewhere"
        else:
            taught = self.taught
            note = f"{n} voxels ({n * np.prod(self.spacing) / 1000:.1f} ml)"
            if taught and result.used_taught:
                note += f", using {taught} object(s) you taught as {self._kind()!r}"
            elif taught:
                note += (f"; what you taught as {self._kind()!r} does not look like this "
                         "object, so it was not used")
        self.used_taught = bool(result.used_taught)
        self.last_seconds = time.perf_counter() - started
        return self._push(State(prompts=prompts, region=region, mask=mask,
                                accepted=state.accepted, note=note))

    def _segment(self, prompts: tuple[Prompt, ...], region: Region, state: State
                 ) -> tuple[Result, tuple[int, ...]]:
        pos, neg, outside, hint, mask_prompt = rasterise(list(prompts), region)
        newest = rasterise([prompts[-1]], region)
        focus = newest[0] | newest[1] | newest[3]
        previous = _place(state.region, state.mask, region)
        core = None
        if mask_prompt is not None:
            previous = mask_prompt if previous is None else previous
            near_neg = ndimage.binary_dilation(neg, iterations=4) if neg.any() else neg
            core = ndimage.binary_erosion(mask_prompt, iterations=2) & ~near_neg
        image = self.mapping(np.asarray(self.scan.array[region.slices]))
        factors = _factors(region.shape, self.spacing, self.max_voxels)
        spacing = tuple(s * f for s, f in zip(self.spacing, factors, strict=True))
        coarse = tuple(factors)
        if any(f > 1 for f in factors):
            image = _pool_mean(image, coarse)
            pos, neg = _pool_any(pos, coarse), _pool_any(neg, coarse)
            outside = _pool_all(outside, coarse)
            hint = _pool_any(hint, coarse)
            previous = None if previous is None else _pool_any(previous, coarse)
            core = None if core is None else _pool_all(core, coarse)
            focus = _pool_any(focus, coarse)
        prompts_map = Prompts(positive=pos & ~neg, negative=neg,
                              outside=outside if outside.any() else None,
                              hint=hint if hint.any() else None, core=core,
                              focus=focus if state.mask is not None else None)
        known = self.memory.samples(self._kind(), (self.mapping.low, self.mapping.high))
        result = segment(image, spacing, prompts_map, previous=previous, known_fg=known,
                         options=self.options, taught=self.memory.appearance(self._kind()))
        if any(f > 1 for f in factors):
            result.mask = _upsample(result.mask, coarse, region.shape)
        return result, coarse


def _is_positive(prompt: Prompt) -> bool:
    return not isinstance(prompt, Point | Scribble) or prompt.positive


def _place(region: Region | None, mask: npt.NDArray[np.bool_] | None,
           target: Region) -> npt.NDArray[np.bool_] | None:
    """``mask`` (in ``region``) placed in ``target``; ``None`` without an object."""
    if region is None or mask is None or not mask.any():
        return None
    return target.place(mask, region)


def _factors(shape: Sequence[int], spacing: Sequence[float], budget: int) -> list[int]:
    """Integer block sizes per axis so that the coarse crop holds at most ``budget`` voxels,
    coarsening the finest axis first."""
    factors = [1] * len(shape)
    while np.prod([-(-n // f) for n, f in zip(shape, factors, strict=True)]) > budget:
        axis = int(np.argmin([s * f if n // f > 8 else np.inf
                              for s, f, n in zip(spacing, factors, shape, strict=True)]))
        factors[axis] += 1
        if all(n // f <= 8 for n, f in zip(shape, factors, strict=True)):
            break
    return factors


def _blocks(array: npt.NDArray, factors: Sequence[int], fill: float | None) -> npt.NDArray:
    """``array`` padded to whole blocks (with ``fill``, or its edge values for ``None``) and
    reshaped so that odd axes run within a block."""
    pad = [(0, (-n) % f) for n, f in zip(array.shape, factors, strict=True)]
    padded = np.pad(array, pad, mode="edge") if fill is None else np.pad(
        array, pad, constant_values=fill)
    shape: list[int] = []
    for n, f in zip(padded.shape, factors, strict=True):
        shape += [n // f, f]
    return padded.reshape(shape)


def _pool_mean(array: npt.NDArray[np.float32], f: Sequence[int]) -> npt.NDArray[np.float32]:
    blocks = _blocks(array, f, None)
    return blocks.mean(axis=tuple(range(1, blocks.ndim, 2))).astype(np.float32)


def _pool_any(array: npt.NDArray[np.bool_], f: Sequence[int]) -> npt.NDArray[np.bool_]:
    return np.asarray(_blocks(array, f, 0).any(axis=tuple(range(1, 2 * array.ndim, 2))))


def _pool_all(array: npt.NDArray[np.bool_], f: Sequence[int]) -> npt.NDArray[np.bool_]:
    return np.asarray(_blocks(array, f, 1).all(axis=tuple(range(1, 2 * array.ndim, 2))))


def _upsample(array: npt.NDArray, f: Sequence[int], shape: Sequence[int]) -> npt.NDArray:
    out = array
    for axis, factor in enumerate(f):
        if factor > 1:
            out = np.repeat(out, factor, axis=axis)
    return out[tuple(slice(0, n) for n in shape)]
