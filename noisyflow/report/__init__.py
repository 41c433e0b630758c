"""The run report: pictures and one self-contained HTML page per run.

One idea per module:

figure     the matplotlib (Agg) set-up every figure shares
tiles      a grid of training images with captions (the gallery, duplicate pairs, outliers)
gallery    which label issues to show, in what order, and their suggested classes
gmm        the division's fitted two-component mixture: densities, threshold, histogram tables
gmm_figure the GMM picture: per network and phase, the loss histogram with the fitted components
curves     per-epoch curves of all phases on one axis (CSV for DVC plots, PNG for the report)
transition the noise-transition matrix estimated from the suggestions, beside the true one
features   the final networks' features and probabilities on the training images
data_issues near-duplicates with different labels and outliers, from a nearest-neighbour index
html       HTML building blocks: escaping, tables, embedded images, the page shell and its CSS
page       the run report page itself (sections, in order)
compare_page  `noisyflow compare --html`: several runs side by side
build      everything `evaluate` writes for the report, from the run's files and networks
"""
