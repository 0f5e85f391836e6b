r"""The multi-power law of Luo et al. (2025) on simulated loss curves: fit on a few schedules,
predict the others.

    python experiments/loss_laws.py [--quick] [--out DIR]

The law (``rivervalley.laws``; Luo, Wen, Hu, Sun, Liu, Sun, Lyu, Chen, ICLR 2025,
arXiv 2503.12811)::

    L(t) = L0 + A (S1(t) + S_W)^(-alpha) - LD(t),
    LD(t) = B sum_{k<=t} (eta_{k-1} - eta_k) G(eta_k^(-gamma) S_k(t)),
    G(x) = 1 - (C x + 1)^(-beta),

fitted as the authors fit it (Huber loss, ``delta = 1e-3``, of the log residuals, summed over
every point of the training curves; here by trust-region least squares with the JAX Jacobian),
against two baselines: a plain power law in the rate area (``B = 0``) and Tissue et al.'s
momentum law.  Metrics per held-out curve, as the authors' code computes them: ``R^2``,
``PredE`` (mean ``|y - yhat| / y``) and ``WorstE`` (max ``|y - yhat| / y``) over its recorded
points after the warmup.

Curves (all schedules warm up linearly over ``warmup`` of the base horizon ``T`` and end at 0.1
of the peak, as in the authors' runs):

* ``nqm``: the *exact* expected loss of SGD on a noisy quadratic (``theory.sgd_quadratic_moments``
  and ``expected_quadratic_loss``, no Monte Carlo): ``d`` directions with curvatures
  ``lambda_i = i^(-a)`` (``power_law_spectrum``), initial errors with
  ``lambda_i m_i^2 = i^(-b)`` (so the deterministic part decays like ``S1^(-(b-1)/a)``), and
  gradient noise of variance ``sigma_i^2 = s lambda_i`` (proportional to the curvature, as for
  least squares with label noise), whose noise floor ``~ eta s sum_i lambda_i / 4`` is what a
  decay removes.
* ``bigram`` (full run only): the mean loss over seeds of Adam on the lab's bigram
  language-model toy (logit table, half the contexts determined, half uniform over 16 tokens;
  loss in nats, entropy floor ``H = log(16)/2``): one ``sweep`` per horizon, of a dict of its
  schedules.

Schedules: fitted on ``constant`` + ``cosine`` (the paper's fitting pair) and, second fit set,
also on a two-stage schedule (peak, then 0.3 peak from ``T/2``), the training set of the
authors' code (``src/config.py``: cosine, constant, and the two-stage ``wsdcon_9``).  Predicted:
WSD (linear decay over 10%, 20%, 30%; 1-sqrt and cosine decay shapes over 20%), linear decay,
WSD-S (three budgets, 10% decays), cyclic cosine (three cycles), and the longer horizon ``3T``
(constant, cosine, WSD 20%) -- the authors predict 24k -> 72k steps.

Figure ``loss_laws.png``: per landscape, the simulated curves with the fitted / predicted
multi-power law on log axes, the relative residuals of each law, and ``PredE`` / ``WorstE`` per
schedule and law; ``loss_laws_summary.json``: the table (``R^2``, ``PredE``, ``WorstE`` per
held-out schedule, landscape, fit set and law), the fitted parameters, and per-law averages.

What the full run finds (T = 2000; fits and errors from step 200 on, as the authors' curves
start after their warmup; held-out means over the 11 predicted schedules):

* NQM, fitted on constant + cosine: the multi-power law degenerates to an instant drop
  (``C ~ 2e5, gamma ~ 54``: the slow cosine does not tell how fast a drop is realised) and is
  then no better than the momentum law: mean PredE 1.10%, WorstE up to 23% (WSD-S), R^2 0.998.
* NQM, fitted on + two-stage: ``gamma -> 0`` (the quadratic relaxes in rate area, not
  ``eta^(-gamma)``-scaled area), ``beta = 0.39``; held-out mean PredE 0.52% (WSD family
  0.18-0.44%, WSD-S 0.15%), mean WorstE 3.2%, worst 6.5% (WSD 3T), R^2 >= 0.9988; the momentum
  law: 1.0% / 9.7% / 24%; the power law in ``S1``: 20% / 56% / 103%.
* Bigram toy (Adam, loss including the 1.386-nat entropy floor): all three laws fit well;
  the multi-power law's held-out PredE 0.13% (constant + cosine; WorstE <= 0.91%) and 0.15%
  (+ two-stage; WorstE <= 1.0%), the momentum law 0.17% / 0.12%, the power law 0.37% / 0.50%.
  Its fitted ``G`` tends to the exponential limit (``C -> 0, beta C`` finite) or to tiny
  ``beta``: the toy's decay relaxes quickly, and the parameters are not identifiable.

The authors' 0.1-0.2% mean relative error on language models is matched on the bigram toy,
whose loss includes an entropy floor as theirs does; on the NQM, whose minimum is 0, the same
metric is ~3-5x larger, and the worst errors sit right after the rate drops.
Runtime: ~3.5 min on 2 shared cores (``--quick``: NQM only, T = 500, no long horizon, one fit
set: ~15 s).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.ticker import NullFormatter

from rivervalley import laws, lm, optimizers, schedules, theory
from rivervalley.experiment import main_for, write_summary
from rivervalley.landscapes.quadratic import power_law_spectrum
from rivervalley.plotting import SCHEDULE_COLORS, SCHEDULE_NAMES, STYLE, save_figure
from rivervalley.runner import sweep

LAW_ORDER = ("power", "momentum", "multi_power")
LAW_NAMES = {"power": "power law", "momentum": "momentum law", "multi_power": "multi-power law"}
LAW_STYLES = {"power": ":", "momentum": "-.", "multi_power": "--"}
METRICS = ("r2", "pred_e", "worst_e", "mae", "rmse")
PARAMS = ("L0", "A", "alpha", "B", "C", "beta", "gamma", "lambda")
LANDSCAPE_NAMES = {"nqm": "noisy quadratic (exact)", "bigram": "bigram LM toy (Adam)"}


@dataclasses.dataclass(frozen=True)
class Config:
    steps: int = 2000  # base horizon T (updates, warmup included)
    long_factor: int = 3  # the long-horizon schedules run long_factor * T (0: none)
    warmup: float = 0.01  # fraction of T
    fit_from: float = 0.1  # fits and metrics use the points after this fraction of T
    final: float = 0.1  # every decay ends at final * peak
    record_every: int = 20
    two_stage_level: float = 0.3
    # noisy quadratic
    nqm_dim: int = 1000
    nqm_curvature_exponent: float = 1.5  # a: lambda_i = i^-a
    nqm_error_exponent: float = 1.75  # b: lambda_i m_i^2 = i^-b
    nqm_noise: float = 0.05  # s: sigma_i^2 = s lambda_i
    nqm_peak: float = 0.5
    # bigram toy (skipped when bigram_seeds == 0)
    bigram_seeds: int = 16
    bigram_vocab: int = 128
    bigram_support: int = 16
    bigram_batch: int = 32
    bigram_peak: float = 0.03
    fit_sets: tuple[str, ...] = ("paper", "repository")


FIT_SETS = {
    "paper": ("constant", "cosine"),
    "repository": ("constant", "cosine", "two_stage"),
}
FIT_SET_NAMES = {"paper": "fit: constant + cosine", "repository": "fit: + two-stage"}


def config(quick: bool) -> Config:
    if quick:
        small = {"steps": 500, "long_factor": 0, "record_every": 10, "nqm_dim": 300}
        return Config(**small, bigram_seeds=0, fit_sets=("repository",))
    return Config()


def schedule_set(cfg: Config, peak: float) -> dict[str, tuple[str, schedules.Schedule, int]]:
    """name -> (kind for colours, schedule, horizon in updates)."""
    t, w, fin = cfg.steps, round(cfg.warmup * cfg.steps), cfg.final * peak
    long = cfg.long_factor * t
    kw = {"warmup_steps": w, "final": fin}
    two = np.where(np.arange(t) < t // 2, peak, cfg.two_stage_level * peak)
    two[:w] = np.asarray(schedules.constant(peak, warmup_steps=w)(jnp.arange(w)))
    thirds = [t // 3, 2 * t // 3, t]
    out = {
        "constant": ("constant", schedules.constant(peak, **kw), t),
        "cosine": ("cosine", schedules.cosine(peak, t, **kw), t),
        "two_stage": ("two_stage", schedules.tabulated(two), t),
        "wsd_10": ("wsd", schedules.wsd(peak, t, 0.1, **kw), t),
        "wsd_20": ("wsd", schedules.wsd(peak, t, 0.2, **kw), t),
        "wsd_30": ("wsd", schedules.wsd(peak, t, 0.3, **kw), t),
        "wsd_20_sqrt": ("wsd", schedules.wsd(peak, t, 0.2, "sqrt", **kw), t),
        "wsd_20_cosine": ("wsd", schedules.wsd(peak, t, 0.2, "cosine", **kw), t),
        "linear": ("linear", schedules.linear(peak, t, **kw), t),
        "wsd_s": ("wsd_s", schedules.wsd_s(peak, thirds, 0.1, **kw), t),
        "cyclic_cosine": ("cyclic_cosine", schedules.cyclic_cosine(peak, thirds, **kw), t),
    }
    if cfg.long_factor > 1:
        out["constant_long"] = ("constant", schedules.constant(peak, **kw), long)
        out["cosine_long"] = ("cosine", schedules.cosine(peak, long, **kw), long)
        out["wsd_20_long"] = ("wsd", schedules.wsd(peak, long, 0.2, **kw), long)
    return out


def rate_table(cfg: Config, peak: float) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names, rates ``(schedule, long horizon)`` (each past its horizon: its last rate) and
    horizons."""
    sset = schedule_set(cfg, peak)
    n = max(cfg.long_factor, 1) * cfg.steps
    rows, horizons = [], []
    for _, sch, horizon in sset.values():
        r = np.array(schedules.rates(sch, n), np.float64)
        r[horizon:] = r[horizon - 1]
        rows.append(r)
        horizons.append(horizon)
    return list(sset), np.stack(rows), np.asarray(horizons)


def nqm_curves(cfg: Config, rates: np.ndarray) -> np.ndarray:
    """Exact expected NQM loss after ``0..n`` updates for each rate row: ``(schedule, n + 1)``."""
    lam = power_law_spectrum(cfg.nqm_dim, 1.0, cfg.nqm_curvature_exponent)
    i = np.arange(1, cfg.nqm_dim + 1)
    m0 = np.sqrt(i ** (-cfg.nqm_error_exponent) / lam)
    sigma = np.sqrt(cfg.nqm_noise * lam)

    def one(r):
        return theory.expected_quadratic_loss(
            lam, theory.sgd_quadratic_moments(lam, sigma, m0, 0.0, r)
        )

    with jax.enable_x64(True):
        return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(rates)))


def bigram_curves(cfg: Config, progress: bool | None) -> tuple[np.ndarray, float]:
    """Mean loss over seeds (Adam, bigram table) for each schedule of ``schedule_set`` at every
    ``record_every`` updates: ``(schedule, n / record_every + 1)`` (NaN past its horizon); and the
    entropy floor."""
    key = jax.random.key(0)
    mix = [(lm.deterministic(), 0.5), (lm.uniform(cfg.bigram_support), 0.5)]
    corpus = lm.bigram_corpus(key, cfg.bigram_vocab, mix)
    model = lm.bigram_table(corpus, batch_size=cfg.bigram_batch)
    sset = schedule_set(cfg, cfg.bigram_peak)
    names = list(sset)
    n_rec = max(cfg.long_factor, 1) * cfg.steps // cfg.record_every + 1
    loss = np.full((len(names), n_rec), np.nan)
    # one sweep per horizon (the base one and the long one): a dict of its schedules each
    for horizon in sorted({h for _, _, h in sset.values()}):
        group = {name: sch for name, (_, sch, h) in sset.items() if h == horizon}
        ds = sweep(
            model,
            optimizers.adam(),
            group,
            seeds=cfg.bigram_seeds,
            steps=horizon,
            record_every=cfg.record_every,
            progress=progress,
        )
        mean = ds.loss.astype(np.float64).mean("seed").transpose("schedule", "step")
        rows = [names.index(name) for name in mean.schedule.values]
        loss[rows, : mean.sizes["step"]] = mean.values
    return loss, float(corpus.entropy_floor())


def make_curves(cfg, names, rates, horizons, loss_at) -> dict[str, laws.Curve]:
    """The law's view of each run: post-warmup rates, the recorded steps after ``fit_from`` of
    the base horizon (as post-warmup counts ``t``) and their losses; ``loss_at(j, n)`` is the
    loss of run ``j`` after ``n`` updates."""
    w = round(cfg.warmup * cfg.steps)
    first = max(w, round(cfg.fit_from * cfg.steps))
    out = {}
    for j, (name, horizon) in enumerate(zip(names, horizons, strict=True)):
        n = np.arange(cfg.record_every, horizon + 1, cfg.record_every)
        n = n[n > first]
        post = rates[j, w:horizon]
        out[name] = laws.Curve(
            rates=post,
            steps=n - w,
            loss=loss_at(j, n),
            warmup_sum=float(rates[j, :w].sum()),
            eta0=float(rates[j, w]),  # the peak: no drop at the first post-warmup step
            name=name,
        )
    return out


def compute(cfg: Config, progress: bool | None) -> xr.Dataset:
    landscapes = {"nqm": cfg.nqm_peak}
    if cfg.bigram_seeds > 0:
        landscapes["bigram"] = cfg.bigram_peak
    names = list(schedule_set(cfg, 1.0))
    kinds = [k for k, _, _ in schedule_set(cfg, 1.0).values()]
    w = round(cfg.warmup * cfg.steps)
    n_max = max(cfg.long_factor, 1) * cfg.steps
    grid = np.arange(cfg.record_every, n_max + 1, cfg.record_every)
    grid = grid[grid > max(w, round(cfg.fit_from * cfg.steps))]
    shape_l = (len(landscapes), len(names), grid.size)
    loss = np.full(shape_l, np.nan)
    pred = np.full((len(cfg.fit_sets), len(landscapes), len(LAW_ORDER), *shape_l[1:]), np.nan)
    metric = np.full(
        (len(cfg.fit_sets), len(landscapes), len(LAW_ORDER), len(names), len(METRICS)), np.nan
    )
    params = np.full((len(cfg.fit_sets), len(landscapes), len(LAW_ORDER), len(PARAMS)), np.nan)
    objective = np.full((len(cfg.fit_sets), len(landscapes), len(LAW_ORDER)), np.nan)
    fit_seconds = np.full_like(objective, np.nan)
    all_rates = np.full((len(landscapes), len(names), n_max), np.nan)
    attrs: dict = {}
    for li, (land, peak) in enumerate(landscapes.items()):
        names_l, rates, horizons = rate_table(cfg, peak)
        all_rates[li] = rates
        if land == "nqm":
            table = nqm_curves(cfg, rates)  # after every update
            stride = 1
        else:
            table, attrs["bigram_entropy_floor"] = bigram_curves(cfg, progress)
            stride = cfg.record_every

        def loss_at(j, n, table=table, stride=stride):
            return table[j, n // stride]

        curves = make_curves(cfg, names_l, rates, horizons, loss_at)
        for j, name in enumerate(names):
            c = curves[name]
            loss[li, j, : c.steps.size] = c.loss
        for fi, fit_set in enumerate(cfg.fit_sets):
            train = [curves[n] for n in FIT_SETS[fit_set]]
            instant = laws.fit(laws.INSTANT, train)  # the shared first stage
            for ai, law_name in enumerate(LAW_ORDER):
                law = laws.LAWS[law_name]
                start = time.perf_counter()
                fitted = laws.fit(law, train, instant=instant)
                fit_seconds[fi, li, ai] = time.perf_counter() - start
                objective[fi, li, ai] = fitted.objective
                for name, value in fitted.params.items():
                    params[fi, li, ai, PARAMS.index(name)] = value
                for j, name in enumerate(names):
                    c = curves[name]
                    yhat = laws.predict(law, fitted.vector, c)
                    pred[fi, li, ai, j, : c.steps.size] = yhat
                    m = laws.metrics(c.loss, yhat)
                    metric[fi, li, ai, j] = [m[k] for k in METRICS]
    train_mask = np.array([[n in FIT_SETS[f] for n in names] for f in cfg.fit_sets])
    return xr.Dataset(
        {
            "loss": (("landscape", "schedule", "step"), loss),
            "pred": (("fit_set", "landscape", "law", "schedule", "step"), pred),
            "metrics": (("fit_set", "landscape", "law", "schedule", "metric"), metric),
            "params": (("fit_set", "landscape", "law", "param"), params),
            "objective": (("fit_set", "landscape", "law"), objective),
            "fit_seconds": (("fit_set", "landscape", "law"), fit_seconds),
            "rates": (("landscape", "schedule", "update"), all_rates),
            "train": (("fit_set", "schedule"), train_mask),
        },
        coords={
            "landscape": list(landscapes),
            "schedule": names,
            "kind": ("schedule", kinds),
            "step": grid - w,  # post-warmup updates t
            "update": np.arange(n_max),
            "fit_set": list(cfg.fit_sets),
            "law": list(LAW_ORDER),
            "metric": list(METRICS),
            "param": list(PARAMS),
        },
        attrs={**attrs, "warmup_steps": w},
    )


def summarize(ds: xr.Dataset) -> dict:
    """Per fit set and landscape: each law's parameters, objective, and per-schedule metrics
    (held-out and training), plus the means over the held-out schedules."""
    out: dict = {
        "metric_definitions": {
            "r2": "1 - sum (y - yhat)^2 / sum (y - mean y)^2 per curve",
            "pred_e": "mean |y - yhat| / y over the curve's recorded points from fit_from on",
            "worst_e": "max |y - yhat| / y over the same points",
        }
    }
    if "bigram_entropy_floor" in ds.attrs:
        out["bigram_entropy_floor_nats"] = float(ds.attrs["bigram_entropy_floor"])
    for fit_set in ds.fit_set.values:
        train = ds.train.sel(fit_set=fit_set).values
        entry: dict = {"fitted_on": [str(s) for s in ds.schedule.values[train]]}
        for land in ds.landscape.values:
            per_land: dict = {}
            for law in ds.law.values:
                sel = ds.sel(fit_set=fit_set, landscape=land, law=law)
                par = {
                    str(p): float(v)
                    for p, v in zip(ds.param.values, sel.params.values, strict=True)
                    if np.isfinite(v)
                }
                table = {
                    str(s): {
                        str(m): float(sel.metrics.sel(schedule=s, metric=m))
                        for m in ("r2", "pred_e", "worst_e")
                    }
                    for s in ds.schedule.values
                }
                held = [str(s) for s, t in zip(ds.schedule.values, train, strict=True) if not t]
                per_land[str(law)] = {
                    "params": par,
                    "objective": float(sel.objective),
                    "fit_seconds": float(sel.fit_seconds),
                    "held_out_mean": {
                        m: float(np.mean([table[s][m] for s in held]))
                        for m in ("r2", "pred_e", "worst_e")
                    },
                    "held_out_max_worst_e": float(max(table[s]["worst_e"] for s in held)),
                    "per_schedule": table,
                }
            entry[str(land)] = per_land
        out[str(fit_set)] = entry
    return out


def schedule_label(name: str) -> str:
    kind = name.split("_")[0] if not name.startswith(("wsd_s", "cyclic")) else name
    if name == "two_stage":
        return "two-stage"
    base = SCHEDULE_NAMES.get(kind, name)
    rest = name[len(kind) :].strip("_").replace("_", " ")
    return f"{base} {rest}".strip()


def schedule_color(ds: xr.Dataset, name: str, index: int) -> Any:
    kind = str(ds.kind.sel(schedule=name).values)
    if kind == "wsd":  # several WSD variants: shades of the WSD colour
        return plt.get_cmap("Greens")(0.45 + 0.1 * (index % 6))
    return SCHEDULE_COLORS.get(kind, "black")


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    summary = summarize(ds)
    lands = [str(x) for x in ds.landscape.values]
    fit_set = "repository" if "repository" in ds.fit_set.values else str(ds.fit_set.values[0])
    names = [str(s) for s in ds.schedule.values]
    colors = {n: schedule_color(ds, n, i) for i, n in enumerate(names)}
    train = ds.train.sel(fit_set=fit_set).values
    w = int(ds.attrs["warmup_steps"])
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(lands), 4, figsize=(22, 5.2 * len(lands)), squeeze=False)
        for li, land in enumerate(lands):
            sel = ds.sel(landscape=land, fit_set=fit_set)
            # (a) curves and the multi-power law
            ax = axes[li, 0]
            for j, name in enumerate(names):
                y = sel.loss.sel(schedule=name)
                ok = np.isfinite(y.values)
                x = ds.step.values[ok] + w
                ax.plot(
                    x,
                    y.values[ok],
                    color=colors[name],
                    lw=1.6,
                    alpha=0.8,
                    label=schedule_label(name),
                )
                yh = sel.pred.sel(law="multi_power", schedule=name).values[ok]
                ax.plot(x, yh, "k" + ("-" if train[j] else "--"), lw=0.7)
            ax.plot([], [], "k-", lw=0.7, label="multi-power law, fitted")
            ax.plot([], [], "k--", lw=0.7, label="multi-power law, predicted")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("step (updates, warmup included)")
            ax.set_ylabel("loss (nats)" if land == "bigram" else "expected loss $E\\,L(w_t)$")
            ax.set_title(
                f"({'ab'[li]}1) {LANDSCAPE_NAMES.get(land, land)}: {FIT_SET_NAMES[fit_set]}"
            )
            ax.legend(fontsize=6, ncol=2, loc="lower left")
            # (b), (c) relative residuals of the multi-power law and of the momentum law
            for k, law in enumerate(("multi_power", "momentum")):
                ax = axes[li, 1 + k]
                for j, name in enumerate(names):
                    y = sel.loss.sel(schedule=name).values
                    ok = np.isfinite(y)
                    rel = (sel.pred.sel(law=law, schedule=name).values[ok] - y[ok]) / y[ok]
                    ax.plot(
                        ds.step.values[ok] + w,
                        100 * rel,
                        color=colors[name],
                        lw=1.0,
                        ls="-" if train[j] else "--",
                    )
                ax.axhline(0.0, color="k", lw=0.6)
                ax.set_xscale("log")
                ax.set_xlabel("step (updates, warmup included)")
                ax.set_ylabel("(predicted $-$ simulated) / simulated (%)")
                h = summary[fit_set][land][law]["held_out_mean"]
                ax.set_title(
                    f"({'ab'[li]}{2 + k}) {LAW_NAMES[law]} residuals "
                    "(solid: fitted, dashed: predicted)\nheld-out mean PredE "
                    f"{100 * h['pred_e']:.2f}%, mean WorstE {100 * h['worst_e']:.2f}%"
                )
            # (d) PredE / WorstE per held-out schedule, per law
            ax = axes[li, 3]
            held = [n for n, t in zip(names, train, strict=True) if not t]
            xs = np.arange(len(held))
            width = 0.27
            for k, law in enumerate(LAW_ORDER):
                m = sel.metrics.sel(law=law, schedule=held)
                color = f"C{k}"
                ax.bar(
                    xs + (k - 1) * width,
                    100 * m.sel(metric="worst_e").values,
                    width,
                    color=color,
                    alpha=0.35,
                )
                ax.bar(
                    xs + (k - 1) * width,
                    100 * m.sel(metric="pred_e").values,
                    width,
                    color=color,
                    label=LAW_NAMES[law],
                )
            ax.set_yscale("log")
            ax.set_xticks(
                xs, [schedule_label(n) for n in held], rotation=60, ha="right", fontsize=7
            )
            ax.set_ylabel("relative error (%): PredE (solid), WorstE (light)")
            ax.set_title(f"({'ab'[li]}4) held-out schedules, {FIT_SET_NAMES[fit_set]}")
            ax.legend(fontsize=7)
        for ax in axes[:, :3].ravel():  # log axes: label the decades only
            ax.xaxis.set_minor_formatter(NullFormatter())
        for ax in axes.ravel():
            ax.title.set_fontsize(9)
        fig.suptitle(
            "Multi-power law (Luo et al. 2025) fitted on some schedules, predicting the others; "
            f"base horizon T = {cfg.steps}"
            + (f", long horizon {cfg.long_factor}T" if cfg.long_factor > 1 else "")
            + f", warmup {w} steps; fits and errors from step {round(cfg.fit_from * cfg.steps)}",
            fontsize=10,
        )
        fig.tight_layout()
    paths = save_figure(fig, out / "loss_laws.png")
    write_summary(out / "loss_laws_summary.json", summary, echo=False)
    print_table(summary)
    return paths


def print_table(summary: dict) -> None:
    for fit_set, entry in summary.items():
        if not isinstance(entry, dict) or "fitted_on" not in entry:
            continue
        print(f"== {FIT_SET_NAMES[fit_set]} ({', '.join(entry['fitted_on'])})")
        for land, per in entry.items():
            if land == "fitted_on":
                continue
            print(
                f"  {land}: "
                + "  ".join(
                    f"{law} params "
                    + json.dumps({k: round(v, 5) for k, v in per[law]["params"].items()})
                    for law in ("multi_power",)
                )
            )
            print(f"    {'schedule':16s}" + "".join(f"{LAW_NAMES[law]:>34s}" for law in LAW_ORDER))
            for s in per["multi_power"]["per_schedule"]:
                row = ""
                for law in LAW_ORDER:
                    m = per[law]["per_schedule"][s]
                    row += (
                        f"   R2 {m['r2']:8.5f} {100 * m['pred_e']:7.3f}% {100 * m['worst_e']:7.3f}%"
                    )
                tag = "*" if s in entry["fitted_on"] else " "
                print(f"    {s:15s}{tag}{row}")


main = main_for(__name__, "loss_laws")


if __name__ == "__main__":
    main()
