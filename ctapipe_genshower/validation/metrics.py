"""Two-sample metrics: generated vs reference (numpy, scipy, sklearn; no plotting).

* :func:`wasserstein_1`, :func:`ks_statistic`: scipy's one-dimensional distances.
* :func:`separation_power`: the CaloChallenge chi-square separation power
  ``S = 1/2 sum_i (h_i - g_i)**2 / (h_i + g_i)`` of two normalised histograms (0: identical,
  1: disjoint).
* :func:`wasserstein_floor`: the W1 a second simulation run would give: W1 between two
  disjoint random halves of the reference, scaled by ``sqrt(1/n_gen + 1/n_ref) /
  sqrt(1/n_a + 1/n_b)`` from the halves' sizes to the compared sizes (the expected W1
  between two finite samples of one distribution falls like the square root of the
  summed inverse sizes).
* :func:`classifier_two_sample_test`: gradient-boosted trees trained to tell the samples
  apart; cross-validated ROC AUC (0.5 = indistinguishable) with its statistical error
  (:func:`auc_standard_error`, Hanley & McNeil 1982) and the spread over folds.
* :func:`conditional_classifier_two_sample_test`: the same with the shower conditions
  (true energy, impact distance, ...) as extra inputs: a conditional generator is judged on
  the image given its conditions, not only on the marginal distributions.
"""

import numpy as np
from scipy import stats

__all__ = [
    "CLASSIFIER_FOLDS",
    "CLASSIFIER_MAX_PER_CLASS",
    "FLOOR_SPLITS",
    "auc_standard_error",
    "classifier_two_sample_test",
    "common_bins",
    "compare_parameter",
    "conditional_classifier_two_sample_test",
    "efficiency",
    "ks_statistic",
    "separation_power",
    "wasserstein_1",
    "wasserstein_floor",
]

#: Random halvings of the reference averaged in a parameter's W1 floor. With 5 the floor of
#: a tail-dominated parameter moved by 10-17 % (std/mean) between seeds (4,302 toy events),
#: enough to move W1/floor across 2; with 200 by 1-3 %, at ~0.1 s per parameter (~7 s for
#: the ~2e5 grouped pixel values of such a run).
FLOOR_SPLITS = 200
#: Cross-validation folds of the classifier two-sample test.
CLASSIFIER_FOLDS = 5
#: At most this many events per class in each classifier test (bounds the run time).
CLASSIFIER_MAX_PER_CLASS = 20_000


def _finite(x):
    x = np.asarray(x, dtype=np.float64)
    return x[np.isfinite(x)]


def wasserstein_1(a, b):
    """Wasserstein-1 (earth mover's) distance of two 1D samples (non-finite values dropped)."""
    return float(stats.wasserstein_distance(_finite(a), _finite(b)))


def ks_statistic(a, b):
    """Kolmogorov-Smirnov statistic and p-value of two 1D samples."""
    result = stats.ks_2samp(_finite(a), _finite(b))
    return float(result.statistic), float(result.pvalue)


def common_bins(reference, generated, n_bins=40, log=False, quantile=0.005):
    """Bin edges covering the central ``1 - 2*quantile`` of both samples.

    Integer-valued samples with few distinct values get one bin per integer.
    """
    both = np.concatenate([_finite(reference), _finite(generated)])
    if log:
        both = np.log10(both[both > 0])
    if len(both) == 0:
        return np.linspace(0, 1, n_bins + 1)
    if np.all(both == np.round(both)) and not log and np.ptp(both) <= 2 * n_bins:
        lo, hi = np.min(both), np.max(both)
        return np.arange(lo - 0.5, hi + 1.5)
    lo, hi = np.quantile(both, [quantile, 1 - quantile])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, n_bins + 1)
    return 10**edges if log else edges


def _histogram(x, bins):
    """Counts with under- and overflow folded into the outer bins."""
    x = _finite(x)
    return np.histogram(np.clip(x, bins[0], bins[-1]), bins=bins)[0].astype(np.float64)


def separation_power(a, b, bins):
    """CaloChallenge separation power of two samples histogrammed in ``bins``."""
    h, g = _histogram(a, bins), _histogram(b, bins)
    if h.sum() == 0 or g.sum() == 0:
        return float("nan")
    h, g = h / h.sum(), g / g.sum()
    denom = h + g
    nonzero = denom > 0
    return float(0.5 * np.sum((h - g)[nonzero] ** 2 / denom[nonzero]))


def wasserstein_floor(reference, n_generated, rng, n_splits=FLOOR_SPLITS, groups=None):
    """W1 between disjoint random halves of the reference, scaled to the compared sizes.

    Parameters
    ----------
    reference : array-like
        Reference sample.
    n_generated : int
        Size of the generated sample it will be compared with (number of groups if
        ``groups`` is given).
    rng : numpy.random.Generator
    n_splits : int
        Independent random splits averaged.
    groups : array-like of int, optional
        Group label of every reference value (e.g. the image of each pixel value). Values
        of one group are correlated, so the halves are drawn as whole groups and the
        sizes in the scaling are numbers of groups.

    Returns
    -------
    float
        Expected W1 between ``n_generated`` and ``len(reference)`` events of the reference
        distribution; NaN for fewer than 4 reference values (groups).
    """
    ref = np.asarray(reference, dtype=np.float64)
    finite = np.isfinite(ref)
    ref = ref[finite]
    if groups is None:
        labels = np.arange(len(ref))
    else:
        labels = np.unique(np.asarray(groups)[finite], return_inverse=True)[1]
    n = int(labels.max()) + 1 if len(labels) else 0
    if n < 4 or n_generated < 1:
        return float("nan")
    n_a = n // 2
    n_b = n - n_a
    values = []
    for _ in range(n_splits):
        in_a = (rng.permutation(n) < n_a)[labels]
        values.append(stats.wasserstein_distance(ref[in_a], ref[~in_a]))
    scale = np.sqrt(1 / n_generated + 1 / n) / np.sqrt(1 / n_a + 1 / n_b)
    return float(np.mean(values) * scale)


def compare_parameter(
    generated,
    reference,
    bins,
    rng,
    n_splits=FLOOR_SPLITS,
    reference_groups=None,
    n_generated_groups=None,
):
    """All 1D metrics of one parameter as a JSON-able dict.

    ``reference_groups`` and ``n_generated_groups`` are for correlated values (pixel values
    of one image), see :func:`wasserstein_floor`.
    """
    gen, ref = _finite(generated), _finite(reference)
    if len(gen) == 0 or len(ref) == 0:
        return {"n_generated": len(gen), "n_reference": len(ref), "w1": None}
    w1 = wasserstein_1(gen, ref)
    n_gen = len(gen) if n_generated_groups is None else n_generated_groups
    floor = wasserstein_floor(reference, n_gen, rng, n_splits=n_splits, groups=reference_groups)
    ks, p = ks_statistic(gen, ref)
    return {
        "n_generated": len(gen),
        "n_reference": len(ref),
        "w1": w1,
        "w1_floor": floor,
        "w1_floor_splits": n_splits,
        "w1_ratio": w1 / floor if floor > 0 else None,
        "ks": ks,
        "ks_pvalue": p,
        "separation_power": separation_power(gen, ref, bins),
        "mean_generated": float(np.mean(gen)),
        "mean_reference": float(np.mean(ref)),
    }


def auc_standard_error(auc, n_positive, n_negative):
    """Standard error of a ROC AUC from its value and the class sizes (Hanley & McNeil 1982).

    ``sqrt((A (1 - A) + (n1 - 1)(Q1 - A**2) + (n2 - 1)(Q2 - A**2)) / (n1 n2))`` with
    ``Q1 = A / (2 - A)`` and ``Q2 = 2 A**2 / (1 + A)``; for indistinguishable samples
    (``A = 0.5``) it is the exact Mann-Whitney value ``sqrt((n1 + n2 + 1) / (12 n1 n2))``,
    about ``0.41 / sqrt(n)`` for ``n`` events per class.

    Returns
    -------
    float or None
        None when ``auc`` is None or a class is empty.
    """
    if auc is None or n_positive < 1 or n_negative < 1:
        return None
    a = float(auc)
    q1 = a / (2 - a)
    q2 = 2 * a**2 / (1 + a)
    variance = (a * (1 - a) + (n_positive - 1) * (q1 - a**2) + (n_negative - 1) * (q2 - a**2)) / (
        n_positive * n_negative
    )
    return float(np.sqrt(max(variance, 0.0)))


def classifier_two_sample_test(
    generated,
    reference,
    seed=0,
    n_folds=CLASSIFIER_FOLDS,
    max_per_class=CLASSIFIER_MAX_PER_CLASS,
    min_per_class=20,
    n_threads=None,
):
    """Cross-validated ROC AUC of a classifier separating generated from reference.

    Classes are balanced by subsampling the larger one (seeded). Trees handle NaN
    features (e.g. undefined parameters of small images) natively; boosting stops early
    on an internal 10 % validation split, so a classifier that finds nothing stays weak.

    Parameters
    ----------
    generated, reference : numpy.ndarray
        ``(n, n_features)`` feature matrices with the same columns.
    seed : int
    n_folds : int
        Stratified cross-validation folds; every event is scored once out of fold.
    max_per_class : int
        At most this many events per class (bounds the run time).
    min_per_class : int
        Fewer events in a class -> ``auc`` None.
    n_threads : int or None
        OpenMP threads of the trees (None: all cores; 1 avoids oversubscription on
        shared machines).

    Returns
    -------
    dict
        ``auc`` (out-of-fold, all events), ``auc_error`` (its standard error,
        :func:`auc_standard_error` with ``n_per_class`` events per class), ``auc_fold_std``
        (standard deviation of the per-fold AUCs, each on ``n_per_class / n_folds`` events
        per class), ``n_per_class``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    n = min(len(generated), len(reference), max_per_class)
    if n < max(min_per_class, n_folds):
        return {"auc": None, "auc_error": None, "auc_fold_std": None, "n_per_class": int(n)}
    gen = np.asarray(generated, dtype=np.float64)[rng.choice(len(generated), n, replace=False)]
    ref = np.asarray(reference, dtype=np.float64)[rng.choice(len(reference), n, replace=False)]
    x = np.concatenate([gen, ref])
    x[~np.isfinite(x)] = np.nan
    y = np.concatenate([np.ones(n), np.zeros(n)])
    score = np.empty(len(y))
    fold_auc = []
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with threadpool_limits(n_threads):
        for train, test in folds.split(x, y):
            clf = HistGradientBoostingClassifier(
                max_iter=200, early_stopping=True, n_iter_no_change=10, random_state=seed
            )
            clf.fit(x[train], y[train])
            score[test] = clf.predict_proba(x[test])[:, 1]
            fold_auc.append(roc_auc_score(y[test], score[test]))
    auc = float(roc_auc_score(y, score))
    return {
        "auc": auc,
        "auc_error": auc_standard_error(auc, n, n),
        "auc_fold_std": float(np.std(fold_auc)),
        "n_per_class": int(n),
    }


def conditional_classifier_two_sample_test(
    generated, reference, generated_conditions, reference_conditions, **kwargs
):
    """:func:`classifier_two_sample_test` on features plus the shower conditions.

    Two samples with the same marginal feature and condition distributions but another
    relation between them (e.g. an image size that does not follow the energy) are
    separated here, not by the parameter-only test.

    Parameters
    ----------
    generated, reference : numpy.ndarray
        ``(n, n_features)`` feature matrices.
    generated_conditions, reference_conditions : numpy.ndarray
        ``(n, n_conditions)`` conditions of the same events (e.g. log10 true energy,
        true impact distance).
    **kwargs
        Passed to :func:`classifier_two_sample_test`.
    """
    gen = np.column_stack([np.asarray(generated), np.asarray(generated_conditions)])
    ref = np.column_stack([np.asarray(reference), np.asarray(reference_conditions)])
    return classifier_two_sample_test(gen, ref, **kwargs)


def efficiency(selected_values, thrown_counts, bins, scale=1.0):
    """Selection efficiency per bin: ``selected / thrown`` with binomial errors.

    Parameters
    ----------
    selected_values : array-like
        The binned quantity of every selected image.
    thrown_counts : array-like
        Thrown showers (times telescopes) per bin.
    bins : array-like
        Bin edges matching ``thrown_counts``.
    scale : float
        Fraction of the images that were processed (``max_events`` subsample).

    Returns
    -------
    eff, err : numpy.ndarray
        NaN where nothing was thrown.
    """
    n_sel = np.histogram(_finite(selected_values), bins=bins)[0] / scale
    thrown = np.asarray(thrown_counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = np.where(thrown > 0, n_sel / thrown, np.nan)
        err = np.where(thrown > 0, np.sqrt(np.clip(eff * (1 - eff), 0, None) / thrown), np.nan)
        # a bin without selected events: one-event upper scale
        err = np.where((n_sel == 0) & (thrown > 0), 1 / (thrown * scale), err)
    return eff, err
