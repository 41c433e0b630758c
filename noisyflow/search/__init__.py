"""The pure parts of the AutoML search (issue 12); Optuna, MLflow and Prefect live in
pipeline/search.py.

space      the YAML search space, checked against the params schema; samples only valid
           method combinations
objective  noisy validation accuracy on a copy of the data without test split or true labels
rank       Spearman / Kendall agreement of the objective with the truth
"""

from noisyflow.search.objective import OBJECTIVE, blind, score, truth, truth_known
from noisyflow.search.rank import rank_correlation
from noisyflow.search.space import Dim, Sampler, Space, load_space, parse_space

__all__ = [
    "OBJECTIVE",
    "Dim",
    "Sampler",
    "Space",
    "blind",
    "load_space",
    "parse_space",
    "rank_correlation",
    "score",
    "truth",
    "truth_known",
]
