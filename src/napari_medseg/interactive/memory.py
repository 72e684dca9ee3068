"""What a person taught: the accepted objects of each kind, carried to the next object and to
other scans (``Session(other_scan, memory=s.memory)``), saved and loaded whole."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_medseg.errors import MedsegError

#: Intensity samples kept per accepted object (a random subset of its voxels).
SAMPLES_PER_OBJECT = 4000
#: Objects of one kind whose samples are used (the most recent).
OBJECTS_PER_KIND = 8


@dataclass(frozen=True, eq=False)
class Example:
    """One accepted object: its kind, intensity samples (mapped to ``[0, 1]``, see
    :class:`~.engine.IntensityMapping`), volume in ml and the scan it was made on."""

    kind: str
    samples: npt.NDArray[np.float32] = field(repr=False)
    volume_ml: float
    scan: str = ""
    mapping: tuple[float, float] = (0.0, 1.0)
    appearance: npt.NDArray[np.float32] | None = field(default=None, repr=False)


@dataclass
class Memory:
    """Accepted objects by kind; a session adds to it on accept and takes back on undo."""

    examples: list[Example] = field(default_factory=list)

    def add(self, example: Example) -> None:
        self.examples.append(example)

    def remove(self, example: Example) -> None:
        self.examples = [e for e in self.examples if e is not example]

    def kinds(self) -> list[str]:
        return sorted({e.kind for e in self.examples})

    def of_kind(self, kind: str | None) -> list[Example]:
        if not kind:
            return []
        return [e for e in self.examples if e.kind == kind][-OBJECTS_PER_KIND:]

    def appearance(self, kind: str | None) -> npt.NDArray[np.float32] | None:
        """The summed appearance counts of the objects of ``kind`` (``None`` if none)."""
        parts = [e.appearance for e in self.of_kind(kind) if e.appearance is not None]
        return np.sum(parts, axis=0) if parts else None

    def samples(self, kind: str | None, mapping: tuple[float, float]) -> npt.NDArray[np.float32]:
        """Intensity samples of the objects of ``kind``, re-mapped to ``mapping`` (the scan at
        hand's ``(low, high)``)."""
        parts = []
        for e in self.of_kind(kind):
            raw = e.samples * (e.mapping[1] - e.mapping[0]) + e.mapping[0]
            parts.append(np.clip((raw - mapping[0]) / (mapping[1] - mapping[0]), 0, 1))
        if not parts:
            return np.zeros(0, np.float32)
        return np.concatenate(parts).astype(np.float32)

    # ---------------------------------------------------------------- save / load whole
    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "examples": [
            {"kind": e.kind, "samples": e.samples.round(4).tolist(), "volume_ml": e.volume_ml,
             "scan": e.scan, "mapping": list(e.mapping),
             "appearance": _sparse(e.appearance)} for e in self.examples]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Memory:
        return cls([Example(kind=str(d["kind"]),
                            samples=np.asarray(d["samples"], np.float32),
                            volume_ml=float(d["volume_ml"]), scan=str(d.get("scan", "")),
                            mapping=(float(d["mapping"][0]), float(d["mapping"][1])),
                            appearance=_dense(d.get("appearance")))
                    for d in data.get("examples", [])])

    @classmethod
    def open(cls, path: str | Path) -> Memory:
        """The memory saved at ``path``; an empty one when there is none yet.  A damaged file
        raises :class:`~napari_medseg.errors.MedsegError` (it is left as it is)."""
        path = Path(path)
        if not path.is_file():
            return cls()
        try:
            return cls.load(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = (f"what you taught the interactive engine could not be read from {path} "
                   f"({type(exc).__name__}: {exc}); move it away to start a new one")
            raise MedsegError(msg) from None

    def save(self, path: str | Path) -> None:
        from napari_medseg.io.atomic import write_atomically

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict())

        def write(tmp: Path) -> None:
            tmp.write_text(text, encoding="utf-8")

        write_atomically(Path(path), write, overwrite=True)

    @classmethod
    def load(cls, path: str | Path) -> Memory:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _sparse(counts: npt.NDArray[np.float32] | None) -> dict[str, Any] | None:
    if counts is None:
        return None
    flat = counts.ravel()
    nz = np.flatnonzero(flat)
    return {"shape": list(counts.shape), "index": nz.tolist(), "count": flat[nz].tolist()}


def _dense(data: dict[str, Any] | None) -> npt.NDArray[np.float32] | None:
    if not data:
        return None
    out = np.zeros(int(np.prod(data["shape"])), np.float32)
    out[np.asarray(data["index"], np.int64)] = np.asarray(data["count"], np.float32)
    return out.reshape(data["shape"])
