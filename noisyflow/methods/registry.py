"""Registries: params.yaml picks a method by name (`method.loss: gce`); its own parameters live
under `<family>.<name>` (`losses.gce.q: 0.7`), a frozen dataclass declared with the entry.

    LOSSES = Registry("loss", section="losses")

    @LOSSES.register("gce", params=GCEParams, paper="Zhang & Sabuncu, NeurIPS 2018")
    def gce(logits, targets, p): ...

The config builds one section per family from `Registry.section_type()`, so unknown names and
keys fail at load time, and the README's table of methods is generated from the registries.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from noisyflow.errors import ParamsError


@dataclass(frozen=True)
class NoParams:
    """A method without parameters of its own."""


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    params: type
    paper: str

    @property
    def summary(self) -> str:
        """First line of the entry's docstring."""
        doc = inspect.getdoc(self.obj) or ""
        return doc.splitlines()[0] if doc else ""


class Registry:
    """Name -> Entry for one family of methods (losses, selection, ssl, mixing, correction)."""

    def __init__(self, family: str, *, section: str) -> None:
        self.family = family  # the `method.<family>` key
        self.section = section  # the params.yaml section holding each entry's parameters
        self._entries: dict[str, Entry] = {}

    def register(
        self, name: str, *, params: type = NoParams, paper: str = ""
    ) -> Callable[[Any], Any]:
        def add(obj: Any) -> Any:
            if name in self._entries:
                raise ValueError(f"{self.family} {name!r} registered twice")
            self._entries[name] = Entry(name, obj, params, paper)
            return obj

        return add

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Entry:
        """The entry called `name`; ParamsError with the nearest valid name otherwise."""
        if name not in self._entries:
            near = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ParamsError(
                f"method.{self.family}: unknown {name!r}{hint}; expected one of "
                + ", ".join(self.names())
            )
        return self._entries[name]

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def section_type(self) -> type:
        """A frozen dataclass with one field per entry, holding that entry's params."""
        spec = [
            (name, entry.params, field(default_factory=entry.params))
            for name, entry in self._entries.items()
        ]
        cls = make_dataclass(f"{self.section.title()}Section", spec, frozen=True)
        cls.__doc__ = f"Parameters of each `method.{self.family}` entry."
        return cls
