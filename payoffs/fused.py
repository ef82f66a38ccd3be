"""Fused cells: attack cells that differ only in their dropout rate r', run as one batch (issue 14, item 4).

At batch 900 a GPU is mostly idle on the paper's small CNN. Cells that share a model, its data and slot, an
attacker strategy and the protocol (N, M, seed, device, batch size) and whose defenders are test-time dropout at
rates r'_1..r'_J > 0 become one job: the attack runs once over the J x 900 examples, row b of cell j dropping with
r'_j (:class:`RowRateDropout`) and drawing from cell j's keys (the attack's ``group_seeds``), so every record is
the one the cell would give alone, up to the float round-off any change of batch brings (a test compares them);
only the attack's cost and time are shared. Then each
cell's M-sample evaluation runs on its own. Deterministic defenders (r' = 0) and other defenses (SAP) stay single
cells: fusing them would change a rate-0 row's number of draws or need a per-row SAP.

:func:`payoffs.fused_jobs.fuse_jobs` groups a sweep's cells into such jobs; :func:`payoffs.cell.run_cells` runs
one.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from payoffs import noise
from payoffs.errors import DefdropError


class RowRateDropout(nn.Module):
    """Test-time dropout with a rate per run of a fused batch: row b drops each unit with ``rates[g_b]`` and
    scales kept units by ``1 / (1 - rates[g_b])``, ``g_b`` the row's run (:func:`payoffs.noise.row_groups`);
    draws and arithmetic are those of :class:`payoffs.defenses.TestTimeDropout` at that rate, bit for bit.
    Outside a fused batch (no groups) every row takes the first rate."""

    deterministic = False

    def __init__(self, rates: Sequence[float]) -> None:
        super().__init__()
        if not rates or any(not 0.0 < float(r) < 1.0 for r in rates):
            raise DefdropError(f"fused dropout rates must lie in (0, 1), got {list(rates)}")
        self.rates = [float(r) for r in rates]
        self._tables: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def _rate_scale(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The rates and the divisors ``1 - r'`` (in double, then rounded to ``dtype``: what TestTimeDropout's
        Python-float divisor becomes) as tensors on ``device``, made once per device and dtype."""
        key = (device, dtype)
        if key not in self._tables:
            self._tables[key] = (torch.tensor(self.rates, dtype=dtype, device=device),
                                 torch.tensor([1.0 - r for r in self.rates], dtype=dtype, device=device))
        return self._tables[key]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        groups = noise.row_groups()
        shape = (-1,) + (1,) * (h.dim() - 1)
        if groups is None:
            groups = torch.zeros(h.shape[0], dtype=torch.int64, device=h.device)
        rates, scales = self._rate_scale(h.device, h.dtype)
        rate, scale = rates[groups].view(shape), scales[groups].view(shape)
        keep = noise.uniform(h.shape, h.device, h.dtype) >= rate
        return h * keep / scale

    def extra_repr(self) -> str:
        return f"rates={self.rates}"


def fused_net(rates: Sequence[float], model: nn.Module, slot: str) -> nn.Module:
    """``model`` with a :class:`RowRateDropout` of ``rates`` in its defense slot ``slot``."""
    from payoffs.slots import with_defense

    return with_defense(model, RowRateDropout(rates), slot)
