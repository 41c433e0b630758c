"""How a stage runs on its machine: device, threads, autocast, memory format, compilation.

Resolved once per stage from `runtime:` in params.yaml (which DVC does not track: on CPU these
options never change a result; on CUDA bf16 autocast and kernel choice can, see docs).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from noisyflow.config import RuntimeParams
from noisyflow.errors import ParamsError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; a named device must exist on this machine."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ParamsError(
            f"runtime.device: {name!r} is not a device name (auto | cpu | cuda | cuda:N | mps)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ParamsError(
                "runtime.device: cuda was asked for, but this torch build or machine has no "
                "CUDA device (use auto or cpu)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ParamsError(
                f"runtime.device: {name} does not exist ({torch.cuda.device_count()} GPUs)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ParamsError("runtime.device: mps is not available on this machine")
    return device


def configure_threads(threads: int) -> int:
    """Set torch's intra-op threads (0 = min(cores, 4)); env NOISYFLOW_THREADS wins."""
    env = os.environ.get("NOISYFLOW_THREADS")
    n = int(env) if env else threads
    if n <= 0:
        n = min(os.cpu_count() or 1, 4)
    torch.set_num_threads(n)
    return n


@dataclass
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    compile: bool = False
    data_on_device: str = "auto"
    _compiled: dict[int, nn.Module] = field(default_factory=dict, repr=False)

    @classmethod
    def from_params(cls, p: RuntimeParams) -> Runtime:
        configure_threads(p.threads)
        device = resolve_device(p.device)
        cuda = device.type == "cuda"
        if p.amp == "bf16" and not cuda:
            amp = torch.bfloat16 if device.type == "cpu" else None
        else:
            amp = torch.bfloat16 if (p.amp != "off" and cuda) else None
        return cls(
            device=device,
            amp_dtype=amp,
            channels_last=p.channels_last and cuda,
            compile=p.compile and cuda,
            data_on_device=p.data_on_device,
        )

    @classmethod
    def cpu(cls) -> Runtime:
        return cls(torch.device("cpu"))

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def place(self, net: nn.Module) -> nn.Module:
        """Move a network to the device in the configured memory format."""
        return net.to(self.device, memory_format=self.memory_format)

    def forward(self, net: nn.Module) -> nn.Module:
        """The callable used for training forwards: `torch.compile(net)` when asked, else net."""
        if not self.compile:
            return net
        key = id(net)
        if key not in self._compiled:
            self._compiled[key] = torch.compile(net)
        return self._compiled[key]

    def fits_on_device(self, nbytes: int) -> bool:
        """Whether the uint8 training set is copied to the device (or, on CPU, into memory)
        whole; otherwise batches are gathered from the memory-mapped array."""
        if self.data_on_device != "auto":
            return self.data_on_device == "yes"
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
        else:
            try:
                import psutil

                free = psutil.virtual_memory().available
            except ImportError:  # a bare machine: the page size x available pages
                free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return nbytes < 0.25 * free

    def optimizer(
        self, params, *, lr: float, momentum: float, weight_decay: float, nesterov: bool = False
    ) -> torch.optim.SGD:
        """SGD (fused kernels on CUDA)."""
        fused = self.device.type == "cuda"
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov and momentum > 0,
            fused=fused or None,
        )
