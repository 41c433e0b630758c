"""The project's error types: every bad input ends in one of these, with a message that names
the file, the key or row, and what was expected."""

from __future__ import annotations


class NoisyflowError(Exception):
    """Base class of noisyflow's own errors."""


class ParamsError(NoisyflowError, ValueError):
    """params.yaml (or an override) is missing, malformed, or holds an invalid value."""


class InputDataError(NoisyflowError, ValueError):
    """An input file is missing or its contents break the documented schema."""


class TrackingError(NoisyflowError, RuntimeError):
    """The MLflow tracking store cannot be reached or refuses the request."""


class TrainingError(NoisyflowError, RuntimeError):
    """Training cannot go on (a NaN/inf loss, an empty labelled set) without a wrong result."""


class OutputError(NoisyflowError, OSError):
    """A stage's outputs cannot be written (disk full, read-only directory, permissions)."""


class WorkspaceBusyError(NoisyflowError, RuntimeError):
    """Another run (a Prefect flow) holds the workspace."""
