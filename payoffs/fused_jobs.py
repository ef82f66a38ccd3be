"""Fused-cell jobs: which cells of a sweep share a batch (see :mod:`payoffs.fused`), and the executor job that runs
them. ``build_payoff_table`` fuses by default on CUDA devices, where batching pays, and not on CPUs, where one
cell per process already keeps the cores busy.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

from torch import nn

from payoffs.cell import CellSpec, run_cells
from payoffs.errors import DefdropError
from payoffs.sources import TestSplit

MAX_FUSED_CELLS = 8
"""The most cells one fused job attacks at once (J x batch_size examples in one pass)."""


def fusable(spec: CellSpec) -> bool:
    """A cell that may share a batch: its defender is test-time dropout at r' > 0."""
    from payoffs.defenses import TestTimeDropout

    return spec.defender.defense == "dropout" and isinstance(spec.defender.module(), TestTimeDropout)


def _group(spec: CellSpec) -> tuple:
    return (spec.model.identity, spec.data.identity, spec.slot, spec.attacker.id, spec.n_images, spec.eval_samples,
            spec.seed, spec.device, spec.batch_size)


@dataclass(frozen=True)
class FusedCells:
    """Cells attacked in one batch (see the module docstring); an executor job like a :class:`CellSpec`."""

    cells: tuple[CellSpec, ...]

    def __post_init__(self) -> None:
        if len(self.cells) < 2 or len({_group(c) for c in self.cells}) != 1 or not all(map(fusable, self.cells)):
            raise DefdropError("fused cells must be two or more dropout cells that differ only in r'")

    @property
    def model(self):
        return self.cells[0].model

    @property
    def data(self):
        return self.cells[0].data

    @property
    def device(self) -> str:
        return self.cells[0].device

    @property
    def attacker(self):
        return self.cells[0].attacker

    def key(self) -> str:
        """A name for the job (its cells keep their own cache keys)."""
        return "fused-" + hashlib.sha256(" ".join(c.key() for c in self.cells).encode()).hexdigest()[:20]


def run_fused_cells(job: FusedCells, progress=None, *, model: nn.Module | None = None,
                    data: TestSplit | None = None) -> dict:
    """An executor job: ``{"kind": "fused", "records": [one record per cell, in order]}``."""
    return {"kind": "fused", "key": job.key(), "records": run_cells(job.cells, progress, model=model, data=data)}


def fuse_jobs(specs: Sequence[CellSpec], max_cells: int = MAX_FUSED_CELLS) -> list[CellSpec | FusedCells]:
    """The cells as jobs: those that may share a batch grouped (in their order, at most ``max_cells`` a job), the
    rest alone."""
    groups: dict[tuple, list[CellSpec]] = {}
    jobs: list[CellSpec | FusedCells | tuple] = []
    for spec in specs:
        if not fusable(spec):
            jobs.append(spec)
            continue
        key = _group(spec)
        if key not in groups:
            groups[key] = []
            jobs.append(key)
        groups[key].append(spec)
    out: list[CellSpec | FusedCells] = []
    for job in jobs:
        if not isinstance(job, tuple):
            out.append(job)
            continue
        cells = groups[job]
        for i in range(0, len(cells), max_cells):
            part = tuple(cells[i:i + max_cells])
            out.append(FusedCells(part) if len(part) > 1 else part[0])
    return out
