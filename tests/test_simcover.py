"""simcover: the land-cover ResNet-18 trained on the training patches, its weights file, the extractor.

Tiny in-process data (16 px patches whose colours follow their class fractions); no workflow run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepsnow import DeepsnowError
from deepsnow.cli import main
from deepsnow.config import validate_section
from deepsnow.features import build_extractor, embed_images
from deepsnow.features.simcover import load_network
from deepsnow.features.simcover_train import holdout_split, torch_threads, train_simcover
from deepsnow.figures.report_pages import simcover_html
from deepsnow.io import save_npz, sha256_file, write_json

TARGETS = np.array(["water", "forest", "bare", "snow"])
PX = 16


def toy_set(n: int, seed: int, snowy: bool) -> dict:
    """Patches whose left part is class a, the rest class b; each class its own colour; snow whitens."""
    rng = np.random.default_rng(seed)
    colours = np.array([[20, 40, 120], [30, 90, 30], [150, 110, 70]], dtype=np.float32)
    rgb = np.empty((n, PX, PX, 3), dtype=np.uint8)
    landcover = np.zeros((n, len(TARGETS)), dtype=np.float32)
    for i in range(n):
        a, b = rng.choice(3, size=2, replace=False)
        cut = int(rng.integers(0, PX + 1))
        img = np.empty((PX, PX, 3), dtype=np.float32)
        img[:, :cut], img[:, cut:] = colours[a], colours[b]
        snow = float(rng.uniform(0.3, 1.0)) if snowy else 0.0
        img = img * (1 - snow) + 240 * snow + rng.normal(0, 4, img.shape)
        rgb[i] = np.clip(img, 0, 255).astype(np.uint8)
        landcover[i, a] += cut / PX
        landcover[i, b] += 1 - cut / PX
        landcover[i, -1] = snow
    return {"rgb": rgb, "landcover": landcover, "landcover_targets": TARGETS}


def params(**over) -> dict:
    """Two seeds, one thread: tiny sets train no faster on more."""
    return validate_section(
        "simcover", {"size": PX, "epochs": 12, "batch_size": 16, "lr": 0.003, "n_seeds": 2, "threads": 1, **over}
    )


@pytest.fixture(scope="module")
def train_sets(tmp_path_factory):
    d = tmp_path_factory.mktemp("simcover")
    paths = [d / "trainA.npz", d / "trainB.npz"]
    save_npz(paths[0], **toy_set(48, 1, snowy=False))
    save_npz(paths[1], **toy_set(48, 2, snowy=True))
    return paths


@pytest.fixture(scope="module")
def trained(train_sets, tmp_path_factory):
    """The CLI's outputs: simcover.pt and its summary JSON."""
    d = tmp_path_factory.mktemp("trained")
    out, summary = d / "simcover.pt", d / "simcover.json"
    rc = main(["train-simcover", "--params", json.dumps(params()), "--train-a", str(train_sets[0]),
               "--train-b", str(train_sets[1]), "--output", str(out), "--summary", str(summary)])
    assert rc == 0
    return out, json.loads(summary.read_text())


def test_it_learns_the_fractions_better_than_the_training_mean(trained):
    """Held-out errors come from patches it was not fitted on, and beat the always-the-mean baseline."""
    _, summary = trained
    assert summary["targets"] == list(TARGETS)
    assert summary["n_train"] + summary["n_heldout"] == 96 and summary["n_heldout"] == round(96 * 0.2)
    held, base = summary["heldout"], summary["baseline_train_mean"]
    assert held["snow_fraction_mae"] < 0.5 * base["snow_fraction_mae"]
    assert held["class_fraction_mae"] < 0.9 * base["class_fraction_mae"]
    assert held["dominant_class_accuracy"] > base["dominant_class_accuracy"]
    assert summary["history"][-1]["loss"] < summary["history"][0]["loss"]


def test_summary_carries_every_seed_and_their_spread(trained):
    """n_seeds trainings, each with its held-out numbers; the spread is theirs; the top level is the kept seed's."""
    _, summary = trained
    assert summary["seed"] == 0 and summary["n_seeds"] == 2 and [r["seed"] for r in summary["seeds"]] == [0, 1]
    assert summary["threads"] == 1
    assert summary["heldout"] == summary["seeds"][0]["heldout"]
    for part in ("heldout", "baseline_train_mean"):
        for key, s in summary["spread"][part].items():
            values = [r[part][key] for r in summary["seeds"]]
            assert s["min"] == min(values) and s["max"] == max(values)
            assert s["mean"] == pytest.approx(np.mean(values)) and s["sd"] == pytest.approx(np.std(values, ddof=1))
    # the two seeds hold out different patches: the spread covers the split as well as the training
    assert summary["seeds"][0]["baseline_train_mean"] != summary["seeds"][1]["baseline_train_mean"]


def test_the_weights_kept_are_the_first_seeds(train_sets):
    """More seeds add spread, not another model: the weights equal a one-seed training's, bit for bit."""
    few = params(epochs=1, max_steps=2)
    (one, _), (three, summary) = train_simcover(train_sets, {**few, "n_seeds": 1}), train_simcover(train_sets, {**few, "n_seeds": 3})
    assert [r["seed"] for r in summary["seeds"]] == [0, 1, 2]
    assert all(torch.equal(one["state_dict"][k], three["state_dict"][k]) for k in one["state_dict"])


def test_training_is_deterministic_on_cpu(train_sets):
    """Same seed, same weights, bit for bit; another seed, other weights."""
    few = params(epochs=1, max_steps=2, n_seeds=1)
    (a, _), (b, _) = train_simcover(train_sets, few), train_simcover(train_sets, few)
    (c, _) = train_simcover(train_sets, {**few, "seed": 1})
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert not torch.equal(a["state_dict"]["head.weight"], c["state_dict"]["head.weight"])


def test_torch_threads_restores_the_callers_count():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with torch_threads(other) as n:
        assert n == other == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"), torch_threads(other):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with torch_threads(0) as n:  # 0: the caller's count
        assert n == before
    assert torch.get_num_threads() == before


def test_training_restores_the_callers_thread_count(train_sets):
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    _, summary = train_simcover(train_sets, params(epochs=1, max_steps=1, n_seeds=1, threads=other))
    assert summary["threads"] == other and torch.get_num_threads() == before


def test_the_callers_thread_count_does_not_change_the_result(train_sets):
    """Trained at simcover.threads whatever the caller (Snakemake's grant, OMP_NUM_THREADS) set: the same bits.
    Left to the caller's count, 1 and 2 threads trained other weights (oneDNN picks kernels by thread count;
    with the fixture's 12 epochs, held-out accuracies 0.79 and 0.47 on these toy sets)."""
    few = params(epochs=2, n_seeds=1, threads=1)
    before = torch.get_num_threads()
    results = {}
    try:
        for caller in (1, 2):
            torch.set_num_threads(caller)
            results[caller] = train_simcover(train_sets, few)
            assert torch.get_num_threads() == caller
    finally:
        torch.set_num_threads(before)
    (a, sa), (b, sb) = results[1], results[2]
    assert sa["threads"] == sb["threads"] == 1 and sa["heldout"] == sb["heldout"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_holdout_is_seeded_and_disjoint():
    fit, held = holdout_split(10, 0.2, 0)
    assert len(held) == 2 and not set(fit) & set(held) and len(fit) + len(held) == 10
    assert np.array_equal(held, holdout_split(10, 0.2, 0)[1])


def test_extractor_from_the_weights_file(trained, train_sets):
    """512-d features, the weights recorded as simcover:<sha256 prefix>; the file loads with weights_only."""
    path, _ = trained
    ext = build_extractor("simcover", {"weights_path": str(path)})
    assert ext.weights == f"simcover:{sha256_file(path)[:16]}" and ext.dim == 512
    feats = embed_images(np.load(train_sets[0])["rgb"][:5], ext, device="cpu")
    assert feats.shape == (5, 512) and np.isfinite(feats).all() and feats.std(0).max() > 0
    assert torch.load(path, weights_only=True)["arch"] == "resnet18"


def test_extractor_without_weights_says_how_to_get_them():
    with pytest.raises(DeepsnowError, match="simcover.*needs trained weights.*train-simcover"):
        build_extractor("simcover", {})


def test_weights_of_another_class_count_or_architecture_name_the_file(trained, tmp_path):
    path, _ = trained
    obj = torch.load(path, weights_only=True)
    fewer = tmp_path / "fewer.pt"
    torch.save({**obj, "targets": ["water", "snow"]}, fewer)
    with pytest.raises(DeepsnowError, match=f"{fewer}.*do not fit a resnet18 with 2 targets"):
        load_network(fewer)
    other = tmp_path / "resnet50.pt"
    torch.save({**obj, "arch": "resnet50"}, other)
    with pytest.raises(DeepsnowError, match=f"{other}.*not a simcover weights file.*'resnet50'"):
        build_extractor("simcover", {"weights_path": str(other)})
    with pytest.raises(DeepsnowError, match=f"{path}: simcover weights for 4 targets.*expected 5"):
        load_network(path, expected_targets=["water", "forest", "bare", "rock", "snow"])


def test_training_sets_without_landcover_are_refused(tmp_path, capsys):
    plain = tmp_path / "trainA.npz"
    save_npz(plain, rgb=np.zeros((4, PX, PX, 3), np.uint8))
    out = tmp_path / "simcover.pt"
    rc = main(["train-simcover", "--train-a", str(plain), "--train-b", str(plain),
               "--output", str(out), "--summary", str(tmp_path / "s.json")])
    assert rc == 2 and not out.exists()
    assert f"{plain}: no 'landcover' array" in capsys.readouterr().err


def test_embed_takes_the_weights_path(trained, train_sets, tmp_path):
    path, _ = trained
    out = tmp_path / "feats.npz"
    rc = main(["embed", "--params", json.dumps({"device": "cpu", "progress": False}), "--extractor", "simcover",
               "--weights-path", str(path), "--images", str(train_sets[1]), "--output", str(out)])
    assert rc == 0
    arrays = np.load(out)
    assert arrays["features"].shape == (48, 512)
    assert str(arrays["weights"]) == f"simcover:{sha256_file(path)[:16]}"


def test_report_headline_shows_the_spread(trained, tmp_path):
    _, summary = trained
    path = tmp_path / "simcover.json"
    write_json(path, summary)
    text = simcover_html(path)
    acc = summary["spread"]["heldout"]["dominant_class_accuracy"]
    assert "over 2 seeds: mean ± s.d. (min–max)" in text and "simcover (seed 0, the extractor)" in text
    assert f"{acc['mean']:.4f} ± {acc['sd']:.4f} ({acc['min']:.4f}–{acc['max']:.4f})" in text
    write_json(path, {k: v for k, v in summary.items() if k != "spread"})
    with pytest.raises(DeepsnowError, match=f"{path}: not a summary from 'deepsnow train-simcover'.*spread"):
        simcover_html(path)


def test_seed_count_below_one_is_refused():
    with pytest.raises(DeepsnowError, match="simcover.n_seeds"):
        validate_section("simcover", {"n_seeds": 0})
