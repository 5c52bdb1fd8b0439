"""Shared fixtures; the plain helpers they use are in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import copy_data_half, copy_workflow, snakemake


@pytest.fixture(scope="session")
def test_config_run(tmp_path_factory) -> Path:
    """configs/test.yaml run once, undisturbed, to its final targets, shared by every test module
    that reads a finished run (test_workflow, test_faults_runs, test_slurm). Read it, and run only
    commands that leave its results as they are (dry runs, --report); to change a run, copy_run()."""
    work = copy_workflow(tmp_path_factory.mktemp("test-config-run"))
    snakemake(work, "--configfile", "configs/test.yaml")
    return work


@pytest.fixture(scope="session")
def cut_config_run(test_config_run, tmp_path_factory) -> Path:
    """configs/test.yaml with configs/test_cut.yaml (gan.model: cut) run to its final targets from the
    shared run's data half (copy_data_half): train, samples, metrics, figures, report, products.
    What does not depend on the model stays (the real features, simcover, the ladders: same data,
    same sections, same code), so the run makes only what the model changes."""
    keep = ("features/real_*", "features/simcover.*", "metrics/validity.csv*")
    work = copy_data_half(test_config_run, tmp_path_factory.mktemp("cut-config-run") / "wf", keep=keep)
    snakemake(work, "--configfile", "configs/test.yaml", "configs/test_cut.yaml")
    return work
