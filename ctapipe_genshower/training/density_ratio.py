"""Fitting the refiner: a classifier between simulated and generated feature rows.

:func:`fit_density_ratio` trains :func:`~ctapipe_genshower.model.density_ratio.density_ratio_net`
with the binary cross-entropy, the classes weighted to equal total weight (so that the
network's log-odds are the density ratio whatever the sample sizes), on a seeded split of
both samples; the epoch with the lowest held-out loss is kept (early stopping). A network
trained to separate the samples is over-confident (its held-out log-odds too large: the
refiners of the 4-step student had held-out cross-entropy 0.43 at temperature 1 and 0.425 at
0.8), which makes the estimated ratio too extreme and the rejection too harsh; one scalar
``temperature`` multiplying the log-odds is therefore fitted on the held-out rows
(temperature scaling, Guo et al., arXiv 1706.04599), the proper-score calibration of the
ratio. The held-out rows then give the classifier's AUC (how separable the samples are; the
temperature does not change it) and the refiner's expected acceptance. No ctapipe, no model
file: the rows come from the caller.
"""

import warnings

import numpy as np

from ..model.density_ratio import REFINER_FEATURES, DensityRatio, density_ratio_net
from .marginal_calibration import fit_marginal_calibration

__all__ = [
    "CAP_QUANTILES",
    "balanced_cross_entropy",
    "calibrate_marginals",
    "fit_density_ratio",
    "fit_temperature",
]

#: Quantiles of the ratio over generated images recorded with a refiner (possible caps).
CAP_QUANTILES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)


def balanced_cross_entropy(log_r_sim, log_r_gen):
    """Cross-entropy of the classifier with log-odds ``log r``, the classes weighted equally."""
    return 0.5 * np.mean(np.logaddexp(0.0, -log_r_sim)) + 0.5 * np.mean(
        np.logaddexp(0.0, log_r_gen)
    )


def fit_temperature(logits_sim, logits_gen, bounds=(0.05, 2.0)):
    """The temperature ``T`` minimising the balanced cross-entropy of ``T x logits``.

    Parameters
    ----------
    logits_sim, logits_gen : numpy.ndarray
        The classifier's log-odds of held-out simulated and generated rows.
    bounds : (float, float)
        Search interval (the loss is convex in ``T``).

    Returns
    -------
    float
    """
    from scipy.optimize import minimize_scalar

    a = np.asarray(logits_sim, dtype=np.float64)
    b = np.asarray(logits_gen, dtype=np.float64)
    result = minimize_scalar(
        lambda t: balanced_cross_entropy(t * a, t * b),
        bounds=bounds,
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(result.x)


def _cap_record(log_r_gen, cap_quantile):
    """``log r_max`` at ``cap_quantile`` of the generated rows' ratio, the expected acceptance
    ``mean(min(r, r_max)) / r_max`` and both at every quantile of :data:`CAP_QUANTILES`."""

    def acceptance(log_cap):
        return float(np.exp(np.minimum(log_r_gen - log_cap, 0.0)).mean())

    log_cap = float(np.quantile(log_r_gen, cap_quantile))
    quantiles = {f"{q:g}": float(np.quantile(log_r_gen, q)) for q in CAP_QUANTILES}
    return log_cap, {
        "cap_quantile": float(cap_quantile),
        # caps a generating run may choose instead (fidelity against draws per event)
        "log_ratio_quantiles": quantiles,
        "acceptance_at_quantile": {q: acceptance(c) for q, c in quantiles.items()},
        "acceptance": acceptance(log_cap),
    }


def calibrate_marginals(
    refiner, simulated, generated, cap_quantile=None, parameters=None, **options
):
    """The refiner with a marginal calibration fitted on feature rows it was not fitted on.

    Parameters
    ----------
    refiner : DensityRatio
        A fitted refiner (a calibration it has is replaced).
    simulated, generated : numpy.ndarray
        Raw feature rows of simulated images and of the model's images of the same showers
        (new draws: the classifier's ratio on its own training rows is over-confident).
    cap_quantile : float, optional
        The cap of the calibrated ratio (default: the refiner's).
    parameters : sequence of str, optional
        The image parameters to calibrate (column names of the refiner's features; a
        parameter with two features, e.g. an angle's cosine and sine, gets both). Default:
        all. Factors of correlated parameters trade one marginal for another on new showers
        (``docs/refiner.md``), so a few parameters the classifier leaves wrong may be better.
    **options
        Passed to :func:`~ctapipe_genshower.training.marginal_calibration.fit_marginal_calibration`.

    Returns
    -------
    DensityRatio
        The same classifier, the calibration, the cap and acceptance of the calibrated ratio
        over ``generated`` (``info["marginal_calibration"]`` says how it was fitted;
        ``info["acceptance_uncalibrated"]`` is the classifier's alone on the same rows; the
        classifier's record of its own fit stays, its acceptance figures become the
        calibrated ratio's).
    """
    if cap_quantile is None:
        cap_quantile = refiner.cap_quantile if np.isfinite(refiner.cap_quantile) else 0.99
    # the classifier alone (any calibration the refiner has is replaced)
    log_r_gen = refiner.temperature * refiner.logits_of_features(generated)
    names = [name for name, _ in refiner.features]
    if parameters is None:
        columns = range(len(names))  # the image parameters, not the conditions
    else:
        unknown = sorted(set(parameters) - set(names))
        if unknown or not parameters:
            raise ValueError(
                f"cannot calibrate {unknown or 'no parameters'}: the refiner's parameters are"
                f" {', '.join(dict.fromkeys(names))}"
            )
        chosen = set(parameters)
        columns = [k for k, name in enumerate(names) if name in chosen]
    calibration = fit_marginal_calibration(
        simulated,
        generated,
        log_r_gen,
        columns,
        cap_quantile=cap_quantile,
        **options,
    )
    log_cap, record = _cap_record(log_r_gen + calibration.log_factor(generated), cap_quantile)
    info = {
        **refiner.info,
        # the classifier alone on the same rows, for comparison
        "acceptance_uncalibrated": _cap_record(log_r_gen, cap_quantile)[1]["acceptance"],
        **record,
        "marginal_calibration": calibration.info,
    }
    return DensityRatio(
        refiner.net,
        refiner.mean,
        refiner.scale,
        log_cap,
        refiner.features,
        info,
        refiner.angles,
        refiner.temperature,
        calibration,
    )


def fit_density_ratio(
    simulated,
    generated,
    *,
    features=REFINER_FEATURES,
    width=128,
    depth=3,
    epochs=60,
    batch_size=512,
    lr=2e-3,
    weight_decay=1e-4,
    validation_fraction=0.25,
    cap_quantile=0.99,
    calibrate=True,
    marginal_calibration=False,
    marginal_parameters=None,
    members=1,
    seed=0,
    progress=None,
):
    """Fit the refiner on raw feature rows of both samples.

    Parameters
    ----------
    simulated, generated : numpy.ndarray, shape (N, len(features) + 5)
        :func:`~ctapipe_genshower.model.density_ratio.refiner_features` of the simulation's
        and the model's selected images (same showers in the same proportions).
    features : sequence of (str, str)
        The parameter columns the rows hold (stored with the refiner).
    width, depth : int
        The MLP.
    epochs, batch_size, lr, weight_decay : training settings (AdamW, cosine decay).
    validation_fraction : float
        Held out of each sample for early stopping and the reported AUC/acceptance.
    cap_quantile : float
        ``r_max`` is this quantile of the ratio over the held-out generated rows: the
        refiner corrects the model wherever it is under-represented by at most ``r_max``.
    calibrate : bool
        Fit the temperature of the log-odds on the held-out rows (else 1).
    marginal_calibration : bool
        Fit the marginal calibration (:func:`calibrate_marginals`) on the held-out rows too;
        the cap and acceptance are then the calibrated ratio's.
    marginal_parameters : sequence of str, optional
        The parameters that calibration corrects (default: all; :func:`calibrate_marginals`);
        only with ``marginal_calibration``.
    members : int
        Classifiers fitted on the same split, each with its own initial weights and batch
        order, whose log-odds are averaged (an ensemble: a steadier ratio where the data are
        few); the temperature, cap and calibration are the ensemble's. 1: one classifier.
    seed : int
        Split, initial weights and batch order (member 0's; the others' are derived from it).
    progress : callable, optional
        ``progress(epoch, train_loss, validation_loss)`` after every epoch, epochs counted
        on through the members.

    Returns
    -------
    DensityRatio
        With ``info``: sample sizes, best epoch, held-out loss, held-out AUC, the cap's
        quantile and the expected acceptance ``mean(min(r, r_max)) / r_max`` of generated
        images, and the ratio's quantiles with their acceptance (caps a run may choose);
        for an ensemble, ``members``: each member's best epoch and held-out loss (``best_epoch``
        is member 0's, ``validation_loss`` the ensemble's).
    """
    import torch
    from sklearn.metrics import roc_auc_score

    from ..model.networks import MeanOfNets

    simulated = np.asarray(simulated, dtype=np.float64)
    generated = np.asarray(generated, dtype=np.float64)
    n_inputs = len(features) + 5
    for name, x in (("simulated", simulated), ("generated", generated)):
        if x.ndim != 2 or x.shape[1] != n_inputs:
            raise ValueError(f"{name} rows must have {n_inputs} columns, got shape {x.shape}")
        if len(x) < 20:
            raise ValueError(f"need at least 20 {name} rows, got {len(x)}")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if not 0 < cap_quantile <= 1:
        raise ValueError(f"cap_quantile must be in (0, 1], got {cap_quantile}")
    if members < 1:
        raise ValueError(f"members must be at least 1, got {members}")
    if marginal_parameters is not None and not marginal_calibration:
        raise ValueError("marginal_parameters chooses what marginal_calibration corrects")

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)

    def split(x):
        order = rng.permutation(len(x))
        n_val = max(1, round(validation_fraction * len(x)))
        return x[order[n_val:]], x[order[:n_val]]

    sim_train, sim_val = split(simulated)
    gen_train, gen_val = split(generated)
    with warnings.catch_warnings():  # a column that is all NaN gets mean 0 and scale 1
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(sim_train, axis=0)
        scale = np.nanstd(sim_train, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    # standardisation only; the fitted nets replace this one below
    ratio = DensityRatio(density_ratio_net(n_inputs, width, depth), mean, scale, 0.0, features)

    def tensors(sim, gen):
        x = torch.from_numpy(ratio.standardise(np.concatenate([sim, gen])))
        y = torch.cat([torch.ones(len(sim)), torch.zeros(len(gen))])
        # equal total weight per class: the log-odds are log(p_sim / p_gen)
        w = torch.cat(
            [torch.full((len(sim),), 0.5 / len(sim)), torch.full((len(gen),), 0.5 / len(gen))]
        ) * (len(sim) + len(gen))
        return x, y, w

    x_train, y_train, w_train = tensors(sim_train, gen_train)
    x_val, y_val, w_val = tensors(sim_val, gen_val)
    n_batches = max(1, int(np.ceil(len(x_train) / batch_size)))
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")

    def validation_loss(net):
        net.eval()
        with torch.inference_mode():
            loss = (loss_fn(net(x_val)[:, 0], y_val) * w_val).mean().item()
        net.train()
        return loss

    def fit_member(member, member_seed):
        torch.manual_seed(member_seed)
        net = density_ratio_net(n_inputs, width, depth)
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * n_batches)
        generator = torch.Generator().manual_seed(member_seed)
        best = (validation_loss(net), 0, {k: v.clone() for k, v in net.state_dict().items()})
        net.train()
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(x_train), generator=generator)
            total = 0.0
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                loss = (loss_fn(net(x_train[idx])[:, 0], y_train[idx]) * w_train[idx]).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(idx)
            val = validation_loss(net)
            if val < best[0]:
                best = (val, epoch, {k: v.clone() for k, v in net.state_dict().items()})
            if progress is not None:
                progress(member * epochs + epoch, total / len(order), val)
        net.load_state_dict(best[2])
        return net.eval(), {"best_epoch": int(best[1]), "validation_loss": float(best[0])}

    # member 0 is the single classifier of the same seed; the others get their own streams
    member_seeds = [seed] + [
        int(np.random.SeedSequence([seed, k]).generate_state(1)[0]) for k in range(1, members)
    ]
    fitted = [fit_member(k, member_seed) for k, member_seed in enumerate(member_seeds)]
    nets = [member_net for member_net, _ in fitted]
    net = nets[0] if members == 1 else MeanOfNets(nets)
    best_loss = validation_loss(net) if members > 1 else fitted[0][1]["validation_loss"]
    ratio = DensityRatio(net, mean, scale, 0.0, features)  # in eval mode from here

    logits_sim = ratio.logits_of_features(sim_val)
    logits_gen = ratio.logits_of_features(gen_val)
    temperature = fit_temperature(logits_sim, logits_gen) if calibrate else 1.0
    log_r_sim, log_r_gen = temperature * logits_sim, temperature * logits_gen
    log_cap, record = _cap_record(log_r_gen, cap_quantile)
    info = {
        "n_simulated": len(simulated),
        "n_generated": len(generated),
        "n_validation": [len(sim_val), len(gen_val)],
        "best_epoch": fitted[0][1]["best_epoch"],
        "epochs": int(epochs),
        "validation_loss": float(best_loss),
        "validation_loss_untrained": float(np.log(2.0)),
        "temperature": temperature,
        "validation_loss_calibrated": float(balanced_cross_entropy(log_r_sim, log_r_gen)),
        "auc_validation": float(
            roc_auc_score(
                np.r_[np.ones(len(log_r_sim)), np.zeros(len(log_r_gen))],
                np.r_[log_r_sim, log_r_gen],
            )
        ),
        **record,
        "seed": int(seed),
    }
    if members > 1:
        info["members"] = [member_info for _, member_info in fitted]
    refiner = DensityRatio(net, mean, scale, log_cap, features, info, temperature=temperature)
    if marginal_calibration:
        refiner = calibrate_marginals(
            refiner, sim_val, gen_val, cap_quantile, parameters=marginal_parameters
        )
    return refiner
