"""``deepsnow report-pages``: the run's tables as HTML pages for the Snakemake report.

Snakemake's HTML report only offers CSV and JSON files for download; these pages show them in
the report itself: one HTML table per CSV (``metrics.csv``, ``losses.csv``, ``artifacts.csv``),
the metric validity table (``validity.csv``) as rho and sensitivity per metric and ladder, the dataset
summary (``summary.json``) as a table, the merged config as YAML, and the headline
numbers (the last epoch's metrics per direction and the dataset counts), which the report's
front page (``workflow/report/workflow.rst``) also shows. Cells are HTML-escaped; the pages are
self-contained (inline CSS, no scripts), so they open offline.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import yaml

from deepsnow import DeepsnowError
from deepsnow.commands import Made, path_options, stage_command
from deepsnow.io import atomic_output

#: page name -> (option of its source file, title)
PAGES = {
    "metrics": ("metrics", "Metrics per epoch and direction (metrics.csv)"),
    "losses": ("losses", "Training losses per epoch (losses.csv)"),
    "artifacts": ("artifacts", "Artifact measures per epoch, Figure 7 (artifacts.csv)"),
    "validity": ("validity", "Metric validity: rho (sensitivity) per metric and degradation ladder, Figure 12 (validity.csv)"),
    "dataset": ("summary", "Dataset (summary.json)"),
    "config": ("config", "Configuration of this run (merged config, YAML)"),
    "headline": (None, "Headline numbers"),
}
#: headline metrics: column -> label (KID shows mean ± std)
HEADLINE = {
    "fid": "FID",
    "frd": "FRD",
    "crd": "CRD",
    "kid_mean": "KID",
    "rf_logloss_mean": "RF log loss (ln 2 = chance)",
    "rf_auc_mean": "RF AUC",
    "paired_l1": "paired L1 (vs snowfall truth)",
    "paired_l1_season": "paired L1 (vs snow-season truth)",
}
#: simcover's held-out measures on the headline page: summary key -> label
SIMCOVER_HEADLINE = {
    "class_fraction_mae": "class-fraction MAE",
    "snow_fraction_mae": "snow-fraction MAE",
    "dominant_class_accuracy": "dominant-class accuracy",
}
STYLE = (
    "<style>body{font-family:sans-serif;font-size:13px;margin:8px}"
    "table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "th{background:#eee;position:sticky;top:0}td.s,th.s{text-align:left}"
    "pre{background:#f6f6f6;padding:8px;font-size:12px}p.n{color:#555}</style>"
)


#: inline styles of the headline fragment, which the front page embeds (a <style> block would
#: restyle the whole report)
INLINE = {
    "table": ' style="border-collapse:collapse;margin:6px 0"',
    "th": ' style="border:1px solid #ccc;padding:2px 8px;background:#eee"',
    "td": ' style="border:1px solid #ccc;padding:2px 8px;text-align:right"',
}
#: the front page (workflow/report/workflow.rst) embeds what is between these two markers
FRAGMENT = ("<!-- headline -->", "<!-- /headline -->")


def cell(value, inline: bool = False) -> str:
    """A table cell: numbers to 6 significant digits (the CSV keeps full precision)."""
    text = "" if value is None else str(value)
    style = INLINE["td"] if inline else ""
    try:
        number = float(text)
    except ValueError:
        return f'<td class="s"{style}>{html.escape(text)}</td>'
    shown = text if text.lstrip("-").isdigit() else f"{number:.6g}"
    return f"<td{style}>{html.escape(shown)}</td>"


def table_html(header: list[str], rows: list[list], inline: bool = False) -> str:
    th, table = (INLINE["th"], INLINE["table"]) if inline else ("", "")
    head = "".join(f"<th{th}>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v, inline) for v in row) + "</tr>" for row in rows)
    return f"<table{table}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str, source: str | None = None) -> str:
    note = f'<p class="n">From {html.escape(source)}.</p>' if source else ""
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>{STYLE}</head>'
        f"<body><h3>{html.escape(title)}</h3>{note}{body}</body></html>\n"
    )


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise DeepsnowError(f"{path}: cannot read the CSV table: {err}") from None
    if not header:
        raise DeepsnowError(f"{path}: empty CSV table (no header row)")
    return header, rows


def csv_page(path: Path, title: str) -> str:
    header, rows = read_csv(path)
    body = table_html(header, [[r.get(h) for h in header] for r in rows])
    return page(title, f"{body}<p class=\"n\">{len(rows)} rows.</p>", source=str(path))


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DeepsnowError(f"{path}: cannot read the JSON file: {err}") from None
    if not isinstance(data, dict):
        raise DeepsnowError(f"{path}: expected a JSON object")
    return data


def flat(data: dict, prefix: str = "") -> list[list]:
    """Nested dicts as dotted keys; a list of dicts as one row per item (key[i].field)."""
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += flat(value, f"{name}.")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                rows += flat(item, f"{name}[{i}].")
        elif isinstance(value, list):
            rows.append([name, ", ".join(str(v) for v in value)])
        else:
            rows.append([name, value])
    return rows


def validity_summary(path: Path) -> tuple[list[str], list[list]]:
    """validity.csv as one row per mode and metric: its sign-corrected rho on each ladder with the
    sensitivity in brackets, and its lowest rho over the ladders."""
    header, rows = read_csv(path)
    missing = [c for c in ("mode", "ladder", "metric", "rho", "sensitivity") if c not in header]
    if missing:
        raise DeepsnowError(f"{path}: not a metric validity table (no {', '.join(missing)} column)")
    ladders = list(dict.fromkeys(r["ladder"] for r in rows))
    cells: dict[tuple[str, str], dict[str, str]] = {}
    lowest: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["mode"], r["metric"])
        rho = float(r["rho"]) if r["rho"] else float("nan")
        sens = r["sensitivity"] or "none"
        cells.setdefault(key, {})[r["ladder"]] = f"{rho:.2f} ({sens})" if rho == rho else f"n/a ({sens})"
        lowest[key] = min(lowest.get(key, float("inf")), rho if rho == rho else float("-inf"))
    table = [
        [mode, metric, *(cells[mode, metric].get(ladder, "") for ladder in ladders), _lowest(lowest[mode, metric])]
        for mode, metric in cells
    ]
    return ["mode", "metric", *ladders, "lowest rho"], table


def _lowest(value: float) -> str:
    return "n/a" if value == float("-inf") else f"{value:.2f}"


#: the validity page when no validity table is given (the workflow gives every run's; a hand-made report may not)
NO_LADDERS = (
    '<p class="n">This report was made without metric validity ladders (no metrics/validity.csv given to '
    "deepsnow report-pages --validity).</p>"
)


def validity_page(path: Path | None, title: str) -> str:
    if path is None:
        return page(title, NO_LADDERS)
    header, table = validity_summary(path)
    note = (
        '<p class="n">rho: Spearman\'s rank correlation of the metric with the degradation level, signed so that '
        "+1 means the metric says \"worse\" at every step (n/a: the metric did not move); in brackets the "
        "sensitivity, the smallest level outside level 0\'s bootstrap 95 % interval (none: no level was). "
        "Every value and interval: validity.csv.</p>"
    )
    return page(title, table_html(header, table) + note, source=str(path))


def summary_page(path: Path, title: str) -> str:
    return page(title, table_html(["key", "value"], flat(read_json(path))), source=str(path))


def config_page(config: dict, title: str) -> str:
    text = yaml.safe_dump(config, sort_keys=True, default_flow_style=False, allow_unicode=True)
    return page(title, f"<pre>{html.escape(text)}</pre>")


def last_epoch_rows(metrics: Path) -> tuple[int, list[dict]]:
    header, rows = read_csv(metrics)
    if "epoch" not in header or not rows:
        raise DeepsnowError(f"{metrics}: no epoch rows")
    last = max(int(r["epoch"]) for r in rows)
    return last, sorted((r for r in rows if int(r["epoch"]) == last), key=lambda r: r.get("direction", ""))


def headline_html(metrics: Path, summary: Path, run: str, simcover: Path | None = None) -> str:
    """The last epoch's metrics per direction and the dataset counts, as an HTML fragment."""
    last, rows = last_epoch_rows(metrics)
    columns = [c for c in HEADLINE if any(r.get(c) not in (None, "") for r in rows)]
    header = ["direction", *(HEADLINE[c] for c in columns)]
    table = []
    for r in rows:
        values = [r.get("direction")]
        for c in columns:
            v = r.get(c)
            if c == "kid_mean" and r.get("kid_std") not in (None, ""):
                v = f"{float(v):.4g} ± {float(r['kid_std']):.2g}"
            values.append(v)
        table.append(values)
    weights = sorted({f"{r.get('inception_weights')}/{r.get('resnet_weights')}" for r in rows})
    pretrained = all(r.get(k, "").lower() == "true" for r in rows for k in ("inception_pretrained", "resnet_pretrained"))
    warn = "" if pretrained else " (not pretrained: not comparable with published values)"
    data = read_json(summary)
    counts = data.get("counts", {})
    areas = f"training areas {', '.join(data.get('train_aois', []))}; held-out test areas {', '.join(data.get('test_aois', []))}"
    return (
        f"{FRAGMENT[0]}<p><b>Run {html.escape(run)}, epoch {last} (the last saved): metrics per direction</b></p>"
        f"{table_html(header, table, inline=True)}"
        f"<p>Feature weights (Inception/ResNet): {html.escape(', '.join(weights))}{warn}.</p>"
        f"<p><b>Dataset: patches per split and domain</b></p>{table_html(list(counts), [list(counts.values())], inline=True)}"
        f"<p>A: snow-free, B: snowy; {html.escape(areas)}.</p>{simcover_html(simcover)}{FRAGMENT[1]}"
    )


def simcover_html(path: Path | None) -> str:
    """simcover's held-out errors of the fractions: the kept model's, their spread over the trained seeds,
    and the training-mean baseline (empty without a summary)."""
    if path is None:
        return ""
    data = read_json(path)
    try:
        held, base, spread = data["heldout"], data["baseline_train_mean"], data["spread"]
        seed, n = int(data["seed"]), int(data["n_seeds"])
        rows = [[label, f"{held[k]:.4f}", _spread_text(spread["heldout"][k]),
                 f"{base[k]:.4f} ({_range_text(spread['baseline_train_mean'][k])})"]
                for k, label in SIMCOVER_HEADLINE.items()]
    except (KeyError, TypeError, ValueError) as exc:
        raise DeepsnowError(f"{path}: not a summary from 'deepsnow train-simcover' ({type(exc).__name__}: {exc})") from exc
    header = ["measure", f"simcover (seed {seed}, the extractor)", f"over {n} seeds: mean ± s.d. (min–max)",
              "training-mean baseline (over the seeds)"]
    threads = int(data.get("threads", 0))
    return (
        f"<p><b>simcover extractor: held-out training patches ({int(data.get('n_heldout', 0))} of "
        f"{int(data.get('n_heldout', 0)) + int(data.get('n_train', 0))}), {n} seed{'s' if n != 1 else ''} trained "
        f"with {threads} thread{'s' if threads != 1 else ''}</b></p>"
        f"{table_html(header, rows, inline=True)}"
    )


def _spread_text(s: dict) -> str:
    return f"{s['mean']:.4f} ± {s['sd']:.4f} ({_range_text(s)})"


def _range_text(s: dict) -> str:
    return f"{s['min']:.4f}–{s['max']:.4f}"


def _report_pages(args, params):
    """Render the run's tables as HTML pages for the Snakemake report.

    Writes OUTDIR/{metrics,losses,artifacts,validity,dataset,config,headline}.html: one HTML table
    per CSV (validity.csv as rho and sensitivity per metric and ladder), the dataset summary as a
    table, the merged config (--config-json, as the workflow passes
    it) as YAML, and the headline numbers (last epoch per direction, dataset counts).
    """
    try:
        config = json.loads(args.config_json)
    except ValueError as err:
        raise DeepsnowError(f"--config-json: not JSON: {err}") from None
    if not isinstance(config, dict):
        raise DeepsnowError("--config-json: expected a JSON object (the merged config)")
    sources = {
        "metrics": args.metrics, "losses": args.losses, "artifacts": args.artifacts, "summary": args.summary,
        "validity": args.validity,
    }
    texts = {}
    for name, (option, title) in PAGES.items():
        if name == "config":
            texts[name] = config_page(config, title)
        elif name == "headline":
            run = str(config.get("run", ""))
            texts[name] = page(title, headline_html(args.metrics, args.summary, run, args.simcover))
        elif name == "dataset":
            texts[name] = summary_page(sources[option], title)
        elif name == "validity":
            texts[name] = validity_page(sources[option], title)
        else:
            texts[name] = csv_page(sources[option], title)
    outputs = []
    for name, text in texts.items():
        out = args.outdir / f"{name}.html"
        with atomic_output(out) as tmp:
            tmp.write_text(text)
        outputs.append(out)
    inputs = [p for p in sources.values() if p is not None] + ([args.simcover] if args.simcover else [])
    return Made(outputs, inputs=inputs, config=config, section="config")


def register(sub) -> None:
    p = stage_command(sub, "report-pages", _report_pages, section=None, stage="report", code="figures")
    path_options(
        p,
        metrics="metrics/metrics.csv",
        losses="train/losses.csv",
        artifacts="figures/artifacts.csv",
        summary="dataset/summary.json",
        outdir="the folder for the HTML pages (results/<run>/report)",
    )
    path_options(
        p,
        required=False,
        simcover="features/simcover.json: simcover's held-out errors (headline page)",
        validity="metrics/validity.csv (left out: a report without the ladders)",
    )
    p.add_argument("--config-json", required=True, help="the merged config as JSON (the workflow passes its config)")
