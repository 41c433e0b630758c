"""A read-only view of Params that refuses keys a stage did not declare.

Each stage declares the params it reads with the same strings as its `params:` list in dvc.yaml
(`train`, `method.loss`, `losses.${method.loss}`), so DVC reruns a stage exactly when something
it reads changed, and a test checks that the two lists agree. `runtime` and `tracking` change how
a stage runs, not what it computes, and are readable by every stage without being declared.
"""

from __future__ import annotations

import re
from dataclasses import is_dataclass
from typing import Any

from noisyflow.config.parse import get_dotted, to_dict
from noisyflow.errors import ParamsError

ALWAYS = ("runtime", "tracking")
_TEMPLATE = re.compile(r"\$\{([^}]+)\}")


def resolve_reads(reads: tuple[str, ...], params: Any) -> tuple[str, ...]:
    """Substitute `${dotted.key}` in declared reads with the params' values (as DVC does)."""
    tree = to_dict(params)
    return tuple(_TEMPLATE.sub(lambda m: str(get_dotted(tree, m.group(1))), r) for r in reads)


class ParamsView:
    """Attribute access like Params; undeclared keys raise ParamsError naming the stage."""

    def __init__(self, obj: Any, allowed: tuple[str, ...], stage: str, path: str = "") -> None:
        self._obj = obj
        self._allowed = allowed
        self._stage = stage
        self._path = path

    def __getattr__(self, name: str) -> Any:
        key = f"{self._path}{name}"
        value = getattr(self._obj, name)
        if _covered(key, self._allowed):
            return value
        if is_dataclass(value) and any(a.startswith(f"{key}.") for a in self._allowed):
            return ParamsView(value, self._allowed, self._stage, f"{key}.")
        if callable(value) and not is_dataclass(value):
            return value
        raise ParamsError(
            f"stage {self._stage!r} read params key '{key}' that its dvc.yaml `params:` list "
            "does not declare (declare it so DVC reruns the stage when it changes)"
        )

    def chosen(self, family: str) -> Any:
        """The chosen method's params of `family` (e.g. "selection"), if declared."""
        section = {"loss": "losses", "mixup": "mixing"}.get(family, family)
        name = getattr(self.method, family)
        return getattr(getattr(self, section), name)

    @property
    def params(self) -> Any:
        """The underlying Params object (for library calls that take the whole thing)."""
        return self._obj


def _covered(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == a or key.startswith(f"{a}.") for a in (*allowed, *ALWAYS))
