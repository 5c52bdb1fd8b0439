"""The conda environments' post-deploy scripts (envs/*.post-deploy.sh) install a `deepsnow` that
runs the package of the workflow each job runs in, never one clone's code for another clone's jobs
(a shared --conda-prefix gives every clone the same environment). Runs the scripts without conda:
CONDA_PREFIX pointed at a scratch folder, this interpreter as the environment's python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO, copy_workflow

SCRIPTS = sorted((REPO / "envs").glob("*.post-deploy.sh"))


def deploy(prefix: Path) -> Path:
    """Run one post-deploy script as Snakemake does (its shebang's interpreter, env activated)."""
    env = dict(os.environ, CONDA_PREFIX=str(prefix))
    proc = subprocess.run(["bash", str(SCRIPTS[0])], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return prefix / "bin" / "deepsnow"


def launcher_env() -> dict:
    """An activated environment: its bin folder, holding `python`, first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("PYTHONPATH", None)
    return env


def test_every_env_has_the_same_script_and_none_installs_a_checkout():
    assert {p.name.split(".")[0] for p in SCRIPTS} == {p.stem for p in (REPO / "envs").glob("*.yaml")}
    texts = {p.read_text() for p in SCRIPTS}
    assert len(texts) == 1
    assert {p.resolve() for p in SCRIPTS} == {(REPO / "envs" / "post-deploy.sh").resolve()}  # one file, linked
    text = texts.pop()
    assert "pip install" not in text and " -e " not in text
    assert all(os.access(p, os.X_OK) for p in SCRIPTS)


def test_each_clone_runs_its_own_code_from_one_environment(tmp_path: Path):
    deepsnow = deploy(tmp_path / "env")
    assert os.access(deepsnow, os.X_OK)
    clones = {}
    for name in ("clone1", "clone2"):
        work = copy_workflow(tmp_path / name)
        init = work / "workflow" / "deepsnow" / "__init__.py"
        init.write_text(init.read_text().replace('__version__ = "', f'__version__ = "{name}-'))
        clones[name] = work
    for name, work in clones.items():
        proc = subprocess.run([str(deepsnow), "--version"], cwd=work, env=launcher_env(), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"deepsnow {name}-"), proc.stdout
    # the subcommands load from that clone too
    proc = subprocess.run(
        [str(deepsnow), "provenance", "--help"], cwd=clones["clone2"], env=launcher_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0 and "usage: deepsnow provenance" in proc.stdout, proc.stderr


def test_outside_a_workflow_folder_it_says_so(tmp_path: Path):
    deepsnow = deploy(tmp_path / "env")
    proc = subprocess.run([str(deepsnow), "--version"], cwd=tmp_path, env=launcher_env(), capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"no workflow/deepsnow/ in {tmp_path}" in proc.stderr


def test_the_script_refuses_to_run_outside_an_environment(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "CONDA_PREFIX"}
    proc = subprocess.run(["bash", str(SCRIPTS[0])], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "CONDA_PREFIX" in proc.stderr
