"""Shared fixtures; the plain helpers they use are in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import copy_workflow, snakemake


@pytest.fixture(scope="session")
def test_config_run(tmp_path_factory) -> Path:
    """configs/test.yaml run once, undisturbed, to its final targets, shared by every test module
    that reads a finished run (test_workflow, test_faults_runs, test_slurm). Read it, and run only
    commands that leave its results as they are (dry runs, --report); to change a run, copy_run()."""
    work = copy_workflow(tmp_path_factory.mktemp("test-config-run"))
    snakemake(work, "--configfile", "configs/test.yaml")
    return work
