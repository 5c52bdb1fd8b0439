"""Sweeps (docs/sweeps.md): expansion of ``sweep:`` into variants, names, groups, bad input (in-process)."""

from __future__ import annotations

import pytest

from helpers import merged_config

from deepsnow import DeepsnowError
from deepsnow.config import merge_config, validate_config, variants_of
from deepsnow.sweep import group_of, variant_name


def config_with(sweep, **top) -> dict:
    cfg = merged_config("configs/test.yaml")
    return merge_config(cfg, {"sweep": sweep, **top})


def test_two_by_two_sweep_expands_to_four_validated_variants_in_order():
    cfg = validate_config(config_with({"gan.seed": [0, 1], "gan.upsample": ["transpose", "resize_conv"]}))
    variants = variants_of(cfg)
    assert list(variants) == ["seed0-transpose", "seed0-resize_conv", "seed1-transpose", "seed1-resize_conv"]
    v = variants["seed1-resize_conv"]
    assert v["values"] == {"gan.seed": 1, "gan.upsample": "resize_conv"}
    assert v["group"] == "resize_conv"
    assert v["config"]["gan"]["seed"] == 1 and v["config"]["gan"]["upsample"] == "resize_conv"
    assert "sweep" not in v["config"]
    # every other key is the base config's (defaults filled)
    assert v["config"]["data"] == cfg["data"] and v["config"]["gan"]["ngf"] == cfg["gan"]["ngf"]


def test_without_sweep_there_are_no_variants():
    assert variants_of(validate_config(merged_config("configs/test.yaml"))) == {}


def test_names_and_groups_follow_the_documented_rule():
    assert variant_name({"gan.seed": 3, "gan.lr": 0.0002}) == "seed3-lr0.0002"
    assert variant_name({"gan.upsample": "resize_conv", "metrics.paired": False}) == "resize_conv-pairedfalse"
    assert variant_name({"features.extractors": ["inception", "resnet50"]}) == "inception+resnet50"
    assert group_of({"gan.seed": 2}) == "all"
    assert group_of({"gan.seed": 2, "gan.lr": 0.001}) == "lr0.001"


@pytest.mark.parametrize(
    "sweep, top, words",
    [
        ({"data.simulator.seed": [1, 2]}, {}, ["sweep.data.simulator.seed", "shared by every variant"]),
        ({"patches.size": [32, 64]}, {}, ["sweep.patches.size", "cannot be swept"]),
        ({"gan.nope": [1, 2]}, {}, ["sweep.gan.nope", "no such config key"]),
        ({"gan": [1, 2]}, {}, ["sweep.gan", "no such config key"]),
        ({"gan.seed": []}, {}, ["sweep.gan.seed", "non-empty list"]),
        ({"gan.n_epochs": [1, 2]}, {}, ["sweep.gan.n_epochs", "saved epochs"]),
        ({"features.simcover.weights_path": ["a.pt", "b.pt"]}, {}, ["sweep.features.simcover.weights_path", "cannot be swept"]),
        ({"gan.seed": 3}, {}, ["sweep.gan.seed", "non-empty list"]),
        ({"gan.seed": [0, "one"]}, {}, ["gan.seed", "'one' is not of type 'integer'", "sweep variant gan.seed = \"one\""]),
        ({"gan.upsample": ["transpose", "bilinear"]}, {}, ["gan.upsample", "bilinear"]),
        ({"gan.seed": [0, 1, 2], "gan.lr": [0.1, 0.2]}, {"sweep_max": 5}, ["key 'sweep'", "6 variants", "sweep_max = 5"]),
        ({"gan.seed": [0, 0]}, {}, ["both get the name 'seed0'", "gan.seed"]),
        ({"gan.upsample": ["a b", "a/b"]}, {}, ["both get the name 'a_b'", "gan.upsample"]),
        ([1, 2], {}, ["sweep"]),
    ],
)
def test_bad_sweeps_are_refused_naming_the_key(sweep, top, words):
    with pytest.raises(DeepsnowError) as err:
        validate_config(config_with(sweep, **top))
    for word in words:
        assert word in str(err.value)


def test_gan_model_is_sweepable_each_variant_with_its_own_models_defaults():
    variants = variants_of(validate_config(config_with({"gan.model": ["cyclegan", "cut", "fastcut"]})))
    assert [v["group"] for v in variants.values()] == ["cyclegan", "cut", "fastcut"]
    gan = {v["values"]["gan.model"]: v["config"]["gan"] for v in variants.values()}
    assert gan["cyclegan"]["pool_size"] == 50 and "lambda_NCE" not in gan["cyclegan"]
    assert "pool_size" not in gan["cut"] and "upsample" not in gan["cut"]
    assert (gan["cut"]["lambda_NCE"], gan["cut"]["nce_idt"], gan["cut"]["flip_equivariance"]) == (1.0, True, False)
    assert (gan["fastcut"]["lambda_NCE"], gan["fastcut"]["nce_idt"], gan["fastcut"]["flip_equivariance"]) == (10.0, False, True)
    # from a CUT base: FastCUT gets its own defaults, not CUT's; an option set in the base stays
    base = {"gan": {"model": "cut", "num_patches": 64}}
    gan = {v["values"]["gan.model"]: v["config"]["gan"]
           for v in variants_of(validate_config(config_with({"gan.model": ["cut", "fastcut"]}, **base))).values()}
    assert (gan["fastcut"]["lambda_NCE"], gan["fastcut"]["num_patches"], gan["cut"]["num_patches"]) == (10.0, 64, 64)


@pytest.mark.parametrize(
    "base, words",
    [
        ({"upsample": "resize_conv"}, ["gan.model = \"cut\"", "gan.upsample': an option of cycleGAN"]),
        ({"model": "cut", "num_patches": 64}, ["gan.model = \"cyclegan\"", "gan.num_patches': an option of CUT"]),
    ],
)
def test_a_model_option_set_in_the_base_is_refused_with_the_other_model(base, words):
    with pytest.raises(DeepsnowError) as err:
        validate_config(config_with({"gan.model": ["cyclegan", "cut"]}, gan=base))
    for word in words:
        assert word in str(err.value)


def test_a_variant_failing_a_cross_section_check_is_refused_before_any_job():
    # crop_size above load_size only in one variant
    with pytest.raises(DeepsnowError, match=r"(?s)sweep variant gan.crop_size = 64.*gan.crop_size.: 64 is larger"):
        validate_config(config_with({"gan.crop_size": [32, 64]}))


# ------------------------------------------------------------------ the comparison (in-process)

import csv
import math
import statistics
from pathlib import Path

import numpy as np
from scipy.stats import ttest_ind

from deepsnow.config import validate_section
from deepsnow.metrics.compare import compare
from deepsnow.metrics.table import TABLE_COLUMNS, write_csv


def write_variant(path: Path, rng, shift: float, epochs=(1, 2)) -> Path:
    rows = [
        {"epoch": e, "direction": d, "fid": 10 + shift + rng.normal(), "rf_logloss_mean": 0.5 + 0.01 * rng.normal(),
         "paired_l1": float("nan") if d == "BtoA" else 0.1 + shift / 100}
        for e in epochs for d in ("AtoB", "BtoA")
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, rows, TABLE_COLUMNS)
    return path


def write_artifacts(path: Path, scores: dict[int, float]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["source", "epoch", "checkerboard_score"])
        w.writeheader()
        w.writerows({"source": "epoch", "epoch": e, "checkerboard_score": s} for e, s in scores.items())
        w.writerow({"source": "truth", "epoch": "", "checkerboard_score": 1.0})
    return path


def read(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_compare_gives_mean_sd_n_per_group_and_welch_tests_between_groups(tmp_path: Path):
    rng = np.random.default_rng(0)
    names = ["seed0-transpose", "seed1-transpose", "seed2-transpose", "seed0-resize_conv", "seed1-resize_conv"]
    groups = ["transpose"] * 3 + ["resize_conv"] * 2
    tables = [write_variant(tmp_path / n / "metrics.csv", rng, 0.0 if g == "transpose" else 5.0) for n, g in zip(names, groups)]
    scores = [{1: 2.0 + i, 2: 1.0 + i / 10} for i in range(5)]
    artifacts = [write_artifacts(tmp_path / n / "artifacts.csv", s) for n, s in zip(names, scores)]
    compare(tables, names, groups, artifacts, tmp_path / "summary.csv", tmp_path / "final.csv")
    summary = {(r["group"], int(r["epoch"]), r["direction"], r["metric"]): r for r in read(tmp_path / "summary.csv")}
    fid = [float(read(t)[2]["fid"]) for t in tables]  # epoch 2, AtoB (rows sorted by epoch, direction)
    row = summary[("transpose", 2, "AtoB", "fid")]
    assert math.isclose(float(row["mean"]), statistics.mean(fid[:3])) and math.isclose(float(row["sd"]), statistics.stdev(fid[:3]))
    assert row["n"] == "3" and row["variants"] == "seed0-transpose seed1-transpose seed2-transpose"
    cb = summary[("resize_conv", 1, "AtoB", "checkerboard_score")]
    assert math.isclose(float(cb["mean"]), 5.5) and math.isclose(float(cb["sd"]), statistics.stdev([5.0, 6.0]))
    assert summary[("resize_conv", 2, "BtoA", "paired_l1")]["n"] == "0"  # not measured: no values, no spread
    final = {(r["direction"], r["metric"]): r for r in read(tmp_path / "final.csv")}
    assert {r["epoch"] for r in final.values()} == {"2"}
    f = final[("AtoB", "fid")]
    assert (f["group_a"], f["group_b"]) == ("resize_conv", "transpose")
    want = ttest_ind(fid[3:], fid[:3], equal_var=False)
    assert math.isclose(float(f["welch_t"]), want.statistic) and math.isclose(float(f["p_value"]), want.pvalue)
    assert math.isclose(float(f["difference"]), statistics.mean(fid[3:]) - statistics.mean(fid[:3]))


def test_compare_refuses_variants_with_different_epochs_or_mismatched_lists(tmp_path: Path):
    rng = np.random.default_rng(1)
    a = write_variant(tmp_path / "a.csv", rng, 0.0, epochs=(1, 2))
    b = write_variant(tmp_path / "b.csv", rng, 0.0, epochs=(1,))
    with pytest.raises(DeepsnowError, match="different epochs"):
        compare([a, b], ["a", "b"], ["all", "all"], None, tmp_path / "s.csv", tmp_path / "f.csv")
    with pytest.raises(DeepsnowError, match="same order"):
        compare([a, b], ["a"], ["all", "all"], None, tmp_path / "s.csv", tmp_path / "f.csv")
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "f.csv").exists()


def test_figure11_draws_every_group_from_the_summary(tmp_path: Path):
    from deepsnow.figures.table import make_figure

    rng = np.random.default_rng(2)
    names, groups = ["s0-t", "s1-t", "s0-r", "s1-r"], ["t", "t", "r", "r"]
    tables = [write_variant(tmp_path / f"{n}.csv", rng, 0.0) for n in names]
    arts = [write_artifacts(tmp_path / f"{n}-a.csv", {1: 1.0, 2: 2.0}) for n in names]
    compare(tables, names, groups, arts, tmp_path / "summary.csv", tmp_path / "final.csv")
    drawn = make_figure(11, validate_section("figures", {}), comparison_summary=tmp_path / "summary.csv")
    assert drawn.extra == {"groups": ["r", "t"], "variants_per_group": {"r": 2, "t": 2}}
    labels = [t.get_text() for ax in drawn.figure.axes for t in ax.get_xticklabels()]
    # measured here: FID, RF log loss, checkerboard score and paired L1; FRD, CRD, KID are not
    assert labels.count("r") == 4 and labels.count("t") == 4
    assert sum("not measured" in ax.get_title() for ax in drawn.figure.axes) == 3


def write_losses(path: Path, rng, epochs=(1, 2, 3), cols=("G_A", "G_B", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B")) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["epoch", "iterations", "lr", *cols, "seconds", "it_per_s"])
        w.writeheader()
        w.writerows({"epoch": e, "iterations": 10, "lr": 2e-4, **{c: rng.uniform() for c in cols}, "seconds": 1,
                     "it_per_s": 10} for e in epochs)
    return path


def test_compare_carries_the_losses_per_direction_and_the_pretrained_flags(tmp_path: Path):
    rng = np.random.default_rng(3)
    names, groups = ["s0", "s1"], ["all", "all"]
    tables = [write_variant(tmp_path / f"{n}.csv", rng, 0.0) for n in names]
    for t, pretrained in zip(tables, ("True", "False")):  # the second variant used random ResNet weights
        rows = read(t)
        write_csv(t, [{**r, "resnet_pretrained": pretrained} for r in rows], TABLE_COLUMNS)
    losses = [write_losses(tmp_path / f"{n}-losses.csv", rng) for n in names]
    compare(tables, names, groups, None, tmp_path / "summary.csv", tmp_path / "final.csv", losses)
    summary = {(int(r["epoch"]), r["direction"], r["metric"]): r for r in read(tmp_path / "summary.csv")}
    for e in (1, 2, 3):
        for loss, direction, col in (("loss_G", "AtoB", "G_A"), ("loss_G", "BtoA", "G_B"), ("loss_cycle", "AtoB", "cycle_A")):
            want = [float(r[col]) for t in losses for r in read(t) if int(r["epoch"]) == e]
            got = summary[(e, direction, loss)]
            assert math.isclose(float(got["mean"]), statistics.mean(want)) and math.isclose(float(got["sd"]), statistics.stdev(want))
    assert float(summary[(2, "AtoB", "resnet_pretrained")]["mean"]) == 0.5
    assert summary[(2, "AtoB", "inception_pretrained")]["n"] == "0"  # empty cells: unknown, not counted
    final = {(r["direction"], r["metric"]): r for r in read(tmp_path / "final.csv")}
    assert final[("AtoB", "loss_G")]["epoch"] == "3" and final[("AtoB", "fid")]["epoch"] == "2"  # each its last epoch
    assert not any(m.endswith("_pretrained") for _, m in final)
    with pytest.raises(DeepsnowError, match="--losses"):
        compare(tables, names, groups, None, tmp_path / "s.csv", tmp_path / "f.csv", losses[:1])
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,G_A\n1,0.5\n")
    with pytest.raises(DeepsnowError, match=r"bad.csv: no column\(s\).*G_B.*train/losses.csv"):
        compare(tables, names, groups, None, tmp_path / "s.csv", tmp_path / "f.csv", [bad, bad])


def test_compare_correlates_each_metric_with_the_paired_error_over_the_variants(tmp_path: Path):
    from scipy.stats import spearmanr

    rng = np.random.default_rng(5)
    names = [f"seed{i}" for i in range(4)]
    tables = [write_variant(tmp_path / f"{n}.csv", rng, shift) for n, shift in zip(names, (0.0, 3.0, 1.0, 7.0))]
    compare(tables, names, ["all"] * 4, None, tmp_path / "s.csv", tmp_path / "f.csv",
            correlations_path=tmp_path / "corr.csv")
    corr = {(r["scope"], r["metric"], r["paired"]): r for r in read(tmp_path / "corr.csv")}
    assert {r["scope"] for r in corr.values()} == {"pooled", "epoch 1", "epoch 2"}
    rows = [r for t in tables for r in read(t) if r["direction"] == "AtoB"]
    want = spearmanr([float(r["fid"]) for r in rows], [float(r["paired_l1"]) for r in rows])
    pooled = corr[("pooled", "fid", "paired_l1")]
    assert pooled["n"] == "8" and math.isclose(float(pooled["spearman_rho"]), want.statistic)
    at2 = [r for r in rows if r["epoch"] == "2"]  # across the 4 variants at epoch 2
    want2 = spearmanr([float(r["fid"]) for r in at2], [float(r["paired_l1"]) for r in at2])
    got2 = corr[("epoch 2", "fid", "paired_l1")]
    assert got2["n"] == "4" and math.isclose(float(got2["spearman_rho"]), want2.statistic)
    assert corr[("pooled", "rf_logloss_mean", "paired_l1")]["expected_sign"] == "-1"
    assert corr[("pooled", "frd", "paired_l1")]["n"] == "0"  # not in these tables: no pairs, no rho


def test_compare_carries_the_per_extractor_scores_with_their_expected_signs(tmp_path: Path):
    """fd_/cd_ and precision/recall/density/coverage columns of an extractor are compared and correlated;
    the nearest-neighbour scores expect a negative rho with the paired L1 (they rise as images improve)."""
    from deepsnow.metrics.table import table_columns

    tables = []
    for i in range(3):
        rows = [
            {"epoch": e, "direction": "AtoB", "fid": 10.0 - e - i, "fd_simcover": 5.0 - e - i,
             "coverage_simcover": 0.2 * e + 0.1 * i, "paired_l1": 0.3 - 0.05 * e - 0.01 * i}
            for e in (1, 2)
        ]
        tables.append(tmp_path / f"v{i}.csv")
        write_csv(tables[-1], rows, table_columns(rows))
    compare(tables, ["v0", "v1", "v2"], ["all"] * 3, None, tmp_path / "s.csv", tmp_path / "f.csv",
            correlations_path=tmp_path / "corr.csv")
    assert {"fd_simcover", "coverage_simcover"} <= {r["metric"] for r in read(tmp_path / "s.csv")}
    corr = {(r["scope"], r["metric"], r["paired"]): r for r in read(tmp_path / "corr.csv")}
    cov, fd = corr[("pooled", "coverage_simcover", "paired_l1")], corr[("pooled", "fd_simcover", "paired_l1")]
    assert (cov["expected_sign"], fd["expected_sign"]) == ("-1", "1")
    assert cov["n"] == "6" and float(cov["spearman_rho"]) < 0 < float(fd["spearman_rho"])


def test_a_one_sided_group_is_compared_on_what_both_groups_have(tmp_path: Path):
    """cycleGAN (both directions) next to CUT (A->B only, its own losses): tests where both have values,
    the other rows alone, and Figures 3 and 11 draw both groups without empty panels."""
    from deepsnow.figures.table import make_figure

    rng = np.random.default_rng(6)
    names, groups = ["seed0-cyclegan", "seed1-cyclegan", "seed0-cut", "seed1-cut"], ["cyclegan"] * 2 + ["cut"] * 2
    tables = [write_variant(tmp_path / f"{v}.csv", rng, 0.0 if g == "cyclegan" else 3.0) for v, g in zip(names, groups)]
    for t in tables[2:]:  # a one-sided model's metrics table has A->B rows only
        write_csv(t, [r for r in read(t) if r["direction"] == "AtoB"], TABLE_COLUMNS)
    arts = [write_artifacts(tmp_path / f"{v}-a.csv", {1: 1.0 + i, 2: 2.0 + i}) for i, v in enumerate(names)]
    losses = [write_losses(tmp_path / f"{v}-l.csv", rng, (1, 2)) for v in names[:2]]
    cut_columns = ("G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y")  # a one-sided model's losses.csv
    losses += [write_losses(tmp_path / f"{v}-l.csv", rng, (1, 2), cut_columns) for v in names[2:]]
    compare(tables, names, groups, arts, tmp_path / "summary.csv", tmp_path / "final.csv", losses)
    summary = {(r["group"], int(r["epoch"]), r["direction"], r["metric"]): r for r in read(tmp_path / "summary.csv")}
    assert not any(g == "cut" and d == "BtoA" for g, _, d, _ in summary)
    want = [0.5 * (float(r["D_real"]) + float(r["D_fake"])) for t in losses[2:] for r in read(t) if r["epoch"] == "2"]
    assert math.isclose(float(summary[("cut", 2, "AtoB", "loss_D")]["mean"]), statistics.mean(want))
    final = {}
    for r in read(tmp_path / "final.csv"):
        final.setdefault((r["direction"], r["metric"]), []).append(r)
    tested = {k for k, rows in final.items() if any(r["welch_t"] for r in rows)}
    assert {("AtoB", m) for m in ("fid", "rf_logloss_mean", "checkerboard_score", "loss_G", "loss_D")} <= tested
    for key, group in ((("BtoA", "fid"), "cyclegan"), (("AtoB", "loss_cycle"), "cyclegan"), (("AtoB", "loss_NCE"), "cut")):
        assert [(r["group_a"], r["group_b"]) for r in final[key]] == [(group, "")], key  # that group alone
    figures = {n: make_figure(n, validate_section("figures", {}), comparison_summary=tmp_path / "summary.csv")
               for n in (3, 11)}
    labels = [t.get_text() for ax in figures[11].figure.axes for t in ax.get_xticklabels()]
    assert labels.count("cut") == labels.count("cyclegan") == 4  # FID, RF log loss, checkerboard, paired L1
    loss_ax = figures[3].figure.axes[0]
    assert len(loss_ax.get_lines()) == 6  # cycleGAN: G, D, cycle; CUT: G, D, NCE
    legend = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert any("PatchNCE" in t for t in legend) and any("cycle" in t for t in legend)


@pytest.mark.parametrize("n", [3, 5, 7])
def test_figures_3_5_7_per_group_draw_each_groups_mean_and_spread(tmp_path: Path, n: int):
    from deepsnow.figures.table import make_figure

    rng = np.random.default_rng(4)
    names, groups = ["s0-t", "s1-t", "s0-r", "s1-r"], ["t", "t", "r", "r"]
    tables = [write_variant(tmp_path / f"{v}.csv", rng, 0.0 if g == "t" else 4.0) for v, g in zip(names, groups)]
    for t in tables[2:]:  # the r group's ResNet was random: Figures 3 and 5 flag it
        write_csv(t, [{**r, "resnet_pretrained": "False"} for r in read(t)], TABLE_COLUMNS)
    arts = [write_artifacts(tmp_path / f"{v}-a.csv", {1: 1.0 + i, 2: 2.0 + i}) for i, v in enumerate(names)]
    losses = [write_losses(tmp_path / f"{v}-l.csv", rng, epochs=(1, 2)) for v in names]
    compare(tables, names, groups, arts, tmp_path / "summary.csv", tmp_path / "final.csv", losses)
    drawn = make_figure(n, validate_section("figures", {}), comparison_summary=tmp_path / "summary.csv")
    assert drawn.extra == {"groups": ["r", "t"], "variants_per_group": {"r": 2, "t": 2}}
    assert drawn.inputs == [tmp_path / "summary.csv"]
    title = drawn.figure.get_suptitle()
    assert ("RANDOM (non-pretrained) ResNet" in title) == (n in (3, 5)) and "(r: 2, t: 2)" in title
    axes = drawn.figure.axes
    panel = {3: 1, 5: 0, 7: 0}[n]  # FID, RF log loss, checkerboard score
    metric = {3: "fid", 5: "rf_logloss_mean", 7: "checkerboard_score"}[n]
    summary = {(r["group"], int(r["epoch"]), r["metric"]): float(r["mean"]) for r in read(tmp_path / "summary.csv")
               if r["direction"] == "AtoB" and r["mean"] != ""}
    for line in axes[panel].get_lines():
        if line.get_label() in ("r", "t"):
            assert list(line.get_ydata()) == [summary[(line.get_label(), e, metric)] for e in (1, 2)]
    assert {ln.get_label() for ln in axes[panel].get_lines()} >= {"r", "t"}
    assert len(axes[panel].collections) == 2  # one ± 1 s.d. band per group
    if n == 3:  # (a): both groups' G, D and cycle losses, each with its band
        assert len(axes[0].get_lines()) == 6 and len(axes[0].collections) == 6


def test_comparison_figure_captions_describe_each_sweep_figure():
    import types

    import jinja2

    from deepsnow.figures.table import sweep_figures

    text = (Path(__file__).resolve().parents[1] / "workflow/report/comparison_figure.rst").read_text()
    assert sorted(sweep_figures()) == [3, 5, 7, 11]
    for n in map(str, sweep_figures()):
        snakemake = types.SimpleNamespace(wildcards={"n": n}, config={"sweep": {"gan.seed": [0, 1]}})
        caption = " ".join(jinja2.Environment().from_string(text).render(snakemake=snakemake).split())
        want = "Figure 11 (beyond the paper; sweeps)" if n == "11" else f"Figure {n} per variant group (sweeps)"
        assert caption.startswith(f"**{want}") and "± 1 s.d." in caption, (n, caption)
    assert "line style: loss" in jinja2.Environment().from_string(text).render(
        snakemake=types.SimpleNamespace(wildcards={"n": "3"}, config={}))


# ------------------------------------------------------------------ the workflow

from helpers import copy_run, copy_workflow, snakemake  # noqa: E402
from test_workflow import job_counts  # noqa: E402


def test_dry_run_of_a_two_by_two_sweep_plans_four_trainings_on_one_data_half(tmp_path: Path):
    work = copy_workflow(tmp_path / "wf")
    (work / "sweep.yaml").write_text("sweep:\n  gan.seed: [0, 1]\n  gan.upsample: [transpose, resize_conv]\n")
    proc = snakemake(work, "-n", "-p", "--configfile", "configs/test.yaml", "sweep.yaml")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["train"] == 4 and counts["split"] == 1 and counts["comparison"] == 1
    assert counts["simulate"] == 3 and counts["mask"] == 6 and counts["patches"] == 6  # the data half once
    extractors = merged_config("configs/test.yaml")["features"]["extractors"]
    assert counts["embed_real"] == len(extractors)  # the real embeddings once per extractor: features not swept
    assert counts.get("train_simcover", 0) == ("simcover" in extractors)  # trained once on the shared data
    assert counts["metrics_table"] == 4 and counts["report_pages"] == 4
    assert counts["metric_validity"] == 1  # the ladders do not depend on the gan section: one shared table
    assert "results/test/metrics/validity.csv" in proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "results/test/comparison/summary.csv" in out
    for n in (3, 5, 7, 11):  # Figures 3, 5, 7 per group and Figure 11, from the comparison
        assert f"results/test/comparison/figure{n}.png" in out
    assert "results/test/variants/seed1-resize_conv/train/losses.csv" in out
    compare_cmd = next(line for line in out.splitlines() if "deepsnow metrics compare" in line)
    change = compare_cmd.split("--change ")[1].split(" 2>")[0].split()  # the AUC gap: each variant's testbed
    assert change == [f"results/test/variants/{v}/change/summary.json"
                      for v in ("seed0-transpose", "seed0-resize_conv", "seed1-transpose", "seed1-resize_conv")]
    assert counts["change_summary"] == 4 and counts["change"] == 4 * len(merged_config("configs/test.yaml")["split"]["test_aois"])
    assert "results/test/change/summary.json" not in out
    assert "results/test/train/losses.csv" not in out  # no unswept copy


def test_dry_run_of_configs_models_plans_three_models_by_three_seeds(tmp_path: Path):
    """configs/models.yaml (cycleGAN vs CUT vs FastCUT, docs/cut.md) over the demo: 9 trainings in 3 groups."""
    work = copy_workflow(tmp_path / "wf")
    proc = snakemake(work, "-n", "-p", "--configfile", "configs/models.yaml")
    out = proc.stdout + proc.stderr
    counts = job_counts(out)
    assert counts["train"] == 9 and counts["split"] == 1 and counts["comparison"] == 1
    for model in ("cyclegan", "cut", "fastcut"):
        for seed in (0, 1, 2):
            assert f"results/models/variants/seed{seed}-{model}/train/losses.csv" in out
            assert f"results/models/variants/seed{seed}-{model}/change/summary.json" in out  # the AUC gap compared
    assert counts["change_summary"] == 9
    compare_cmd = next(line for line in out.splitlines() if "deepsnow metrics compare" in line)
    assert len(compare_cmd.split("--change ")[1].split(" 2>")[0].split()) == 9  # every variant's AUC gap
    assert "results/models/comparison/figure11.png" in out


def test_two_seed_sweep_runs_to_its_comparison(test_config_run: Path, tmp_path: Path):
    """The one end-to-end sweep: the test run's data half and real embeddings reused, two 1-epoch trainings
    (and each variant's products and change testbed, whose AUC gap the comparison reads)."""
    import json

    work = copy_run(test_config_run, tmp_path / "run")
    (work / "sweep.yaml").write_text(
        "gan: {n_epochs: 1, n_epochs_decay: 0, keep_every: 1, threads: 1}\n"
        "sweep:\n  gan.seed: [0, 1]\n"
    )
    proc = snakemake(work, "--configfile", "configs/test.yaml", "sweep.yaml", "--", "results/test/comparison/summary.csv",
                     "results/test/comparison/figure3.png")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["train"] == 2 and not {"simulate", "split", "embed_real"} & set(counts), counts
    res = work / "results" / "test"
    tables = {v: read(res / "variants" / v / "metrics" / "metrics.csv") for v in ("seed0", "seed1")}
    summary = read(res / "comparison" / "summary.csv")
    for v in tables:  # Figure 7's checkerboard score (A->B) and the losses (_A: A->B, _B: B->A) join the metrics
        tables[v] += [{**r, "direction": "AtoB"} for r in read(res / "variants" / v / "figures" / "artifacts.csv")
                      if r["source"] == "epoch"]
        for r in read(res / "variants" / v / "train" / "losses.csv"):
            for d, direction in (("A", "AtoB"), ("B", "BtoA")):
                tables[v].append({"epoch": r["epoch"], "direction": direction,
                                  **{f"loss_{k}": r[f"{k}_{d}"] for k in ("G", "D", "cycle", "idt")}})
        gaps = json.loads((res / "variants" / v / "change" / "summary.json").read_text())["gaps"]  # the testbed's
        tables[v].append({"epoch": "1", "direction": "AtoB", **{  # AUCs and gap, at the last epoch
            f"change_auc_{w}_{b}_{d}": str(g["gap_synthetic_real"] if w == "gap" else g["auc"][w])
            for b, per in gaps.items() for d, g in per["detectors"].items() for w in ("synthetic", "real", "gap")}})
    def number(cell: str) -> float:  # the pretrained flags are true/false in the table, 1/0 in the summary
        return {"true": 1.0, "false": 0.0}.get(cell.lower()) if cell.lower() in ("true", "false") else float(cell)

    checked = 0
    for row in summary:
        values = [number(r[row["metric"]]) for t in tables.values() for r in t
                  if r["epoch"] == row["epoch"] and r["direction"] == row["direction"] and r.get(row["metric"], "") != ""]
        assert row["group"] == "all" and int(row["n"]) == len(values)
        if values:
            assert math.isclose(float(row["mean"]), statistics.mean(values), rel_tol=1e-12)
        if len(values) == 2:
            assert math.isclose(float(row["sd"]), statistics.stdev(values), rel_tol=1e-9, abs_tol=1e-15)
            checked += 1
    assert checked >= 10  # FID, FRD, CRD, KID, RF ... in both directions, the checkerboard score
    assert {r["metric"] for r in summary} >= {"fid", "frd", "kid_mean", "rf_logloss_mean", "checkerboard_score",
                                              "loss_G", "loss_cycle", "inception_pretrained",
                                              "change_auc_gap_rgb_chronochrome", "change_auc_real_rgb_rx_difference"}
    corr = read(res / "comparison" / "correlations.csv")  # 2 variants x 1 epoch: too few points for a rho
    assert {(r["scope"], r["n"]) for r in corr if r["metric"] == "fid" and r["paired"] == "paired_l1"} == {
        ("pooled", "2"), ("epoch 1", "2")}
    assert (res / "comparison" / "figure3.png").stat().st_size > 10_000  # Figure 3 per group, drawn


# ------------------------------------------------------------------ the change testbed's AUC gap in the comparison


def write_change_summary(path: Path, aucs: dict[str, tuple[float, float]]) -> Path:
    """A change/summary.json as 'deepsnow change summary' writes its gaps: {detector: (synthetic, real)} (rgb)."""
    import json

    detectors = {d: {"auc": {"real": r, "synthetic": s}, "gap_synthetic_real": abs(s - r)} for d, (s, r) in aucs.items()}
    path.write_text(json.dumps({"rows": [], "gaps": {"rgb": {"detectors": detectors, "ranking": {}}}}))
    return path


def test_compare_tests_the_change_testbeds_aucs_and_gap_between_groups(tmp_path: Path):
    rng = np.random.default_rng(7)
    names, groups = [f"seed{i}-{g}" for g in ("cyclegan", "cut") for i in range(3)], ["cyclegan"] * 3 + ["cut"] * 3
    tables = [write_variant(tmp_path / f"{v}.csv", rng, 0.0) for v in names]
    synthetic = [0.70, 0.74, 0.71, 0.80, 0.83, 0.79]  # the real pair is the same for every variant: 0.85
    change = [write_change_summary(tmp_path / f"{v}.json", {"chronochrome": (s, 0.85), "rx_difference": (0.6, 0.9)})
              for v, s in zip(names, synthetic)]
    compare(tables, names, groups, None, tmp_path / "summary.csv", tmp_path / "final.csv", change=change)
    summary = {(r["group"], int(r["epoch"]), r["direction"], r["metric"]): r for r in read(tmp_path / "summary.csv")}
    gap = summary[("cut", 2, "AtoB", "change_auc_gap_rgb_chronochrome")]  # at the last epoch, A->B
    want = [0.85 - s for s in synthetic]
    assert math.isclose(float(gap["mean"]), statistics.mean(want[3:])) and math.isclose(float(gap["sd"]), statistics.stdev(want[3:]))
    assert gap["n"] == "3" and not any(m.startswith("change_") for g, e, _, m in summary if e == 1)
    final = {(r["metric"], r["group_a"], r["group_b"]): r for r in read(tmp_path / "final.csv")}
    for metric, values in (("change_auc_synthetic_rgb_chronochrome", synthetic), ("change_auc_gap_rgb_chronochrome", want)):
        f = final[(metric, "cut", "cyclegan")]
        t = ttest_ind(values[3:], values[:3], equal_var=False)
        assert math.isclose(float(f["welch_t"]), t.statistic) and math.isclose(float(f["p_value"]), t.pvalue)
        assert f["epoch"] == "2" and f["direction"] == "AtoB"
    real = final[("change_auc_real_rgb_chronochrome", "cut", "cyclegan")]  # no spread: no test, the reference
    assert float(real["mean_a"]) == 0.85 and float(real["sd_a"]) == 0.0 and real["welch_t"] == ""
    assert float(final[("change_auc_gap_rgb_rx_difference", "cut", "cyclegan")]["mean_a"]) == pytest.approx(0.3)


def test_a_damaged_or_missing_change_summary_is_refused_naming_the_file(tmp_path: Path):
    from helpers import deepsnow

    rng = np.random.default_rng(8)
    tables = [write_variant(tmp_path / f"{v}.csv", rng, 0.0) for v in ("a", "b")]
    good = write_change_summary(tmp_path / "good.json", {"chronochrome": (0.7, 0.8)})
    (tmp_path / "damaged.json").write_text('{"gaps": {"rgb": {"detectors": {"chronochrome": {"auc": {"real": 0.8}}}}}}')
    (tmp_path / "truncated.json").write_text('{"gaps": {"rgb"')
    for bad, words in (("missing.json", "cannot read"), ("damaged.json", "not a change summary"),
                       ("truncated.json", "not a change summary")):
        with pytest.raises(DeepsnowError, match=f"{bad}: {words}"):
            compare(tables, ["a", "b"], ["all", "all"], None, tmp_path / "s.csv", tmp_path / "f.csv",
                    change=[good, tmp_path / bad])
    assert not (tmp_path / "s.csv").exists()
    p = deepsnow("metrics", "compare", "--tables", *tables, "--variants", "a", "b", "--groups", "all", "all",
                 "--change", good, tmp_path / "damaged.json", "--summary", tmp_path / "s.csv", "--final", tmp_path / "f.csv")
    assert p.returncode == 2 and "damaged.json: not a change summary" in p.stderr, p.stderr
