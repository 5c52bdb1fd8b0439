"""Sentinel Hub credentials and tokens never reach a file, a log or an error message.

The download stage runs against the mock Sentinel Hub of tests/mock_servers.py
(a real HTTP server on 127.0.0.1) with distinctive random credentials and a
distinctive OAuth token issued by the mock. Then every byte under the copied
project (``results/``, ``.snakemake/`` with its logs, metadata and markers, the
rule logs, provenance sidecars, GeoTIFFs, the members of ``.npz`` archives) and
Snakemake's own stdout/stderr is searched for the client id, the secret and the
token, raw and in the encodings they travel in (URL-encoded form bodies, HTTP
Basic ``base64(id:secret)``, JSON escapes). The jobs log at DEBUG level (a
``deepsnow`` shim on PATH adds ``--log-level DEBUG``), so requests-oauthlib's and
urllib3's debug lines are in the logs too.

Every zero-hit search is made meaningful first: the mock must have issued the
token and seen it authorise requests, and the searcher must find each form in a
canary file.

Remote API errors (401/403/429/500 whose bodies echo the bearer token, the
client id or the posted secret; a token endpoint refusing a bad secret) make
``deepsnow download`` exit 2 with one line naming what failed, the HTTP status,
the area and the season, and none of the secrets.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import string
import subprocess
import sys
import urllib.parse
import zipfile
from pathlib import Path

import pytest
import rasterio
import yaml

from helpers import BIN, copy_workflow, env_with_venv
from mock_servers import MockSentinelHub, Scene, inner_bbox

pytest.importorskip("bigearthnet_common")
pytest.importorskip("sentinelhub")
pytestmark = pytest.mark.filterwarnings("ignore:Download rate limit hit")

AUSTRIA = "S2A_MSIL2A_20170613T101031_87_48"
FINLAND = "S2B_MSIL2A_20180204T94161_57_38"
ALNUM = string.ascii_letters + string.digits
SEASONS = {
    "snowfree": {"start": "2021-07-01", "end": "2021-08-31"},
    "snow": {"start": "2021-01-01", "end": "2021-02-28"},
}


def rand(n: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


class Creds:
    """Distinctive random credentials (32 characters each) and the mock's token format.

    The secret holds ``+``, ``/`` and ``=`` so that its URL-encoded, form-encoded and
    JSON-escaped forms differ from the raw value.
    """

    def __init__(self):
        self.client_id = "cid" + rand(29)
        self.client_secret = rand(14) + "+/" + rand(14) + "=="
        self.token_prefix = "tok" + rand(29)
        assert len(self.client_id) == len(self.client_secret) == 32

    def needles(self, tokens=()) -> dict[str, bytes]:
        """Every form to search for, by a label."""
        out = {}
        values = {"client id": self.client_id, "client secret": self.client_secret}
        values.update({f"token {t}": t for t in tokens})
        values["token prefix"] = self.token_prefix  # any token the mock issued, whatever its number
        for label, v in values.items():
            out[f"{label} (raw)"] = v
            out[f"{label} (url-encoded)"] = urllib.parse.quote(v, safe="")
            out[f"{label} (form-encoded)"] = urllib.parse.quote_plus(v)
            out[f"{label} (json-escaped)"] = json.dumps(v)[1:-1].replace("/", "\\/")
            out[f"{label} (base64)"] = base64.b64encode(v.encode()).decode()
            out[f"{label} (base64url)"] = base64.urlsafe_b64encode(v.encode()).decode().rstrip("=")
        basic = f"{self.client_id}:{self.client_secret}".encode()
        out["basic auth base64(id:secret)"] = base64.b64encode(basic).decode()
        out["basic auth base64(url-encoded id:secret)"] = base64.b64encode(
            f"{urllib.parse.quote(self.client_id, safe='')}:{urllib.parse.quote(self.client_secret, safe='')}".encode()
        ).decode()
        return {k: v.encode() for k, v in out.items()}


def blobs(path: Path):
    """``(where, bytes)`` of a file, and of each member when it is a zip (``.npz``) archive."""
    data = path.read_bytes()
    yield str(path), data
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for name in zf.namelist():
                yield f"{path}!{name}", zf.read(name)


def find_secrets(roots, needles: dict[str, bytes], texts: dict[str, str] | None = None) -> list[str]:
    """``"<where>: <label>"`` for every occurrence of a needle in every file under ``roots`` and in ``texts``."""
    hits = []
    # numpy stores str arrays as UTF-32: search .npy members in that encoding too
    wide = {label: n.decode().encode("utf-32-le") for label, n in needles.items()}
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            for where, data in blobs(f):
                hits += [f"{where}: {label}" for label, n in needles.items() if n in data or wide[label] in data]
    for where, text in (texts or {}).items():
        hits += [f"{where}: {label}" for label, n in needles.items() if n in text.encode()]
    return hits


def test_the_searcher_finds_every_form(tmp_path):
    """The canary: each encoded form, even inside a compressed .npz, is found; so zero hits means zero."""
    import numpy as np

    creds = Creds()
    needles = creds.needles(tokens=[creds.token_prefix + "7"])
    for label, needle in needles.items():
        d = tmp_path / label.replace(" ", "_").replace("/", "_")
        d.mkdir()
        (d / "plain.log").write_bytes(b"before " + needle + b" after")
        np.savez_compressed(d / "archive.npz", meta=np.array([f"x {needle.decode()} y"]))
        np.savez_compressed(d / "bytes.npz", meta=np.array([b"x " + needle + b" y"]))
        hits = find_secrets([d], {label: needle})
        assert len(hits) == 3 and any("archive.npz!meta.npy" in h for h in hits), (label, hits)
        assert any("bytes.npz!meta.npy" in h for h in hits), (label, hits)
    assert find_secrets([tmp_path], {"absent": b"not-a-secret-" + rand(20).encode()}) == []
    assert find_secrets([], {"x": b"abc"}, {"stderr": "..abc.."}) == ["stderr: x"]


# --------------------------------------------------------------------------- fixtures


# The BigEarthNet pixels the mock serves, and the isolation every Sentinel Hub test needs
# (no ~/.config writes, plain-http OAuth for the mock, no cached sessions between tests).
from test_download_sentinelhub import _isolated, ben  # noqa: E402,F401  (pytest fixtures)


@pytest.fixture
def creds():
    return Creds()


@pytest.fixture
def mock_sh(ben, creds):
    """A mock Sentinel Hub knowing ``creds``, with a snow-free and a snow scene over two areas."""
    aut, fin = ben[AUSTRIA], ben[FINLAND]
    scenes = [
        Scene("S2A_lake_summer", "2021-07-10T10:20:31Z", 4.0, aut),
        Scene("S2A_lake_winter", "2021-01-20T10:20:31Z", 3.0, aut),
        Scene("S2B_north_summer", "2021-07-12T09:41:00Z", 2.0, fin),
        Scene("S2B_north_winter", "2021-02-04T09:41:00Z", 1.0, fin),
    ]
    sh = MockSentinelHub(
        scenes, client_id=creds.client_id, client_secret=creds.client_secret, token_format=creds.token_prefix + "{n}"
    ).start()
    sh.areas = {"lake": inner_bbox(aut), "north": inner_bbox(fin)}
    yield sh
    sh.stop()


def data_section(sh, **sentinelhub) -> dict:
    return {
        "source": "sentinelhub",
        "aois": [{"name": n, "bbox": b} for n, b in sh.areas.items()],
        "seasons": SEASONS,
        "sentinelhub": sh.config(max_rate_limit_retries=3, **sentinelhub),
    }


def debug_shim(folder: Path) -> Path:
    """A ``deepsnow`` on PATH that runs the real command with ``--log-level DEBUG``."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "deepsnow"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m deepsnow.cli --log-level DEBUG "$@"\n')
    shim.chmod(0o755)
    return folder


def write_profile(home_config: Path, name: str, creds: Creds) -> Path:
    path = home_config / "sentinelhub" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[{name}]\nsh_client_id = "{creds.client_id}"\nsh_client_secret = "{creds.client_secret}"\n')
    return path


def run_env(tmp_path: Path, creds: Creds, how: str) -> dict:
    """Environment of a run: credentials from the environment, or from a profile in a scratch HOME."""
    env = {k: v for k, v in env_with_venv().items() if k not in ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "SH_PROFILE")}
    env["PATH"] = f"{debug_shim(tmp_path / 'shim')}{os.pathsep}{env['PATH']}"
    env["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    env.pop("XDG_CONFIG_HOME", None)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    if how == "env":
        env.update(SH_CLIENT_ID=creds.client_id, SH_CLIENT_SECRET=creds.client_secret)
    else:
        write_profile(home / ".config", "leaktest", creds)  # sentinelhub's default location under HOME
    return env


# --------------------------------------------------------------------------- the workflow


@pytest.mark.parametrize("how", ["env", "profile"])
def test_workflow_leaves_no_secret_anywhere(mock_sh, creds, tmp_path, how):
    sh = mock_sh
    work = copy_workflow(tmp_path / "wf")
    sentinelhub = {"profile": "leaktest"} if how == "profile" else {}
    cfg = {
        "run": "leak",
        "split": {"test_aois": []},
        "features": {"extractors": ["inception", "resnet50"]},  # the demo's simcover needs simulator labels
        "patches": {"size": 32, "stride": 32},
        "data": data_section(sh, **sentinelhub),
    }
    (work / "leak.yaml").write_text(yaml.safe_dump(cfg))
    env = run_env(tmp_path, creds, how)
    targets = [
        f"results/leak/{kind}/{aoi}/{season}.{ext}"
        for aoi in sh.areas
        for season in ("snowfree", "snow")
        for kind, ext in (("scenes", "tif"), ("masks", "tif"), ("patches", "npz"))
    ]
    cmd = [str(BIN / "snakemake"), *targets, "--cores", "2", "--printshellcmds", "--verbose", "--show-failed-logs"]
    cmd += ["--configfile", "leak.yaml"]  # last: --configfile takes every argument after it
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]

    # the credentials and the issued tokens were really used: the searches below can find something
    assert sh.count("token", 200) >= 1 and len(sh.issued_tokens) == sh.count("token", 200)
    assert set(sh.issued_tokens) <= sh.used_tokens and sh.count("process", 200) >= 4
    assert all(t.startswith(creds.token_prefix) for t in sh.issued_tokens)
    # the logs are as chatty as they get: DEBUG lines of deepsnow, sentinelhub, requests-oauthlib, urllib3
    dl_log = (work / "results/leak/logs/download/lake_snow.log").read_text()
    for word in (" DEBUG sentinelhub", " DEBUG requests_oauthlib", " DEBUG urllib3", " INFO deepsnow.download"):
        assert word in dl_log, (word, dl_log[-3000:])
    assert list((work / ".snakemake/log").glob("*.snakemake.log"))
    assert any((work / ".snakemake/metadata").iterdir())
    provs = list((work / "results/leak").rglob("*.prov.json"))
    assert len(provs) >= 12 and "deepsnow download" in proc.stdout + proc.stderr  # -p printed the commands
    if how == "profile":  # the searcher would have found the secret, where it really is
        assert find_secrets([tmp_path / "home"], creds.needles())

    needles = creds.needles(tokens=sh.issued_tokens)
    texts = {"snakemake stdout": proc.stdout, "snakemake stderr": proc.stderr}
    assert find_secrets([work], needles, texts) == []

    # provenance sidecars and GeoTIFF tags, parsed (not only as bytes)
    parsed = {}
    for p in provs:
        parsed[str(p)] = json.dumps(json.loads(p.read_text()))
    for t in (work / "results/leak").rglob("*.tif"):
        with rasterio.open(t) as ds:
            tags = {ns: ds.tags(ns=ns) for ns in [None, *ds.tag_namespaces()]}
            tags.update({f"band{i}": ds.tags(i) for i in range(1, ds.count + 1)})
        parsed[str(t)] = json.dumps(tags)
    assert any("DEEPSNOW_AOI" in v for v in parsed.values())
    assert find_secrets([], needles, parsed) == []

    # a rerun asks the mock for nothing (jobs whose code changed meanwhile in a shared checkout may
    # rerun, from the request cache) and shows no secret either
    n = len(sh.log)
    again = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-5000:]
    assert len(sh.log) == n
    assert find_secrets([], needles, {"rerun stdout": again.stdout, "rerun stderr": again.stderr}) == []


def test_failed_workflow_job_shows_the_error_without_secrets(mock_sh, creds, tmp_path):
    """A job failing on an echoing 403: Snakemake's output, the log and .snakemake/ hold no secret."""
    sh = mock_sh
    sh.faults["process"] = ["403-echo"]
    work = copy_workflow(tmp_path / "wf")
    cfg = {
        "run": "leak",
        "split": {"test_aois": []},
        "data": data_section(sh),
        "features": {"extractors": ["inception", "resnet50"]},  # the demo's simcover needs simulator labels
    }
    (work / "leak.yaml").write_text(yaml.safe_dump(cfg))
    env = run_env(tmp_path, creds, "env")
    cmd = [str(BIN / "snakemake"), "results/leak/scenes/lake/snowfree.tif", "--cores", "1", "-p", "--verbose"]
    cmd += ["--show-failed-logs", "--configfile", "leak.yaml"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert sh.count("process", 403) == 1 and sh.echoed and sh.issued_tokens[0] in sh.echoed[0], out[-4000:]
    log = (work / "results/leak/logs/download/lake_snowfree.log").read_text()
    line = [l for l in log.splitlines() if l.startswith("deepsnow download: error:")]
    assert len(line) == 1, log[-3000:]
    assert "area 'lake', season 'snowfree'" in line[0] and "HTTP 403" in line[0] and "Process API" in line[0], line
    assert line[0] in out  # --show-failed-logs shows it
    assert not (work / "results/leak/scenes/lake/snowfree.tif").exists()
    needles = creds.needles(tokens=sh.issued_tokens)
    assert find_secrets([work], needles, {"snakemake stdout": proc.stdout, "snakemake stderr": proc.stderr}) == []


# --------------------------------------------------------------------------- remote API errors


def cli_download(sh, env, tmp_path, **sentinelhub):
    data = data_section(sh, **sentinelhub)
    out = tmp_path / "out" / "lake" / "snowfree.tif"
    cmd = [sys.executable, "-m", "deepsnow.cli", "--log-level", "DEBUG", "download", "--params", json.dumps(data)]
    cmd += ["--aoi", "lake", "--season", "snowfree", "--output", str(out), "--cache", str(tmp_path / "cache")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    return proc, out


def _wrong_secret(env, sh, creds):
    env["SH_CLIENT_SECRET"] = "wrong" + rand(27)
    return env["SH_CLIENT_SECRET"]


ERROR_ROWS = [
    # id, endpoint, faults queued there, change to the environment, words the error line must hold
    ("process-403-echo", "process", ["403-echo"], None, ["Process API request", "HTTP 403", "Forbidden"]),
    ("process-401-echo-twice", "process", ["401-echo", "401-echo"], None, ["Process API request", "HTTP 401"]),
    ("process-500-echo-persistent", "process", ["500-echo"] * 3, None, ["Process API request", "HTTP 500"]),
    ("process-429-echo-persistent", "process", ["429-echo"] * 3, None, ["Process API request", "HTTP 429"]),
    ("catalog-403-echo", "catalog", ["403-echo"], None, ["catalogue search", "HTTP 403"]),
    ("catalog-500-echo-persistent", "catalog", ["500-echo"] * 3, None, ["catalogue search", "HTTP 500"]),
    ("token-401-echo", "token", ["401-echo"], None, ["authentication", "refused the credentials", "invalid_client"]),
    ("token-500-echo-persistent", "token", ["500-echo"] * 3, None, ["authentication", "HTTP 500"]),
    ("token-bad-secret", "token", [], _wrong_secret, ["authentication", "refused the credentials", "invalid_client"]),
]


@pytest.mark.parametrize(
    "row, how",
    [(r, how) for r in ERROR_ROWS for how in ("env", "profile") if how == "env" or r[3] is None],
    ids=[f"{r[0]}-{how}" for r in ERROR_ROWS for how in ("env", "profile") if how == "env" or r[3] is None],
)
def test_remote_error_is_clear_and_secret_free(mock_sh, creds, tmp_path, row, how):
    """Credentials from the environment or from a profile (the bad secret only from the environment)."""
    name, endpoint, faults, tweak, words = row
    sh = mock_sh
    sh.faults[endpoint] = list(faults)
    env = run_env(tmp_path, creds, how)
    extra = [tweak(env, sh, creds)] if tweak else []
    proc, out = cli_download(sh, env, tmp_path, **({"profile": "leaktest"} if how == "profile" else {}))
    stderr = proc.stderr
    assert proc.returncode == 2, stderr[-4000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("deepsnow download: error: area 'lake', season 'snowfree': "), stderr[-3000:]
    for w in words:
        assert w in last, (w, last)
    assert "Traceback" not in stderr and not out.exists()

    # the service saw (and, for the echo faults, repeated) the secrets we must not show
    if endpoint == "token":
        assert sh.count("token") >= 1 and not sh.used_tokens
        if faults:
            assert any(creds.client_secret in e or urllib.parse.quote_plus(creds.client_secret) in e for e in sh.echoed)
        else:  # the wrong secret was sent and refused
            assert sh.count("token", 401) == 1
    else:
        assert sh.issued_tokens and set(sh.issued_tokens) <= sh.used_tokens
        assert any(sh.issued_tokens[0] in e and creds.client_id in e for e in sh.echoed)
    needles = creds.needles(tokens=sh.issued_tokens)
    for i, value in enumerate(extra):
        needles[f"wrong secret {i}"] = value.encode()
        needles[f"wrong secret {i} (form-encoded)"] = urllib.parse.quote_plus(value).encode()
    assert (
        find_secrets([tmp_path / "out", tmp_path / "cache"], needles, {"stderr": stderr, "stdout": proc.stdout}) == []
    )
    assert " DEBUG requests_oauthlib" in stderr  # DEBUG output was on: the search covered chatty logs


def test_download_error_objects_hold_no_secret(mock_sh, creds, tmp_path, monkeypatch):
    """In-process: the DownloadError's text, its args and its context carry no token."""
    from deepsnow.config import validate_section
    from deepsnow.data.download import DownloadError, download_scene

    sh = mock_sh
    monkeypatch.setenv("SH_CLIENT_ID", creds.client_id)
    monkeypatch.setenv("SH_CLIENT_SECRET", creds.client_secret)
    sh.faults["process"] = ["403-echo"]
    params = validate_section("data", data_section(sh))
    with pytest.raises(DownloadError) as err:
        download_scene(params, "lake", "snowfree", tmp_path / "s.tif")
    exc = err.value
    assert sh.echoed and sh.issued_tokens[0] in sh.echoed[0]
    texts = {"str": str(exc), "repr": repr(exc), "args": repr(exc.args)}
    chain = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    texts["chain"] = repr(chain)
    assert "HTTP 403" in str(exc)
    assert find_secrets([], creds.needles(tokens=sh.issued_tokens), texts) == []
