"""Atomic writes, safe array files and provenance sidecars."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from deepsnow import DeepsnowError, provenance
from deepsnow.io import atomic_output, load_npz, save_npz, sha256_file, write_json
from helpers import deepsnow


def test_atomic_output_leaves_nothing_on_error(tmp_path: Path):
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list((tmp_path / "sub").iterdir()) == []
    # an earlier complete file survives a failed rewrite
    target.write_text("complete")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "complete"


def test_atomic_output_removes_what_a_killed_writer_left(tmp_path: Path):
    """A writer killed with -9 leaves its hidden temporary; the next write of that target removes it,
    and leaves other files (another target's temporary, files with similar names) alone."""
    stale = tmp_path / ".out[1].npz.k3j2l1.part.npz"
    link = tmp_path / ".out[1].npz.link.part"
    other = tmp_path / ".other.npz.a1b2c3.part.npz"
    keep = tmp_path / "out[1].npz.part-notes.txt"
    for p in (stale, link, other, keep):
        p.write_bytes(b"half")
    save_npz(tmp_path / "out[1].npz", x=np.arange(3))
    assert not stale.exists() and not link.exists()
    assert other.exists() and keep.exists()
    assert load_npz(tmp_path / "out[1].npz")["x"].tolist() == [0, 1, 2]


def test_npz_roundtrip_refuses_pickles_and_names_the_file(tmp_path: Path):
    p = tmp_path / "a.npz"
    save_npz(p, x=np.arange(3), ids=np.array(["a", "b", "c"]))
    out = load_npz(p, required=("x", "ids"))
    assert out["ids"].tolist() == ["a", "b", "c"]
    with pytest.raises(TypeError):
        save_npz(tmp_path / "b.npz", bad=np.array([{"a": 1}], dtype=object))
    pickled = tmp_path / "p.npz"
    np.savez(pickled, bad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DeepsnowError, match="pickle"):
        load_npz(pickled)
    truncated = tmp_path / "t.npz"
    truncated.write_bytes(p.read_bytes()[:40])
    with pytest.raises(DeepsnowError, match=str(truncated)):
        load_npz(truncated)
    with pytest.raises(DeepsnowError, match="missing arrays"):
        load_npz(p, required=("rgb",))


def test_provenance_chain_and_check(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SH_CLIENT_SECRET", "very-secret-value")
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"scene")
    provenance.record([raw], stage="simulate", config={"b": 1, "a": 2}, seed=7, code=("io.py",))
    mid = tmp_path / "mid.json"
    write_json(mid, {"x": 1})
    provenance.record([mid], stage="mask", inputs=[raw], config={"ndsi_min": 0.4})
    top = tmp_path / "top.json"
    write_json(top, {"y": 2})
    provenance.record([top], stage="patches", inputs=[mid], config={"size": 64})

    doc = json.loads(provenance.sidecar_path(top).read_text())
    assert doc["sha256"] == sha256_file(top)
    assert doc["inputs"][0]["sha256"] == sha256_file(mid)
    assert doc["config_sha256"] == provenance.config_hash({"size": 64})
    assert provenance.config_hash({"a": 2, "b": 1}) == provenance.config_hash({"b": 1, "a": 2})
    assert doc["package"]["version"]
    assert "numpy" in doc["libraries"]

    stages = [d["stage"] for d in provenance.chain(top)]
    assert stages == ["patches", "mask", "simulate"]
    assert provenance.check(top) == []

    proc = deepsnow("provenance", top, "--check")
    assert proc.returncode == 0, proc.stderr
    assert "simulate" in proc.stdout and "seed:     7" in proc.stdout

    raw.write_bytes(b"changed scene")
    changed = provenance.check(top)
    assert [c["input"] for c in changed] == [str(raw)]
    proc = deepsnow("provenance", top, "--check")
    assert proc.returncode != 0
    assert f"CHANGED: {raw}" in proc.stdout

    for sidecar in tmp_path.glob("*.prov.json"):
        assert "very-secret-value" not in sidecar.read_text()


def test_provenance_of_file_without_sidecar_is_a_clear_error(tmp_path: Path):
    f = tmp_path / "x.txt"
    f.write_text("x")
    proc = deepsnow("provenance", f)
    assert proc.returncode == 2
    assert "no provenance sidecar" in proc.stderr


def test_every_command_has_help():
    import argparse

    from deepsnow.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = sorted(sub.choices)
    assert {"simulate", "mask", "patches", "split", "provenance"} <= set(commands)
    assert deepsnow("--help").returncode == 0
    for c in commands:
        proc = deepsnow(c, "--help")
        assert proc.returncode == 0 and f"usage: deepsnow {c}" in proc.stdout, c


def test_run_stage_validates_the_section_and_records_the_rules_code_hash(tmp_path: Path):
    """The one stage-command pattern: --params is validated (defaults filled, section checker run)
    before the handler, and every sidecar records the code hash the stage's rule passes
    (code_hash(*STAGE_CODE[code])), the section's seed, and each output's own start time."""
    import argparse

    from deepsnow.commands import Made, stage_command
    from deepsnow.stages import STAGE_CODE

    seen = {}

    def handler(args, params):
        seen.update(params)
        for name in ("a.txt", "b.txt"):
            (tmp_path / name).write_text(name)
            yield Made([tmp_path / name], extra={"name": name}, started=f"start-{name}")

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    stage_command(sub, "fake", handler, section="gan", stage="train", help="h")
    args = parser.parse_args(["fake", "--params", '{"seed": 7}'])
    args.func(args)
    assert seen["seed"] == 7 and seen["ngf"] == 64  # schema defaults filled before the handler ran
    for name in ("a.txt", "b.txt"):
        doc = provenance.load(tmp_path / name)
        assert doc["stage"] == "train" and doc["config_section"] == "gan" and doc["seed"] == 7
        assert doc["package"]["code_sha256"] == provenance.code_hash(*STAGE_CODE["train"])
        assert doc["started"] == f"start-{name}" and doc["extra"] == {"name": name}
    # the section checker runs at the boundary, before the handler
    seen.clear()
    bad = parser.parse_args(["fake", "--params", '{"crop_size": 128, "load_size": 64}'])
    with pytest.raises(DeepsnowError, match=r"key 'gan.crop_size': 128 is larger than gan.load_size \(64\)"):
        bad.func(bad)
    assert not seen


def test_a_commands_sidecar_names_the_code_its_rule_hashes(tmp_path: Path):
    """`deepsnow simulate` then `deepsnow mask`, as their rules run them: each sidecar's code hash is
    the one common.smk passes as the rule's code param."""
    from deepsnow.stages import STAGE_CODE

    params = json.dumps({"simulator": {"size": 64, "n_aois": 2}})
    scenes = {s: tmp_path / f"{s}.tif" for s in ("snowfree", "snow", "truth")}
    proc = deepsnow("simulate", "--params", params, "--aoi", "sim00", *[f"--{s}={p}" for s, p in scenes.items()])
    assert proc.returncode == 0, proc.stderr
    proc = deepsnow("mask", "--scene", scenes["snow"], "--output", tmp_path / "m.tif", "--summary", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    for result, stage in ((scenes["truth"], "simulate"), (tmp_path / "m.json", "mask")):
        assert provenance.load(result)["package"]["code_sha256"] == provenance.code_hash(*STAGE_CODE[stage])


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_results_get_the_mode_open_would_give_them(tmp_path: Path, umask, mode):
    """Every result goes through atomic_output, whose temporary file mkstemp makes owner-only; the
    result must be readable as the user's umask says (collaborators on shared storage), whatever
    the writer: JSON, an .npz, a file a library writes anew at the temporary path."""
    import stat

    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        save_npz(tmp_path / "b.npz", x=np.zeros(3))
        with atomic_output(tmp_path / "c.txt") as tmp:
            tmp.unlink()
            tmp.write_text("rewritten")
    finally:
        os.umask(old)
    for name in ("a.json", "b.npz", "c.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_provenance_check_reports_each_changed_file_once_with_its_hashes(tmp_path: Path):
    """One flipped byte in a file three results were made from is one line: the file, the sha256
    its consumers recorded, the sha256 it has now, and those consumers; a deleted file says so."""
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"scene")
    other = tmp_path / "other.bin"
    other.write_bytes(b"other")
    provenance.record([raw, other], stage="simulate", config={})
    a, b, top = (tmp_path / f"{n}.json" for n in ("a", "b", "top"))
    for result, inputs in ((a, [raw]), (b, [raw, other]), (top, [raw, a, b])):
        write_json(result, {"name": result.name})
        provenance.record([result], stage="mask", inputs=inputs, config={})
    recorded, other_recorded = sha256_file(raw), sha256_file(other)

    raw.write_bytes(b"scenf")
    other.unlink()
    changed = provenance.check(top)
    assert [(c["input"], c["recorded"], c["now"]) for c in changed] == [
        (str(raw), recorded, sha256_file(raw)),
        (str(other), other_recorded, None),
    ]
    assert changed[0]["used_by"] == [str(top), str(a), str(b)]
    assert changed[1]["used_by"] == [str(b)]

    proc = deepsnow("provenance", top, "--check")
    assert proc.returncode == 2
    lines = [line for line in proc.stdout.splitlines() if line.startswith("CHANGED:")]
    assert lines == [
        f"CHANGED: {raw} recorded sha256 {recorded}, now {sha256_file(raw)}; used by {top}, {a}, {b}",
        f"CHANGED: {other} recorded sha256 {other_recorded}, now missing; used by {b}",
    ]
    assert "2 input file(s) changed" in proc.stderr


def test_every_rule_has_a_docstring_and_the_license_is_the_packages(tmp_path: Path):
    """`snakemake --list-rules` shows each rule's docstring under its name (none showed any);
    LICENSE is the MIT text pyproject.toml declares; the README says how to follow training."""
    import re
    import subprocess
    import tomllib

    from helpers import BIN, REPO, copy_workflow, env_with_venv

    work = copy_workflow(tmp_path / "wf")
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--list-rules"], cwd=work, env=env_with_venv(), capture_output=True, text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    # one line per rule: "name" alone, or "name (its docstring)"
    rules = dict(re.fullmatch(r"(\w+)(?: \((.*)\))?", line).groups() for line in proc.stdout.splitlines())
    assert {"all", "simulate", "download", "train", "figure"} <= set(rules)
    assert [name for name, doc in rules.items() if not doc] == []

    license_text = (REPO / "LICENSE").read_text()
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert declared == "MIT" and license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the deepsnow authors" in license_text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in license_text
    assert "tail -f results/<run>/logs/train.log" in (REPO / "README.md").read_text()
