"""noisyflow: learning with noisy labels (DivideMix + prototype label correction).

Vocabulary used across the package: `labels` (given, possibly noisy, (N,)), `true_labels`,
`noise_mask` ((N,) bool, True = label was flipped), `logits` / `probs` ((N, K)), `clean_prob`
((N,) posterior that the given label is clean), `label_quality`, `is_label_issue`,
`num_classes`, `p_threshold`, `lambda_u`, `temperature` (the papers' T), `alpha`.

Importing the package touches no disk, MLflow, Prefect or CUDA; modules are imported by name
(`from noisyflow import recipes`).
"""

__version__ = "0.1.0"
