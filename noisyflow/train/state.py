"""Everything a training stage needs to resume: networks, optimizers, RNG states, the epoch, the
current division and per-sample statistics, written atomically after every epoch.

Resume state lives in `<project>/.noisyflow/state/<stage>.pt`, which DVC neither tracks nor
deletes (a stage's declared outputs are removed before it reruns, so they cannot hold it). A
checkpoint is only resumed when its fingerprint — the stage's params, the hashes of its inputs
and of the code — equals the current one; otherwise it is ignored and overwritten.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from noisyflow.types import Division

FORMAT = "noisyflow-state-1"


class Randomness:
    """The stage's random streams: a torch generator on the device (permutations, augmentation)
    and a numpy generator (host scalars: mixing coefficients, GMM seeds)."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    def state_dict(self) -> dict[str, Any]:
        return {
            "gen": self.gen.get_state(),
            "rng": self.rng.bit_generator.state,
            "torch": torch.get_rng_state(),
            "python": list(random.getstate()[1]),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch"])
        random.setstate((3, tuple(state["python"]), None))


@dataclass
class TrainState:
    nets: list[nn.Module]
    optimizers: list[torch.optim.Optimizer]
    random: Randomness
    extras: list[nn.Module | None] = field(default_factory=list)
    epoch: int = 0  # the next epoch to run
    division: Division | None = None
    stats: dict[str, torch.Tensor] = field(default_factory=dict)  # per-sample accumulators
    history: list[dict[str, float]] = field(default_factory=list)
    averages: list[nn.Module | None] = field(default_factory=list)  # EMA of each network

    def _with_averages(self) -> list[tuple[nn.Module, nn.Module | None]]:
        return list(zip(self.nets, self.averages or [None] * len(self.nets), strict=True))

    def eval_nets(self) -> list[nn.Module]:
        """The networks to evaluate: their weight averages when the phase keeps them."""
        return [n if a is None else a.module for n, a in self._with_averages()]

    def finalize(self) -> None:
        """End of the phase: the networks take their averaged weights (when averaged)."""
        for net, avg in self._with_averages():
            if avg is not None:
                net.load_state_dict(avg.module.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "epoch": self.epoch,
            "nets": [_cpu(n.state_dict()) for n in self.nets],
            "optimizers": [o.state_dict() for o in self.optimizers],
            "extras": [None if m is None else _cpu(m.state_dict()) for m in self.extras],
            "averages": [None if m is None else _cpu(m.state_dict()) for m in self.averages],
            "random": self.random.state_dict(),
            "division": None if self.division is None else division_to_dict(self.division),
            "stats": {k: v.detach().cpu() for k, v in self.stats.items()},
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for net, sd in zip(self.nets, state["nets"], strict=True):
            net.load_state_dict(sd)
        for opt, sd in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(sd)
        for module, sd in zip(self.extras, state["extras"], strict=True):
            if module is not None:
                module.load_state_dict(sd)
        for module, sd in zip(self.averages, state.get("averages", []), strict=False):
            if module is not None:
                module.load_state_dict(sd)
        self.random.load_state_dict(state["random"])
        self.epoch = int(state["epoch"])
        self.division = None if state["division"] is None else division_from_dict(state["division"])
        device = next(self.nets[0].parameters()).device
        self.stats = {k: v.to(device) for k, v in state["stats"].items()}
        self.history = list(state["history"])


def division_to_dict(div: Division) -> dict[str, Any]:
    return {
        "clean_prob": torch.from_numpy(np.asarray(div.clean_prob, dtype=np.float64)),
        "labelled": torch.from_numpy(np.asarray(div.labelled, dtype=bool)),
        "weight": torch.from_numpy(np.asarray(div.weight, dtype=np.float64)),
        "loss": torch.from_numpy(np.asarray(div.loss, dtype=np.float64)),
        "fits": [dict(f) for f in div.fits],
    }


def division_from_dict(d: dict[str, Any]) -> Division:
    return Division(
        d["clean_prob"].numpy(),
        d["labelled"].numpy(),
        d["weight"].numpy(),
        d["loss"].numpy(),
        tuple(d["fits"]),
    )


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


class Checkpointer:
    """Per-epoch resume checkpoints of one stage (see module docstring)."""

    def __init__(self, path: Path, fingerprint: str, *, every: int = 1) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.every = every
        self.run_id: str | None = None  # the MLflow run writing this checkpoint

    def load(self) -> dict[str, Any] | None:
        """The saved state if it exists and matches the fingerprint, else None."""
        if self.every <= 0 or not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # a torn or foreign file is not resumable; start over
            return None
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
            return None
        return state

    def save(self, state: TrainState, *, epochs: int) -> None:
        """Write atomically after epoch `state.epoch - 1` when due (and never after the last)."""
        done = state.epoch
        if self.every <= 0 or done >= epochs or done % self.every:
            return
        payload = {**state.state_dict(), "fingerprint": self.fingerprint, "run_id": self.run_id}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(fd)
        try:
            torch.save(payload, tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def clear(self) -> None:
        """Remove the checkpoint once the stage's outputs are written."""
        self.path.unlink(missing_ok=True)
