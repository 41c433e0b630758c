"""The search space: a YAML file of dotted params keys, checked against the params schema.

    fixed:                        # applied to every trial, never searched
      data.val_size: 300
    search:                       # sampled per trial, in this order
      method.loss: [ce, gce, sce]                           # a list: categorical
      method.selection: [gmm, coteaching, none]
      method.ssl: [mixmatch, fixmatch, none]
      train.lr: {low: 0.005, high: 0.2, log: true}          # float (a bound is a float)
      warmup.epochs: {low: 2, high: 15}                     # int (both bounds are ints)
      losses.gce.q: {low: 0.1, high: 1.0, when: {method.loss: gce}}

`when: {key: value | [values]}` samples an entry only when an earlier categorical entry took one
of those values (its parameters mean nothing otherwise). Method choices (`method.*` lists) are
sampled so that every trial is a combination `check_combination` accepts: for each one, only the
choices that still complete to a valid combination with the choices already made are offered.
The Optuna parameter keeps the key's name when every choice is open and gets the open subset as
a suffix (`method.ssl[fixmatch,none]`) when fewer are: Optuna requires one fixed set of choices
per parameter name. A choice left alone is set without sampling.

Everything is checked when the file is loaded (`Space.check`): unknown keys, values outside the
schema's ranges, method names, combinations that can never run, and `data.*` / `runtime.*` /
`tracking.*` keys under `search:` (the trials share one prepared data set and one machine).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import yaml

from noisyflow.config import Params, read_yaml, to_dict, with_overrides
from noisyflow.config.parse import build
from noisyflow.errors import ParamsError

NOT_SEARCHABLE = ("data.", "runtime.", "tracking.")
RANGE_KEYS = {"low", "high", "log", "step", "type", "when"}
CHOICE_KEYS = {"choices", "when"}


class TrialLike(Protocol):
    """What sampling needs from an Optuna trial (optuna.trial.Trial satisfies it)."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False): ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...


@dataclass(frozen=True)
class Dim:
    """One searched key: categorical (`choices`) or a numeric range."""

    key: str
    kind: str  # "categorical" | "int" | "float"
    choices: tuple[Any, ...] = ()
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def active(self, values: dict[str, Any]) -> bool:
        """Whether the entry is sampled, given the values of the entries before it."""
        return all(values.get(key, _MISSING) in allowed for key, allowed in self.when)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, log=self.log, step=self.step)
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when}
        return out


_MISSING = object()


@dataclass(frozen=True)
class Space:
    """The parsed space file (not yet checked against params: see `check`)."""

    fixed: dict[str, Any]
    dims: tuple[Dim, ...]
    origin: str = "search space"

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly form (fingerprints, study attributes, MLflow)."""
        return {"fixed": dict(self.fixed), "search": {d.key: d.as_dict() for d in self.dims}}

    def check(self, params: Params, extra_fixed: dict[str, Any] | None = None) -> Sampler:
        """Check every key and value against `params`' schema; the sampler of valid trials.

        extra_fixed: more fixed overrides (the CLI's -S), applied after the file's `fixed:`.
        Raises ParamsError "<file>: <where>: <what>" on the first problem.
        """
        both = sorted(set(extra_fixed or {}) & {d.key for d in self.dims})
        if both:
            raise ParamsError(
                f"{self.origin}: search.{both[0]}: also fixed on the command line (-S); "
                "search it or fix it, not both"
            )
        fixed = {**self.fixed, **(extra_fixed or {})}
        try:
            base = with_overrides(params, fixed)
        except ParamsError as exc:
            raise ParamsError(f"{self.origin}: fixed: {exc}") from None
        for dim in self.dims:
            _check_dim(dim, base, self.origin)
        return Sampler(replace(self, fixed=fixed), base)


def load_space(path: str | Path) -> Space:
    """Read a space file; ParamsError naming the file and entry on any format problem."""
    raw = read_yaml(path)
    return parse_space(raw, origin=str(path))


def parse_space(raw: Any, *, origin: str = "search space") -> Space:
    if not isinstance(raw, dict):
        raise ParamsError(
            f"{origin}: expected a mapping with 'search:' (and 'fixed:'), got {raw!r}"
        )
    unknown = set(raw) - {"fixed", "search"}
    if unknown:
        key = sorted(unknown, key=str)[0]
        near = difflib.get_close_matches(str(key), ["fixed", "search"], n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ParamsError(f"{origin}: unknown section {key!r}{hint}; expected fixed, search")
    fixed = raw.get("fixed") or {}
    search = raw.get("search") or {}
    for name, section in (("fixed", fixed), ("search", search)):
        if not isinstance(section, dict):
            raise ParamsError(f"{origin}: {name}: expected a mapping of dotted keys")
    if not search:
        raise ParamsError(f"{origin}: search: empty; nothing to search")
    dims: list[Dim] = []
    for key, spec in search.items():
        dims.append(_parse_dim(str(key), spec, origin, dims))
    overlap = sorted(set(fixed) & {d.key for d in dims})
    if overlap:
        raise ParamsError(f"{origin}: {overlap[0]}: both fixed and searched")
    return Space({str(k): v for k, v in fixed.items()}, tuple(dims), origin)


def _parse_dim(key: str, spec: Any, origin: str, before: list[Dim]) -> Dim:
    where = f"{origin}: search.{key}"
    if key.startswith(NOT_SEARCHABLE) or key == "seed":
        raise ParamsError(
            f"{where}: cannot be searched (every trial shares one prepared data set, one machine "
            "and one seed); set it under fixed: instead"
        )
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise ParamsError(
            f"{where}: expected a list of choices or {{low, high[, log, step, type, when]}}, "
            f"got {spec!r}"
        )
    if "when" in spec:
        when = _parse_when(spec["when"], where, before)
    if "choices" in spec:
        extra = set(spec) - CHOICE_KEYS
        if extra:
            raise ParamsError(f"{where}: unexpected {sorted(extra)[0]!r} beside choices")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ParamsError(f"{where}: choices must be a non-empty list")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise ParamsError(f"{where}: a choice is repeated")
        for c in choices:
            if not (c is None or isinstance(c, (str, int, float, bool))):
                raise ParamsError(f"{where}: choice {c!r} is not a scalar")
        if key.startswith("method.") and when:
            raise ParamsError(f"{where}: method choices cannot be conditional (no when:)")
        return Dim(key, "categorical", tuple(choices), when=when)
    extra = set(spec) - RANGE_KEYS
    if extra:
        bad = sorted(extra)[0]
        near = difflib.get_close_matches(bad, sorted(RANGE_KEYS | CHOICE_KEYS), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ParamsError(f"{where}: unknown field {bad!r}{hint}")
    if "low" not in spec or "high" not in spec:
        raise ParamsError(f"{where}: a range needs low and high (or give a list of choices)")
    low, high = spec["low"], spec["high"]
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ParamsError(f"{where}: {name} must be a finite number, got {v!r}")
    if low >= high:
        raise ParamsError(f"{where}: low ({low}) must be below high ({high})")
    kind = spec.get("type") or (
        "int" if isinstance(low, int) and isinstance(high, int) else "float"
    )
    if kind not in ("int", "float"):
        raise ParamsError(f"{where}: type must be int or float, got {kind!r}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ParamsError(f"{where}: log must be true or false")
    if log and low <= 0:
        raise ParamsError(f"{where}: a log range needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
            raise ParamsError(f"{where}: step must be a positive number")
        if log:
            raise ParamsError(f"{where}: step and log cannot be combined")
    if kind == "int":
        if any(not float(v).is_integer() for v in (low, high, step or 1)):
            raise ParamsError(f"{where}: an int range needs whole-number low, high and step")
        low, high, step = int(low), int(high), (int(step) if step is not None else None)
    else:
        low, high = float(low), float(high)
        step = float(step) if step is not None else None
    return Dim(key, kind, low=low, high=high, log=log, step=step, when=when)


def _parse_when(raw: Any, where: str, before: list[Dim]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(raw, dict) or not raw:
        raise ParamsError(f"{where}: when: expected {{key: value or [values]}}")
    earlier = {d.key: d for d in before if d.kind == "categorical"}
    out = []
    for key, allowed in raw.items():
        if key not in earlier:
            raise ParamsError(
                f"{where}: when: {key!r} is not a categorical entry earlier in search:"
            )
        values = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        missing = [v for v in values if v not in earlier[key].choices]
        if missing:
            raise ParamsError(
                f"{where}: when: {key} never takes {missing[0]!r} (choices: "
                + ", ".join(str(c) for c in earlier[key].choices)
                + ")"
            )
        out.append((str(key), values))
    return tuple(out)


def _check_dim(dim: Dim, base: Params, origin: str) -> None:
    where = f"{origin}: search.{dim.key}"
    if dim.kind == "categorical" and dim.key.startswith("method."):
        for choice in dim.choices:  # names and types, without the combination check
            tree = to_dict(base.method)
            leaf = dim.key.split(".", 1)[1]
            if leaf not in tree:
                near = difflib.get_close_matches(leaf, list(tree), n=1)
                hint = f" (did you mean 'method.{near[0]}'?)" if near else ""
                raise ParamsError(f"{where}: unknown key 'method.{leaf}'{hint}")
            tree[leaf] = choice
            try:
                build(type(base.method), tree, "method.")
            except ParamsError as exc:
                raise ParamsError(f"{where}: {exc}") from None
        return
    values = dim.choices if dim.kind == "categorical" else (dim.low, dim.high)
    for value in values:
        try:
            with_overrides(base, {dim.key: value})
        except ParamsError as exc:
            raise ParamsError(f"{where}: {exc}") from None


@dataclass
class Sampler:
    """Samples one trial's overrides from a checked space; only valid combinations."""

    space: Space
    base: Params  # params with the fixed overrides applied
    method_dims: tuple[Dim, ...] = field(init=False)
    valid: list[tuple[Any, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.method_dims = tuple(
            d for d in self.space.dims if d.kind == "categorical" and d.key.startswith("method.")
        )
        self.valid = []
        reasons: dict[tuple[str, Any], str] = {}
        for combo in itertools.product(*(d.choices for d in self.method_dims)):
            try:
                self._with_methods(combo)
                self.valid.append(combo)
            except ParamsError as exc:
                for d, v in zip(self.method_dims, combo, strict=True):
                    reasons.setdefault((d.key, v), str(exc))
        where = self.space.origin
        if self.method_dims and not self.valid:
            first = next(iter(reasons.values()))
            raise ParamsError(
                f"{where}: search: no combination of the method choices runs ({first})"
            )
        for i, d in enumerate(self.method_dims):
            seen = {combo[i] for combo in self.valid}
            for choice in d.choices:
                if choice not in seen:
                    raise ParamsError(
                        f"{where}: search.{d.key}: {choice!r} never runs with the other choices "
                        f"({reasons[(d.key, choice)]})"
                    )

    def _with_methods(self, combo: tuple[Any, ...]) -> Params:
        changes = {d.key.split(".", 1)[1]: v for d, v in zip(self.method_dims, combo, strict=True)}
        # dataclasses.replace re-runs each __post_init__: names and check_combination.
        return replace(self.base, method=replace(self.base.method, **changes))

    def open_choices(self, dim: Dim, chosen: dict[str, Any]) -> tuple[Any, ...]:
        """The choices of method entry `dim` that complete to a valid combination."""
        i = self.method_dims.index(dim)
        prefix = tuple(chosen[d.key] for d in self.method_dims[:i])
        ok = {combo[i] for combo in self.valid if combo[:i] == prefix}
        return tuple(c for c in dim.choices if c in ok)

    def sample(self, trial: TrialLike) -> dict[str, Any]:
        """One trial's overrides (searched keys only, in space order).

        Entries whose `when:` does not hold are left out; a method entry with one open choice
        is set without asking the trial."""
        values: dict[str, Any] = {}
        for dim in self.space.dims:
            if not dim.active(values):
                continue
            if dim.kind == "categorical":
                choices = self.open_choices(dim, values) if dim in self.method_dims else dim.choices
                if len(choices) == 1:
                    values[dim.key] = choices[0]
                    continue
                name = dim.key if choices == dim.choices else param_name(dim.key, choices)
                values[dim.key] = trial.suggest_categorical(name, list(choices))
            elif dim.kind == "int":
                values[dim.key] = trial.suggest_int(
                    dim.key, dim.low, dim.high, step=dim.step or 1, log=dim.log
                )
            else:
                values[dim.key] = trial.suggest_float(
                    dim.key, dim.low, dim.high, step=dim.step, log=dim.log
                )
        return values

    def params_for(self, overrides: dict[str, Any]) -> Params:
        """The trial's full params: base (with fixed) + the sampled overrides."""
        return with_overrides(self.base, overrides)

    def fingerprint(self) -> str:
        """sha256 of what decides a trial's result: base params (without runtime and tracking)
        and the space. Trials of one study must share it."""
        tree = to_dict(self.base)
        tree.pop("runtime", None)
        tree.pop("tracking", None)
        blob = json.dumps({"params": tree, "space": self.space.as_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def param_name(key: str, choices: tuple[Any, ...]) -> str:
    """Optuna parameter name of a method entry restricted to `choices`."""
    return f"{key}[{','.join(str(c) for c in choices)}]"


def overrides_yaml(overrides: dict[str, Any]) -> str:
    """Dotted overrides as YAML, one `key: value` per line, in order."""
    return yaml.safe_dump(dict(overrides), sort_keys=False, default_flow_style=False)
