"""The conda environments pin the same versions as pyproject.toml."""

from __future__ import annotations

import re
import tomllib

import yaml

from helpers import REPO


def pyproject_pins() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = {}
    for req in data["project"]["dependencies"]:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", req).groups()
        pins[name.lower()] = version
    return pins


def env_pins(path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pins = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*=?=\s*([^\s]+)", item)
            if m:
                pins[m.group(1).lower()] = m.group(2)
    return pins


def test_every_pyproject_dependency_is_pinned():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    for req in data["project"]["dependencies"]:
        assert "==" in req, f"pyproject.toml: {req} is not pinned with =="


def test_envs_agree_with_pyproject():
    pins = pyproject_pins()
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert {p.stem for p in envs} >= {"data", "gan", "eval", "figures"}
    for path in envs:
        for name, version in env_pins(path).items():
            if name == "python":
                continue
            assert name in pins, f"{path.name}: {name} is not a dependency in pyproject.toml"
            assert version == pins[name], f"{path.name}: {name}=={version} but pyproject.toml pins {pins[name]}"


def test_every_rule_declares_a_conda_env():
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = len(re.findall(r"^rule \w+:", text, flags=re.M))
        condas = len(re.findall(r"^\s+conda:", text, flags=re.M))
        assert condas == rules, f"{smk.name}: {rules} rules but {condas} conda: directives"
        for env in re.findall(r'"\.\./\.\./envs/([\w.]+)"', text):
            assert (REPO / "envs" / env).exists(), f"{smk.name}: envs/{env} does not exist"
