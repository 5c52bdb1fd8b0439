"""`deepsnow report-pages`: the HTML pages that put the run's tables, its config and its headline
numbers into the Snakemake report (the whole report of a real run: tests/test_workflow.py)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import deepsnow

METRICS = (
    "epoch,direction,fid,frd,crd,kid_mean,kid_std,rf_logloss_mean,rf_auc_mean,inception_weights,resnet_weights,"
    "inception_pretrained,resnet_pretrained,note\n"
    "1,AtoB,9.2095573,53886.8,0.0020,0.0124,0.0007,0.13,1.0,random-seed0,random-seed0,false,false,<b>x</b>\n"
    "2,AtoB,5.5946612,18620.7,0.0040,0.0070,0.0011,0.43,0.88,random-seed0,random-seed0,false,false,\n"
    "2,BtoA,0.8495181,4185.65,0.0020,0.0008,0.0003,0.63,0.77,random-seed0,random-seed0,false,false,\n"
)


VALIDITY = (
    "mode,ladder,metric,level,value,rho,sensitivity\n"
    "half,blur,fid,0.0,1.0,0.94,0.4\n"
    "half,blur,fid,0.5,2.0,0.94,0.4\n"
    "half,noise,fid,0.0,1.0,,\n"
    "half,blur,precision_x,0.0,0.9,1.0,\n"
    "half,noise,precision_x,0.0,0.9,0.5,0.2\n"
)


def inputs(tmp_path: Path) -> dict[str, Path]:
    files = {
        "metrics": tmp_path / "metrics.csv",
        "losses": tmp_path / "losses.csv",
        "artifacts": tmp_path / "artifacts.csv",
        "validity": tmp_path / "validity.csv",
        "summary": tmp_path / "summary.json",
    }
    files["metrics"].write_text(METRICS)
    files["validity"].write_text(VALIDITY)
    files["losses"].write_text("epoch,G_A\n1,0.5\n2,0.25\n")
    files["artifacts"].write_text("source,epoch,checkerboard_score\nepoch,1,2.0\nepoch,2,0.9\n")
    summary = {"counts": {"trainA": 40, "trainB": 44, "testA": 25, "testB": 9}, "train_aois": ["a1"], "test_aois": ["a2"]}
    files["summary"].write_text(json.dumps({**summary, "shards": [{"aoi": "a1", "patches": 15}]}))
    return files


def run(tmp_path: Path, files: dict, config: str = '{"run": "demo", "gan": {"n_epochs": 2}}'):
    args = [x for name, path in files.items() for x in (f"--{name}", path)]
    return deepsnow("report-pages", *args, "--config-json", config, "--outdir", tmp_path / "report")


def test_every_table_becomes_an_html_page_and_the_headline_has_the_last_epoch(tmp_path: Path):
    proc = run(tmp_path, inputs(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "report"
    pages = {p.stem: p.read_text() for p in out.glob("*.html")}
    assert set(pages) == {"metrics", "losses", "artifacts", "validity", "dataset", "config", "headline"}
    # validity: one row per mode and metric, rho (sensitivity) per ladder, the lowest rho
    assert pages["validity"].count("<tr>") == 3
    assert ">0.94 (0.4)</td>" in pages["validity"] and ">n/a (none)</td>" in pages["validity"]
    assert ">1.00 (none)</td>" in pages["validity"] and ">0.50 (0.2)</td>" in pages["validity"]
    assert pages["metrics"].count("<tr>") == 4 and "9.20956" in pages["metrics"]
    assert "&lt;b&gt;x&lt;/b&gt;" in pages["metrics"] and "<b>x</b>" not in pages["metrics"]  # escaped
    assert pages["losses"].count("<tr>") == 3 and pages["artifacts"].count("<tr>") == 3
    assert ">counts.trainA</td>" in pages["dataset"] and ">shards[0].patches</td>" in pages["dataset"]
    assert "n_epochs: 2" in pages["config"] and "run: demo" in pages["config"]
    head = pages["headline"].split("<!-- headline -->")[1].split("<!-- /headline -->")[0]
    assert "Run demo, epoch 2 (the last saved)" in head and "<style" not in head  # inline styles only
    assert "5.59466" in head and "0.849518" in head and "9.20956" not in head  # epoch 2 only, both directions
    assert "0.007 ± 0.0011" in head and "not pretrained" in head
    assert all(f">{n}</td>" in head for n in (40, 44, 25, 9))
    assert all((out / f"{name}.html.prov.json").exists() for name in pages)  # provenance, as every result


def test_a_missing_or_broken_table_is_a_clear_error(tmp_path: Path):
    files = inputs(tmp_path)
    files["losses"].write_text("")
    proc = run(tmp_path, files)
    assert proc.returncode == 2 and f"{files['losses']}: empty CSV table" in proc.stderr
    files = inputs(tmp_path)
    files["summary"].write_text("[1, 2]")
    proc = run(tmp_path, files)
    assert proc.returncode == 2 and f"{files['summary']}: expected a JSON object" in proc.stderr
    proc = run(tmp_path, inputs(tmp_path), config="{oops")
    assert proc.returncode == 2 and "--config-json: not JSON" in proc.stderr
    assert not (tmp_path / "report" / "headline.html").exists()
    files = inputs(tmp_path)
    files["validity"].write_text("mode,metric\nhalf,fid\n")
    proc = run(tmp_path, files)
    assert proc.returncode == 2 and "not a metric validity table (no ladder, rho, sensitivity column)" in proc.stderr


def test_a_run_without_ladders_gets_a_validity_page_saying_why(tmp_path: Path):
    files = inputs(tmp_path)
    del files["validity"]  # by hand: the workflow passes every run's --validity
    proc = run(tmp_path, files)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "report" / "validity.html").read_text()
    assert "without metric validity ladders" in page and "--validity" in page
    assert "<tr>" not in page
    prov = json.loads((tmp_path / "report" / "validity.html.prov.json").read_text())
    assert [Path(i["path"]).name for i in prov["inputs"]] == ["metrics.csv", "losses.csv", "artifacts.csv", "summary.json"]
