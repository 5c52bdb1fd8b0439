"""The whole-run progress line of `deepsnow train` (train.log): epoch k of N, this run's rate, ETA."""

from __future__ import annotations

import logging
import re

from deepsnow.gan import train as train_mod
from deepsnow.gan.train import run_progress
from test_gan_train import gan_params, make_domain

LINE = re.compile(
    r"run: epoch (\d+) of (\d+) \((\d+\.\d) %\), (\d+) epochs? in (\d+:\d\d:\d\d) this run "
    r"\((\d+\.\d) s/epoch, (\d+\.\d\d) it/s\), (ETA (\d+:\d\d:\d\d) \(about \d{4}-\d\d-\d\d \d\d:\d\d UTC\)|done)"
)


def test_the_eta_is_the_epochs_left_at_this_runs_rate():
    line = run_progress(3, 200, 2, 70.0, 44, now=0)
    assert line == (
        "run: epoch 3 of 200 (1.5 %), 2 epochs in 0:01:10 this run (35.0 s/epoch, 1.26 it/s), "
        "ETA 1:54:55 (about 1970-01-01 01:54 UTC)"
    )
    # resumed at epoch 101: the rate is this run's (1 epoch in an hour), not the whole history's
    assert "ETA 99:00:00" not in run_progress(101, 200, 1, 3600.0, 10, now=0)
    assert "ETA 4 days, 3:00:00 (about 1970-01-05 03:00 UTC)" in run_progress(101, 200, 1, 3600.0, 10, now=0)
    assert run_progress(200, 200, 200, 9e5, 44).endswith("done")


def test_training_logs_one_progress_line_per_epoch_also_when_resumed(tmp_path, caplog):
    a = make_domain(tmp_path / "trainA.npz", 5, seed=1, prefix="a")
    b = make_domain(tmp_path / "trainB.npz", 4, seed=2, prefix="b")
    d = tmp_path / "run"
    args = (gan_params(), a, b, d / "checkpoints", d / "state", d / "losses.csv", d / "losses_iter.csv")
    caplog.set_level(logging.INFO, logger="deepsnow")
    train_mod.train(*args, progress=False, max_epochs=2)
    train_mod.train(*args, progress=False)  # resumes at epoch 3 of 4
    found = [LINE.search(r.getMessage()) for r in caplog.records]
    found = [m for m in found if m]
    assert [(m[1], m[2], m[4]) for m in found] == [("1", "4", "1"), ("2", "4", "2"), ("3", "4", "1"), ("4", "4", "2")]
    assert [m[8] == "done" for m in found] == [False, False, False, True]
