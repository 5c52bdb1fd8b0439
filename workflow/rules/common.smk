# Shared helpers: config validation, paths, per-rule params. No rules here.

import json
import os
import shlex

from deepsnow import DeepsnowError
from deepsnow.areas import aoi_names
from deepsnow.config import validate_config, variants_of
from deepsnow.locks import hold_for_process
from deepsnow.gan.schedule import kept_epochs, saved_epochs, state_key
from deepsnow.provenance import code_hash
from deepsnow.stages import STAGE_CODE

# Fills schema defaults and stops before any job with a message naming the key (every
# variant of a sweep too).
validate_config(config)
# sweep (docs/sweeps.md): {variant name: its values, group and validated config};
# {} without a sweep, and then every path and param below is exactly the unswept run's.
VARIANTS = variants_of(config)
SWEEP = bool(VARIANTS)


# Options of the snakemake command line under which it runs no job (snakemake.cli.args_to_api).
NON_EXECUTING_OPTIONS = """
    dryrun lint list_target_rules list_rules print_compilation containerize generate_unit_tests
    dag rulegraph filegraph d3dag unlock cleanup_metadata conda_cleanup_envs conda_create_envs_only
    list_conda_envs cleanup_shadow container_cleanup_images list_changes list_input_changes
    list_params_changes list_untracked summary detailed_summary archive delete_all_output
    delete_temp_output
""".split()


def executes_jobs(workflow):
    """Whether this ``snakemake`` command runs jobs: False for dry runs, --report, --unlock,
    --list-*, --lint, --summary, --dag and the like, and in the job processes a cluster executor
    starts; None when Snakemake was not started from its command line (its Python API)."""
    import inspect

    if not workflow.is_main_process:
        return False
    frame = inspect.currentframe()
    while frame is not None and not (
        frame.f_code.co_name == "args_to_api" and frame.f_globals.get("__name__") == "snakemake.cli"
    ):
        frame = frame.f_back
    if frame is None:
        return None
    args = frame.f_locals["args"]
    if args.report and not args.report_after_run:
        return False
    return not any(getattr(args, name, None) for name in NON_EXECUTING_OPTIONS)


RUN = config["run"]
if os.path.lexists(f"results/{RUN}") and not os.path.isdir(f"results/{RUN}"):
    raise DeepsnowError(
        f"invalid configuration: config key 'run': results/{RUN} exists and is not a folder; "
        "choose another run name"
    )
AOIS = aoi_names(config)
SEASONS = ["snowfree", "snow"]
SIMULATED = config["data"]["source"] == "simulator"
# Epochs with a checkpoint, known from the config when the DAG is built.
EPOCHS = saved_epochs(config["gan"])
# Epochs whose checkpoint stays (gan.keep_every); every saved epoch keeps its samples.
KEPT = kept_epochs(config["gan"])


wildcard_constraints:
    aoi="[A-Za-z0-9][A-Za-z0-9_-]*",
    season="snowfree|snow",
    epoch="[0-9]+",
    extractor="[A-Za-z0-9][A-Za-z0-9_-]*",
    variant="|".join(VARIANTS) or "-",


def hold_run_lock():
    """One executing run per run name and directory at a time (deepsnow.locks: atomic, and it
    dies with the process, so a killed run never leaves it stale)."""
    hold_for_process(
        f".snakemake/deepsnow/{RUN}.lock",
        f"workflow run '{RUN}' (results/{RUN}/) in {os.getcwd()}",
        "Wait for that run to finish (or stop it) and start again.",
    )


# Snakemake builds the DAG before it takes its own directory lock, so a second run started while
# a first one writes would be told the first run's files "seem to be incomplete" (and to rerun
# them). Taking deepsnow's lock here, while the Snakefile is parsed, refuses it first and says why.
if executes_jobs(workflow):
    hold_run_lock()


onstart:
    # Also when Snakemake is driven through its Python API (executes_jobs cannot tell then);
    # idempotent. Snakemake's own lock is check-then-write: two runs at one moment can pass it.
    hold_run_lock()
    # SLURM: refuse a request no node can satisfy before the first submission (deepsnow.cluster).
    from deepsnow.cluster import onstart_check

    onstart_check(workflow)


def run_path(path):
    """A path under this run's results folder."""
    return f"results/{RUN}/{path}"


def section(name):
    """One config section as key-sorted JSON: the only config a rule sees."""
    return json.dumps(config[name], sort_keys=True)


# --- variants: every stage after the split runs once per variant, under
# results/<run>/variants/<variant>/ (a rule's paths carry the {variant} wildcard); the data half
# and the real embeddings stay shared. Without a sweep, variant_path(path) is run_path(path) and
# vsection(name) the plain section string.
VDIR = "variants/{variant}/" if SWEEP else ""
# the real test sets' embeddings depend on the features section only: per variant when it is swept
FEATURES_SWEPT = SWEEP and any(k.startswith("features.") for k in config["sweep"])


def variant_path(path, wildcards=None):
    """A per-variant path: {variant} left for Snakemake, or filled from ``wildcards``."""
    path = run_path(VDIR + path)
    return path.replace("{variant}", wildcards.variant) if SWEEP and wildcards is not None else path


def vconfig(wildcards):
    """The config of the job's variant (the config itself without a sweep)."""
    return VARIANTS[wildcards.variant]["config"] if SWEEP else config


# Resumable training state (not a Snakemake output, which Snakemake would delete
# before rerunning a killed job); a changed gan config gets a fresh folder.
# Under a sweep one per variant (its gan section), results/<run>/variants/<variant>/train/.
def state_dir(wildcards):
    return variant_path(f"train/state-{state_key(vconfig(wildcards)['gan'])}", wildcards)


def vsection(name):
    """section(name) of the job's variant: a param function under a sweep."""
    if not SWEEP:
        return section(name)
    return lambda wildcards: json.dumps(VARIANTS[wildcards.variant]["config"][name], sort_keys=True)


def shared_or_variant(path, wildcards=None):
    """Paths of the real embeddings: shared, or per variant when the features section is swept."""
    return variant_path(path, wildcards) if FEATURES_SWEPT else run_path(path)


def real_features(extractor, wildcards=None):
    return shared_or_variant(f"features/real_{extractor}.npz", wildcards)


def variant_config_json(wildcards):
    """The job's variant's whole merged config (the report shows it), key-sorted JSON."""
    return json.dumps(vconfig(wildcards), sort_keys=True)


def each_variant(paths):
    """Every variant's copy of per-variant ``paths`` (the paths themselves without a sweep)."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    return expand(paths, variant=list(VARIANTS)) if SWEEP else paths


def code(stage):
    """Hash of the package code a stage runs, so code changes rerun exactly that stage."""
    return code_hash(*STAGE_CODE[stage])


def patch_inputs(wildcards):
    inputs = {
        "scene": run_path(f"scenes/{wildcards.aoi}/{wildcards.season}.tif"),
        "mask": run_path(f"masks/{wildcards.aoi}/{wildcards.season}.tif"),
    }
    if SIMULATED and wildcards.season == "snowfree":  # both truths: the season's and the snowfall's
        inputs["truth"] = run_path(f"truth/{wildcards.aoi}/snow.tif")
        inputs["truth_snowfall"] = run_path(f"truth/{wildcards.aoi}/snowfall.tif")
    if SIMULATED:  # the simulator's labels: per-patch class fractions (both seasons)
        inputs["landcover"] = run_path(f"truth/{wildcards.aoi}/landcover.tif")
    return inputs


def truth_option(wildcards, input):
    """--truth and --truth-snowfall as the job's inputs have them."""
    given = [k for k in ("truth", "truth_snowfall") if k in input.keys()]
    return " ".join(f"--{k.replace('_', '-')} {shlex.quote(getattr(input, k))}" for k in given)


def landcover_option(wildcards, input):
    return f"--landcover {shlex.quote(input.landcover)}" if "landcover" in input.keys() else ""


def output_dir(wildcards, output):
    return os.path.dirname(output[0])


def samples_dir(wildcards, output):
    return os.path.dirname(output.samples[0])


def gpus_for(name):
    """GPUs a GPU job asks for: none when its section says device: cpu."""
    return 0 if config[name]["device"] == "cpu" else 1


DATASET = [run_path(f"dataset/{name}.npz") for name in ("trainA", "trainB", "testA", "testB")]
#: reflectance runs: the stages after train see reflectance as its RGB composite, rendered as the patches
#: stage renders RGB (docs/bands.md), except simcover, trained on and fed all the bands; empty for an RGB
#: run, whose commands stay as they were
REFLECTANCE = config["patches"]["encoding"] == "reflectance"
RGB_VIEW = (
    f"--rgb-max {config['patches']['rgb_max']} --rgb-gamma {config['patches']['rgb_gamma']}"
    if REFLECTANCE
    else ""
)


SAMPLES = [variant_path(f"samples/epoch_{e:03d}.npz") for e in EPOCHS]
EXTRACTORS = config["features"]["extractors"]
INCEPTION = config["metrics"]["inception_extractor"]
RESNET = config["metrics"]["resnet_extractor"]


# simcover's weights: a given file (features.simcover.weights_path), else trained by rule
# train_simcover on this run's training patches (simulator runs; config.py refuses others).
SIMCOVER_GIVEN = config["features"]["simcover"]["weights_path"]
SIMCOVER_TRAINED = run_path("features/simcover.pt")
SIMCOVER_SUMMARY = run_path("features/simcover.json")
SIMCOVER_TRAINS = "simcover" in EXTRACTORS and not SIMCOVER_GIVEN


def extractor_weights(wildcards):
    """The weights file an embed job reads: simcover's (given or trained here); none for the others."""
    if wildcards.extractor != "simcover":
        return []
    return SIMCOVER_GIVEN or SIMCOVER_TRAINED


def weights_option(wildcards, input):
    return f"--weights-path {shlex.quote(input.weights)}" if input.get("weights") else ""


def report_simcover_inputs(wildcards):
    return {"simcover": SIMCOVER_SUMMARY} if SIMCOVER_TRAINS else {}


def report_validity_inputs(wildcards):
    return {"validity": validity_path("metrics/validity.csv")}


def report_validity_option(wildcards, input):
    return f"--validity {shlex.quote(input.validity)}" if input.get("validity") else ""


def simcover_option(wildcards, input):
    return f"--simcover {shlex.quote(input.simcover)}" if input.get("simcover") else ""


def metrics_epoch_inputs(wildcards):
    # every extractor's features: the metrics of the paper's two, and fd_/cd_<extractor> of each
    used = sorted({INCEPTION, RESNET, *EXTRACTORS})
    inputs = {
        "real": [real_features(x, wildcards) for x in used],
        "features": [
            variant_path(f"features/epoch_{wildcards.epoch}_{x}.npz", wildcards) for x in used
        ],
        "samples": variant_path(f"samples/epoch_{wildcards.epoch}.npz", wildcards),
    }
    if SIMULATED and config["metrics"]["paired"]:
        inputs["truth"] = run_path("dataset/testA.npz")
    # the spectral columns: the samples against the real test patches (docs/bands.md)
    if REFLECTANCE:
        inputs["test_a"] = run_path("dataset/testA.npz")
        inputs["test_b"] = run_path("dataset/testB.npz")
    return inputs


def spectral_option(wildcards, input):
    """--test-a, --test-b and --mask-params for a reflectance run's spectral columns; empty for RGB."""
    if "test_b" not in input.keys():
        return ""
    tests = f"--test-a {shlex.quote(input.test_a)} --test-b {shlex.quote(input.test_b)}"
    return f"{tests} --mask-params {shlex.quote(section('mask'))}"


# Metric tracking (simulator runs): every unpaired metric against the paired error across the
# epochs, bootstrapped over the test patches from every epoch's features and samples.
TRACKING = variant_path("metrics/tracking.csv")
# ... and with the run's own ladders, which metric to trust (metrics/ranking.csv)
RANKING = variant_path("metrics/ranking.csv")


def tracking_inputs(wildcards):
    used = sorted({INCEPTION, RESNET, *EXTRACTORS})
    return {
        "table": variant_path("metrics/metrics.csv", wildcards),
        "real": [real_features(x, wildcards) for x in used],
        "features": [
            variant_path(f"features/epoch_{e:03d}_{x}.npz", wildcards) for e in EPOCHS for x in used
        ],
        "samples": [variant_path(f"samples/epoch_{e:03d}.npz", wildcards) for e in EPOCHS],
        "truth": run_path("dataset/testA.npz"),
    }


# Metric validity reads the data half, the real embeddings and the features, metrics and validity
# sections: one table shared by a sweep's variants, unless the sweep varies one of those sections.
VALIDITY_SWEPT = SWEEP and any(
    k.startswith(("features.", "metrics.", "validity.")) for k in config["sweep"]
)


def validity_path(path):
    return variant_path(path) if VALIDITY_SWEPT else run_path(path)


def validity_section(name):
    return vsection(name) if VALIDITY_SWEPT else section(name)


def validity_inputs(wildcards):
    """The test sets, every extractor's real features and (simcover) the weights they were made with."""
    used = sorted({INCEPTION, RESNET, *EXTRACTORS})
    inputs = {
        "test_a": run_path("dataset/testA.npz"),
        "test_b": run_path("dataset/testB.npz"),
        "real": [real_features(x, wildcards) for x in used],
    }
    if "simcover" in used:
        inputs["simcover_weights"] = SIMCOVER_GIVEN or SIMCOVER_TRAINED
    return inputs


def validity_view(wildcards):
    """A reflectance run's ladders: the mask section (their snow rule) and the composite's rendering
    (RGB_VIEW); empty for an RGB run, whose command stays as it was."""
    if not REFLECTANCE:
        return ""
    return f"--mask-params {shlex.quote(section('mask'))} {RGB_VIEW}"


def simcover_weights_option(wildcards, input):
    return (
        f"--simcover-weights {shlex.quote(input.simcover_weights)}"
        if input.get("simcover_weights")
        else ""
    )


def check_validity_counts():
    """Too few test patches for the ladders' sets: refused at DAG build once the data half has
    written its summary (every variant's metrics and validity sections)."""
    from deepsnow.validity.sets import summary_problems

    configs = [v["config"] for v in VARIANTS.values()] if SWEEP else [config]
    summary = run_path("dataset/summary.json")
    problems = sorted(
        {p for c in configs for p in summary_problems(summary, c["metrics"], c["validity"])}
    )
    if problems:
        raise DeepsnowError("invalid configuration:\n  " + "\n  ".join(problems))


check_validity_counts()


# What each figure is drawn from, from the figure table (deepsnow.figures.table), the one list of
# figures. Rule figure draws those without extra outputs; Figure 7, which also writes
# artifacts.csv, has its own rule (figure_artifacts).
from deepsnow.figures import table as figure_table


def figure_input_paths(name):
    """A figure input's path(s) in this run: one per saved epoch for a per-epoch input (samples)."""
    path = figure_table.INPUTS[name]
    # the data half is shared by the variants, and so is the validity table unless it is swept
    shared = path.startswith("dataset/") or (name == "validity" and not VALIDITY_SWEPT)
    at = run_path if shared else variant_path
    if figure_table.per_epoch(name):
        return [at(path.format(epoch=e)) for e in EPOCHS]
    return at(path)


# Per-variant figures; a sweep's own (Figures 3, 5, 7 per group and 11) are drawn from its comparison
# (rule comparison_figure, comparison/figureN.png).
FIGURE_INPUTS = {
    str(n): {name: figure_input_paths(name) for name in fig.inputs}
    for n, fig in figure_table.FIGURES.items()
    if not fig.sweep
}
FIGURE_EXTRA_OUTPUTS = {
    str(n): {name: variant_path(path) for name, path in fig.outputs.items()}
    for n, fig in figure_table.FIGURES.items()
    if not fig.sweep
}
SWEEP_FIGURES = [str(n) for n in figure_table.sweep_figures()]
# The {n} of rule figure.
FIGURE_N = "|".join(n for n, extra in FIGURE_EXTRA_OUTPUTS.items() if not extra)
FIGURES = [variant_path(f"figures/figure{n}.png") for n in FIGURE_INPUTS]


def figure_inputs(wildcards):
    """A figure's inputs in the job's variant (rule inputs given by a function are not formatted)."""
    fill = lambda p: p.replace("{variant}", wildcards.variant) if SWEEP else p
    return {
        name: [fill(p) for p in paths] if isinstance(paths, list) else fill(paths)
        for name, paths in FIGURE_INPUTS[wildcards.n].items()
    }


def figure_options(wildcards, input):
    """A figure rule's named inputs as command-line options: --test-a X --samples Y Z ..."""
    options = []
    for name in input.keys():
        value = getattr(input, name)
        paths = list(value) if isinstance(value, list) else [value]
        options.append(f"{figure_table.option(name)} " + " ".join(shlex.quote(p) for p in paths))
    return " ".join(options)


# The report's pages of the run's tables, config and headline numbers (rule report_pages).
from deepsnow.figures.report_pages import PAGES as REPORT_PAGE_NAMES

REPORT_PAGES = [variant_path(f"report/{name}.html") for name in REPORT_PAGE_NAMES]


# Synthetic products (rules in synthesize.smk): every held-out test area's snow-free scene, and the
# scenes the config lists, each translated by one job with the checkpoint(s) synthesize.epoch needs.
SYNTH = config["synthesize"]
SYNTH_SCENES = {
    **{aoi: run_path(f"scenes/{aoi}/snowfree.tif") for aoi in config["split"]["test_aois"]},
    **{s["name"]: s["path"] for s in SYNTH["scenes"]},
}
SYNTH_CATALOG = variant_path("synthetic/catalog.json")
# the reflectance product beside the RGB one: a reflectance run's generator output (always), an RGB
# run's approximation (synthesize.reflectance)
SYNTH_HAS_REFLECTANCE = REFLECTANCE or SYNTH["reflectance"]
SYNTH_REFLECTANCE = (
    {"reflectance": variant_path("synthetic/{name}/snow_reflectance.tif")}
    if SYNTH_HAS_REFLECTANCE
    else {}
)


def synthesize_needs_rgb():
    """A reflectance run's snow.tif is the RGB composite of its reflectance: refused without B04 B03 B02."""
    missing = [b for b in ("B04", "B03", "B02") if b not in config["patches"]["bands"]]
    if REFLECTANCE and missing:
        raise DeepsnowError(
            f"key 'patches.bands': {config['patches']['bands']} lacks {missing}; the synthetic products "
            "(synthetic/..., and the change testbed built on them) include the RGB composite B04 B03 B02"
        )


def synthesize_inputs(wildcards):
    """The scene, the checkpoint synthesize.epoch names (all kept ones for best:, with the metrics)."""
    synthesize_needs_rgb()
    epoch = SYNTH["epoch"]
    inputs = {"scene": SYNTH_SCENES[wildcards.name]}
    if isinstance(epoch, str) and epoch.startswith("best:"):
        inputs["checkpoints"] = [
            variant_path(f"train/checkpoints/epoch_{e:03d}.pt", wildcards) for e in KEPT
        ]
        inputs["metrics"] = variant_path("metrics/metrics.csv", wildcards)
    else:
        chosen = KEPT[-1] if epoch == "last" else epoch
        inputs["checkpoints"] = variant_path(f"train/checkpoints/epoch_{chosen:03d}.pt", wildcards)
    return inputs


def synthesize_companions(name):
    """A held-out area's real snow-season scene and (simulator) true snow scene, for the catalog."""
    if name not in config["split"]["test_aois"]:
        return {}
    companions = {"after_real": run_path(f"scenes/{name}/snow.tif")}
    if SIMULATED:
        companions["truth"] = run_path(f"truth/{name}/snow.tif")
    return companions


def synthesize_options(wildcards, input, output):
    """--metrics, --reflectance-output, --after-real, --truth as the scene has them."""
    given = {"metrics": input.get("metrics"), "reflectance_output": output.get("reflectance")}
    given |= synthesize_companions(wildcards.name)
    return " ".join(f"--{k.replace('_', '-')} {shlex.quote(v)}" for k, v in given.items() if v)


# A sweep's comparison of its variants (rules in comparison.smk): metrics per group, their
# correlations with the paired errors, Figures 3, 5, 7 per group and Figure 11.
COMPARISON = [
    run_path(f"comparison/{name}.csv") for name in ("summary", "final", "correlations")
] + [run_path(f"comparison/figure{n}.png") for n in SWEEP_FIGURES]


def comparison_inputs(wildcards):
    return {
        "tables": [variant_path("metrics/metrics.csv").replace("{variant}", v) for v in VARIANTS],
        "artifacts": [
            FIGURE_EXTRA_OUTPUTS["7"]["output_csv"].replace("{variant}", v) for v in VARIANTS
        ],
        "losses": [variant_path("train/losses.csv").replace("{variant}", v) for v in VARIANTS],
        # the change testbed's AUCs and gap per detector (none without held-out areas)
        "change": (
            [variant_path("change/summary.json").replace("{variant}", v) for v in VARIANTS]
            if CHANGE_AREAS
            else []
        ),
    }


def comparison_change_option(wildcards, input):
    """--change and every variant's change/summary.json, when the run has a change testbed."""
    return " ".join(["--change", *map(shlex.quote, input.change)]) if input.get("change") else ""


# --variants and --groups of deepsnow metrics compare, in the order of the variants
VARIANT_GROUPS = [VARIANTS[v]["group"] for v in VARIANTS]


# Change-detection testbed (rules in change.smk): every held-out test area's before scene against
# its real, synthetic and (simulator) true after-scenes; per variant under a sweep (its products).
CHANGE_AREAS = list(config["split"]["test_aois"])
CHANGE_SUMMARY = variant_path("change/summary.csv")


def change_inputs(wildcards):
    """One area's before / real after scenes and masks, synthetic product(s) and (simulator) truth."""
    aoi = wildcards.aoi
    inputs = {
        "before": run_path(f"scenes/{aoi}/snowfree.tif"),
        "before_mask": run_path(f"masks/{aoi}/snowfree.tif"),
        "real": run_path(f"scenes/{aoi}/snow.tif"),
        "real_mask": run_path(f"masks/{aoi}/snow.tif"),
        "synthetic": variant_path(f"synthetic/{aoi}/snow.tif", wildcards),
    }
    if SYNTH_HAS_REFLECTANCE:
        inputs["synthetic_reflectance"] = variant_path(
            f"synthetic/{aoi}/snow_reflectance.tif", wildcards
        )
    if SIMULATED:
        inputs["truth"] = run_path(f"truth/{aoi}/snow.tif")
    return inputs


# The benchmark each change job writes per area, in change/benchmark/<area>/. The band set rgb in the
# folder itself, reflectance (a reflectance run's bands, or synthesize.reflectance's B04 B03 B02) in its
# reflectance/ folder; after_truth.tif on
# simulator data. Names as deepsnow.change.benchmark writes them; output keys <band set>_<file>.
CHANGE_BENCHMARK_DIR = variant_path("change/benchmark")
CHANGE_BENCHMARK_CATALOG = f"{CHANGE_BENCHMARK_DIR}/catalog.json"
CHANGE_BENCHMARK_ITEMS = f"{CHANGE_BENCHMARK_DIR}/{{aoi}}/{{aoi}}.json"
CHANGE_BENCHMARK_FILES = {
    f"{bands}_{name}": f"{CHANGE_BENCHMARK_DIR}/{{aoi}}/{folder}{name}.tif"
    for bands, folder in [("rgb", "")]
    + ([("reflectance", "reflectance/")] if SYNTH_HAS_REFLECTANCE else [])
    for name in ["before", "after_real", "after_synthetic"]
    + (["after_truth"] if SIMULATED else [])
    + ["anomalies"]
}


def change_benchmark_dir(wildcards, output):
    """The area's benchmark folder (--benchmark): the folder of its rgb before.tif."""
    return os.path.dirname(output.rgb_before)


def change_benchmark_dirs(wildcards, input):
    """Every area's benchmark folder (--benchmarks): the folders of their rgb anomalies.tif."""
    return [os.path.dirname(p) for p in input.anomalies]


def change_options(wildcards, input):
    """--synthetic-reflectance and --truth when the area has them."""
    given = {k: input.get(k) for k in ("synthetic_reflectance", "truth")}
    return " ".join(f"--{k.replace('_', '-')} {shlex.quote(v)}" for k, v in given.items() if v)


# The whole run (the default target): every variant's figures, report pages, synthetic catalog,
# change summary and benchmark catalog, and a sweep's comparison.
def final_outputs():
    per_variant = FIGURES + REPORT_PAGES + ([SYNTH_CATALOG] if SYNTH_SCENES else [])
    per_variant += [TRACKING] if config["tracking"]["enabled"] else []
    per_variant += [RANKING] if config["tracking"]["enabled"] else []
    per_variant += [CHANGE_SUMMARY, CHANGE_BENCHMARK_CATALOG] if CHANGE_AREAS else []
    return each_variant(per_variant) + (COMPARISON if SWEEP else [])
