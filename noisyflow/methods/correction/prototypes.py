"""Class prototypes of Han, Luo, Wang, "Deep Self-Learning From Noisy Labels", ICCV 2019.

Per class, prototypes are samples that are dense (similar to many of their class) yet mutually
dissimilar, so a class with several modes gets several prototypes. A sample's prototype label is
the class whose prototypes it resembles most (mean cosine similarity).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def select_prototypes(
    features: torch.Tensor, *, num: int, density_quantile: float = 0.4, max_similarity: float = 0.95
) -> torch.Tensor:
    """Indices of up to `num` prototypes among one class's (m, D) features.

    density rho_i = sum_j sign(S_ij - S_c), S_c = the similarity ranked at the top
    `density_quantile` of S; eta_i = max similarity to any denser sample (min_j S_ij for the
    densest). Prototypes = highest rho among eta < max_similarity, restricted to the denser half
    (rho >= median); never empty for m >= 1.
    """
    f = F.normalize(features.float(), dim=1)
    sim = f @ f.T  # (m, m)
    s_c = torch.quantile(sim.flatten(), 1.0 - density_quantile)
    rho = torch.sign(sim - s_c).sum(dim=1)
    denser = rho[None, :] > rho[:, None]  # denser[i, j]: j is denser than i
    eta = torch.where(denser, sim, torch.full_like(sim, -2.0)).amax(dim=1)
    densest = ~denser.any(dim=1)
    eta = torch.where(densest, sim.amin(dim=1), eta)
    order = torch.argsort(rho, descending=True, stable=True)
    # Only the denser half may serve: in a tight class every non-peak member is > 0.95 similar
    # to a denser one, and the eta rule alone would then pick stray (likely mislabelled) points.
    dense = rho[order] >= rho.median()
    keep = order[dense & (eta[order] < max_similarity)][:num]
    return keep if len(keep) else order[:1]


def prototype_similarity(features: torch.Tensor, prototypes: list[torch.Tensor]) -> torch.Tensor:
    """sigma[i, c] = mean cosine similarity of sample i to class c's prototypes; (N, K)."""
    f = F.normalize(features.float(), dim=1)
    cols = [(f @ F.normalize(p.float(), dim=1).T).mean(dim=1) for p in prototypes]
    return torch.stack(cols, dim=1)


def class_prototypes(
    features: torch.Tensor,
    labels: np.ndarray,
    candidates: np.ndarray,
    num_classes: int,
    *,
    num: int,
    samples_per_class: int,
    density_quantile: float,
    max_similarity: float,
    rng: np.random.Generator,
) -> list[torch.Tensor]:
    """Per class: sample up to m candidates with that label, return their prototype features.

    `candidates` (N,) bool restricts the pool (e.g. to the clean split); a class with no
    candidate falls back to all samples carrying its label.
    """
    protos = []
    for c in range(num_classes):
        pool = np.flatnonzero((labels == c) & candidates)
        if pool.size == 0:
            pool = np.flatnonzero(labels == c)
        if pool.size == 0:
            protos.append(torch.zeros(1, features.shape[1]))
            continue
        pool = rng.permutation(pool)[:samples_per_class]
        pick = select_prototypes(
            features[pool],
            num=num,
            density_quantile=density_quantile,
            max_similarity=max_similarity,
        )
        protos.append(features[pool][pick])
    return protos


def similarity_to_prototypes(
    features: torch.Tensor,
    labels: np.ndarray,
    candidates: np.ndarray,
    num_classes: int,
    p: object,
    rng: np.random.Generator,
) -> torch.Tensor:
    """sigma (N, K): each sample's mean cosine similarity to each class's prototypes, chosen
    among `candidates` (e.g. the labelled set) with the density/similarity rule above."""
    protos = class_prototypes(
        features,
        labels,
        candidates,
        num_classes,
        num=p.prototypes,
        samples_per_class=p.samples_per_class,
        density_quantile=p.density_quantile,
        max_similarity=p.max_similarity,
        rng=rng,
    )
    return prototype_similarity(features, protos)
