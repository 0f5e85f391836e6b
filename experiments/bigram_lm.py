"""The bigram language-model toy: which contexts improve in the stable phase, which in the decay.

    python experiments/bigram_lm.py [--quick] [--out DIR]

A bigram corpus over ``V`` tokens: half the contexts have a determined next token (entropy 0),
half a next token uniform over ``k`` tokens (entropy ``log k``).  The logit-table model
(``lm.bigram_table``, ``V^2`` parameters) is trained by SGD and by Adam, minibatches of ``B``
pairs from the infinite stream, under WSD, cosine and WSD-S (budgets at thirds of the run), many
seeds.  The ablation trains the same way on a corpus whose contexts are all alike: uniform over
``sqrt(k)`` tokens, which has the same entropy floor ``H = log(k)/2``.

Figures: ``bigram_lm_loss`` (total loss, excess loss over the floor, and the relaxation split's
hill loss against step), ``bigram_lm_classes`` (excess loss of each context class),
``bigram_lm_sharpness`` (top Hessian eigenvalue, by Lanczos), ``bigram_lm_ablation`` (excess loss,
main corpus vs ablation).  ``bigram_lm_summary.json`` holds the measured answer: for WSD, each
class's excess loss at the end of warmup, at the start of the decay and at the end, and the
factors by which it shrinks in the stable phase and in the decay, on both corpora.
Runtime: ~2 min on 2 cores (``--quick``, SGD only and V = 32: ~30 s).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import xarray as xr

from rivervalley import lm, optimizers, schedules
from rivervalley.experiment import main_for, write_summary
from rivervalley.plotting import (
    LABELS,
    SCHEDULE_COLORS,
    SCHEDULE_NAMES,
    STYLE,
    band,
    save_figure,
)
from rivervalley.runner import sweep


@dataclasses.dataclass(frozen=True)
class Config:
    vocab_size: int = 128
    random_support: int = 16  # k: main corpus = half deterministic, half uniform(k)
    ablation_support: int = 4  # every context uniform(sqrt(k)): the same entropy floor
    batch_size: int = 32
    steps: int = 4000
    warmup_steps: int = 100
    decay_fraction: float = 0.2
    wsds_budgets: int = 3
    sgd_peak: float = 30.0  # the table's gradients scale like 1/V: SGD needs a rate ~V/4
    adam_peak: float = 0.03
    seeds: int = 8
    record_every: int = 100
    sharpness_iters: int = 20
    corpus_seed: int = 0
    optimizers: tuple[str, ...] = ("sgd", "adam")


OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam"}
SCHEDULES = ("wsd", "cosine", "wsd_s")


def config(quick: bool) -> Config:
    if quick:  # one optimizer: every sweep compiles its own program, which dominates here
        small = {"vocab_size": 32, "steps": 800, "warmup_steps": 40, "record_every": 40}
        return Config(**small, seeds=2, optimizers=("sgd",))
    return Config()


def corpora(cfg: Config) -> dict[str, lm.BigramCorpus]:
    key = jax.random.key(cfg.corpus_seed)
    mix = [(lm.deterministic(), 0.5), (lm.uniform(cfg.random_support), 0.5)]
    return {
        "main": lm.bigram_corpus(key, cfg.vocab_size, mix),
        "ablation": lm.bigram_corpus(key, cfg.vocab_size, [(lm.uniform(cfg.ablation_support), 1)]),
    }


def schedule_set(cfg: Config, peak: float) -> dict[str, schedules.Schedule]:
    span = cfg.steps // cfg.wsds_budgets
    ends = [span * (i + 1) for i in range(cfg.wsds_budgets - 1)] + [cfg.steps]
    warmup = cfg.warmup_steps
    return {
        "wsd": schedules.wsd(peak, cfg.steps, cfg.decay_fraction, warmup_steps=warmup),
        "cosine": schedules.cosine(peak, cfg.steps, warmup_steps=warmup),
        "wsd_s": schedules.wsd_s(peak, ends, cfg.decay_fraction, warmup_steps=warmup),
    }


def compute(cfg: Config, progress: bool | None) -> xr.Dataset:
    """Dims ``(corpus, optimizer, schedule, seed, step[, context_class])``: one sweep per corpus
    and optimizer, its three schedule kinds a named axis (one compiled program)."""
    corpus_set = corpora(cfg)
    per_corpus = []
    sweeps = []
    for corpus_name, corpus in corpus_set.items():
        model = lm.bigram_table(corpus, batch_size=cfg.batch_size)
        per_opt = []
        for opt_name in cfg.optimizers:
            peak = {"sgd": cfg.sgd_peak, "adam": cfg.adam_peak}[opt_name]
            ds = sweep(
                model,
                optimizers.by_name(opt_name),
                schedule_set(cfg, peak),
                seeds=cfg.seeds,
                steps=cfg.steps,
                record_every=cfg.record_every,
                sharpness=cfg.sharpness_iters,
                progress=progress,
            )
            sweeps.append(ds)
            per_opt.append(ds)
        part = xr.concat(per_opt, dim="optimizer", combine_attrs="drop")
        per_corpus.append(part.expand_dims(corpus=[corpus_name]))
    # the ablation has one context class, the main corpus two: an outer join over classes
    out = xr.concat(per_corpus, dim="corpus", join="outer", combine_attrs="drop")
    assert isinstance(out, xr.Dataset)
    configs = [json.loads(ds.attrs["config"]) for ds in sweeps]
    out.attrs = {
        "entropy_floor": float(corpus_set["main"].entropy_floor()),
        "rivervalley_version": sweeps[0].attrs["rivervalley_version"],
        "sweep_configs": json.dumps(configs, sort_keys=True),
        "decomposition": sweeps[0].attrs["decomposition"],
    }
    return out


def classes_of(ds: xr.Dataset) -> list[str]:
    """Context classes present in these runs (the ablation has one, the main corpus two)."""
    others = [d for d in ds.class_excess.dims if d != "context_class"]
    present = ds.class_excess.notnull().any(others).values
    return [str(c) for c, ok in zip(ds.context_class.values, present, strict=True) if ok]


def summarize(ds: xr.Dataset, cfg: Config) -> dict:
    """Per corpus and optimizer, for WSD: each class's mean excess loss at the end of warmup,
    at the start of the decay and at the end, the factors by which it shrinks in the stable phase
    and in the decay; and every schedule's final excess loss."""
    decay_start = cfg.steps - round(cfg.decay_fraction * cfg.steps)
    marks = {"warmup_end": cfg.warmup_steps, "decay_start": decay_start, "end": cfg.steps}
    out: dict = {"steps": marks, "entropy_floor": ds.attrs.get("entropy_floor")}
    for corpus in ("main", "ablation"):
        for opt in cfg.optimizers:
            runs = ds.sel(corpus=corpus, optimizer=opt)
            wsd = runs.sel(schedule="wsd").mean("seed")
            entry: dict = {"classes": {}}
            for cls in [*classes_of(runs), "all"]:
                da = wsd.excess_loss if cls == "all" else wsd.class_excess.sel(context_class=cls)
                at = {k: float(da.sel(step=s)) for k, s in marks.items()}
                start, mid, end = (float(da.sel(step=s)) for s in marks.values())
                at["stable_factor"] = start / mid  # how many times smaller in the stable phase
                at["decay_factor"] = mid / end  # ... and in the decay
                entry["classes"][cls] = at
            entry["final_excess"] = {
                name: float(runs.excess_loss.sel(schedule=name).isel(step=-1).mean())
                for name in SCHEDULES
            }
            out[f"{corpus}/{opt}"] = entry
    return out


def _schedule_bands(ax, runs: xr.Dataset, var: str, **sel) -> None:
    for name in SCHEDULES:
        da = runs[var].sel(schedule=name)
        band(
            ax,
            da.sel(**sel) if sel else da,
            label=SCHEDULE_NAMES[name],
            color=SCHEDULE_COLORS[name],
        )


def _figure(rows: int, cols: int):
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.3 * rows), squeeze=False)
    return fig, axes


def plot(ds: xr.Dataset, cfg: Config, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    main = ds.sel(corpus="main")
    opts = [(opt, OPTIMIZER_NAMES[opt]) for opt in cfg.optimizers]
    decay_start = cfg.steps - round(cfg.decay_fraction * cfg.steps)
    paths = []

    def finish(fig, axes, name, title):
        for ax in axes.ravel():
            ax.axvline(decay_start, color="gray", lw=0.6, ls=":")
            ax.set_xlabel("step (updates); WSD decays after the dotted line")
        axes[0, 0].legend(fontsize=8)
        fig.suptitle(title)
        fig.tight_layout()
        paths.extend(save_figure(fig, out / f"{name}.png"))

    header = (
        f"bigram table, V={cfg.vocab_size}, B={cfg.batch_size}: half deterministic, half "
        f"uniform(k={cfg.random_support}); {cfg.seeds} seeds, bands: interquartile"
    )
    with plt.rc_context(STYLE):
        fig, axes = _figure(len(opts), 3)
        for row, (opt, label) in enumerate(opts):
            runs = main.sel(optimizer=opt)
            for ax, var in zip(axes[row], ("loss", "excess_loss", "hill_loss"), strict=True):
                _schedule_bands(ax, runs, var)
                ax.set_yscale("log")
                ax.set_ylabel(f"{label}: {LABELS[var]}")
            axes[row, 0].axhline(ds.attrs["entropy_floor"], color="k", lw=0.8, ls="--")
            axes[row, 0].set_yscale("linear")
            axes[row, 0].set_ylim(ds.attrs["entropy_floor"] * 0.95, None)
        axes[0, 2].set_title("hill loss: relaxation split (rivervalley.decompose)", fontsize=9)
        finish(fig, axes, "bigram_lm_loss", header + "\n(dashed: entropy floor H)")

        classes = classes_of(main)
        fig, axes = _figure(len(opts), len(classes))
        for row, (opt, label) in enumerate(opts):
            runs = main.sel(optimizer=opt)
            for ax, cls in zip(axes[row], classes, strict=True):
                _schedule_bands(ax, runs, "class_excess", context_class=cls)
                ax.set_yscale("log")
                ax.set_ylabel(f"{label}: {LABELS['class_excess']}")
                ax.set_title(f"contexts {cls}", fontsize=9)
        finish(fig, axes, "bigram_lm_classes", "excess loss by context class\n" + header)

        fig, axes = _figure(1, len(opts))
        for ax, (opt, label) in zip(axes[0], opts, strict=True):
            _schedule_bands(ax, main.sel(optimizer=opt), "sharpness")
            ax.set_ylabel(f"{label}: {LABELS['sharpness']}")
        finish(fig, axes, "bigram_lm_sharpness", f"sharpness (Lanczos, {cfg.sharpness_iters} it.)")

        fig, axes = _figure(1, len(opts))
        for ax, (opt, label) in zip(axes[0], opts, strict=True):
            for corpus, ls in (("main", "-"), ("ablation", "--")):
                runs = ds.sel(corpus=corpus, optimizer=opt)
                for name in ("wsd", "cosine"):
                    mean = runs.excess_loss.sel(schedule=name).mean("seed")
                    tag = f"{SCHEDULE_NAMES[name]}, {corpus}"
                    ax.plot(mean.step, mean, ls=ls, color=SCHEDULE_COLORS[name], label=tag)
            ax.set_yscale("log")
            ax.set_ylabel(f"{label}: {LABELS['excess_loss']}")
        ablation = f"all contexts uniform(k={cfg.ablation_support})"
        finish(fig, axes, "bigram_lm_ablation", f"ablation (dashed): {ablation}, same floor")

    summary = summarize(ds, cfg)
    write_summary(out / "bigram_lm_summary.json", summary)
    return paths


main = main_for(__name__, "bigram_lm")


if __name__ == "__main__":
    main()
