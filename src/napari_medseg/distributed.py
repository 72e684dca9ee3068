"""Several processes on one job, the ``torchrun`` way: who am I, on which device, a few collectives.

``torchrun --nproc_per_node N`` (or ``python -m torch.distributed.run``) starts N copies of a
command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` in their environment.  :func:`from_environment` reads them;
:func:`process_group` joins the group for the length of a ``with`` block (NCCL when the device
is a CUDA GPU, gloo otherwise) and leaves it afterwards.  Outside torchrun every helper acts
for a world of one process, so the same code runs single-process unchanged.

Training uses the group for DistributedDataParallel (:mod:`napari_medseg.training.trainer`);
cohort inference only for a final barrier (:mod:`napari_medseg.inference.cohort`).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from napari_medseg.errors import MedsegError

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


class DistributedError(MedsegError):
    """The process group could not start, or the launcher's environment does not add up."""


@dataclass(frozen=True)
class Context:
    """This process's place in the job: ``rank`` of ``world_size`` processes in all,
    ``local_rank`` of ``local_world_size`` on this machine (which GPU and how many CPU cores)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, writes checkpoints and merges summaries."""
        return self.rank == 0


def from_environment(environ: Mapping[str, str] | None = None) -> Context:
    """The context torchrun (or any launcher setting the same variables) describes."""
    env = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for name in _ENV:
        text = env.get(name)
        if text is None or text == "":
            continue
        try:
            values[name] = int(text)
        except ValueError:
            msg = f"environment variable {name}={text!r} is not an integer; launch with torchrun"
            raise DistributedError(msg) from None
    world = values.get("WORLD_SIZE", 1)
    rank = values.get("RANK", 0)
    local_world = values.get("LOCAL_WORLD_SIZE", world)
    local_rank = values.get("LOCAL_RANK", rank % max(local_world, 1))
    if world < 1 or not 0 <= rank < world or not 0 <= local_rank < max(local_world, 1):
        msg = (f"RANK={rank}, LOCAL_RANK={local_rank} do not fit WORLD_SIZE={world}, "
               f"LOCAL_WORLD_SIZE={local_world}; launch with torchrun or unset these variables")
        raise DistributedError(msg)
    return Context(rank=rank, world_size=world, local_rank=local_rank,
                   local_world_size=max(local_world, 1))


def current() -> Context:
    """The context of the joined process group; a world of one when none is joined."""
    if not (dist.is_available() and dist.is_initialized()):
        return Context()
    env = from_environment()
    return Context(rank=dist.get_rank(), world_size=dist.get_world_size(),
                   local_rank=env.local_rank, local_world_size=env.local_world_size)


def device_for_rank(device: torch.device, context: Context) -> torch.device:
    """``cuda`` without an index becomes this process's GPU: ``cuda:LOCAL_RANK`` (modulo the
    GPUs present, so that more processes than GPUs share them round-robin)."""
    if device.type == "cuda" and device.index is None and context.is_distributed:
        return torch.device("cuda", context.local_rank % max(1, torch.cuda.device_count()))
    return device


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_process(context: Context) -> int | None:
    """Torch CPU threads for one of several processes on a machine: the cores shared out
    (``None`` for a single process: leave torch's own choice)."""
    if context.local_world_size <= 1:
        return None
    return max(1, available_cores() // context.local_world_size)


@contextmanager
def process_group(*, device: torch.device | str = "cpu", backend: str | None = None,
                  timeout: datetime.timedelta | None = None) -> Iterator[Context]:
    """Join torchrun's process group for the block (no-op for a single process).

    ``backend``: ``None`` picks NCCL for a CUDA ``device`` and gloo otherwise.  A group joined
    before (by the caller) is used as it is and left joined.
    """
    context = from_environment()
    if not context.is_distributed or dist.is_initialized():
        yield current()
        return
    if not dist.is_available():
        msg = "this torch build has no torch.distributed; run a single process"
        raise DistributedError(msg)
    device = torch.device(device)
    if backend is None:
        backend = "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(device_for_rank(device, context))
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        msg = (f"WORLD_SIZE={context.world_size} is set but {' and '.join(missing)} not; "
               "launch with torchrun (which sets them) or unset WORLD_SIZE")
        raise DistributedError(msg)
    try:
        dist.init_process_group(backend=backend, timeout=timeout)
    except (RuntimeError, ValueError) as exc:
        msg = (f"rank {context.rank} could not join the {backend} process group at "
               f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} ({exc}); check the "
               "rendezvous address and that every rank was started")
        raise DistributedError(msg) from exc
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over all processes (``value`` itself for one process).

    Every rank must call it at the same point; a NaN anywhere makes the mean NaN everywhere,
    so all ranks take the same decision on it.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` for one process); a collective."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
