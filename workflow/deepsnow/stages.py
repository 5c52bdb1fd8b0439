"""Which package code each stage runs.

The Snakefile passes ``code_hash(*STAGE_CODE[stage])`` as a rule param, and the
commands (:func:`deepsnow.commands.run_stage`) record the same hash in every
provenance sidecar, so a change to a stage's code reruns exactly that stage (and
what depends on it), and a sidecar names the code its rule ran.
Paths are relative to the ``deepsnow`` package folder; a folder means all its
``.py`` files.
"""

#: the gan modules of training and sampling (the stage commands of gan/commands.py and what they import)
GAN_TRAINING: tuple[str, ...] = tuple(
    f"gan/{m}.py"
    for m in ("checkpoint", "commands", "cut", "cut_model", "data", "generate", "model", "networks", "patchnce",
              "runtime", "schedule", "sizes", "state", "train")
)

STAGE_CODE: dict[str, tuple[str, ...]] = {
    "simulate": ("data/simulator", "data/landcover.py", "data/scene.py", "areas.py", "cog.py", "io.py"),
    "download": ("data/download", "data/bands.py", "data/scene.py", "areas.py", "cog.py", "io.py"),
    "mask": ("data/mask.py", "data/scene.py", "cog.py", "io.py"),
    "patches": (
        "data/patches.py", "data/bands.py", "data/mask.py", "data/render.py", "data/landcover.py", "data/scene.py", "cog.py", "io.py"
    ),
    "split": ("data/split.py", "data/bands.py", "areas.py", "io.py"),
    # the networks take the patches' bands through data/bands.py's fixed mapping; the gan modules but
    # scene translation's (translate.py, scene_norm.py), so a change there does not retrain every run
    "train": (*GAN_TRAINING, "data/bands.py", "torchfile.py", "io.py"),
    "generate": (*GAN_TRAINING, "data/bands.py", "torchfile.py", "io.py"),
    # scene translation renders the scenes as the patches stage does (data/render.py)
    "translate": ("gan", "data/bands.py", "torchfile.py", "data/render.py", "data/scene.py", "cog.py", "io.py"),
    # scene translation (gan/translate.py), the patches stage's RGB rendering, COG and STAC writing
    "synthesize": ("synthesize", "gan", "data/bands.py", "torchfile.py", "cog.py", "io.py", "data/render.py", "data/scene.py"),
    # reflectance training sets are seen as their RGB composite (features/rgbview.py, data/render.py)
    "train_simcover": (
        "features/simcover.py", "features/simcover_train.py", "features/base.py", "features/rgbview.py", "data/render.py",
        "data/bands.py", "torchfile.py", "io.py",
    ),
    # the change testbed reads scenes (data/scene.py), renders them as the patches stage does; its
    # benchmark's STAC collection is validated and dated as the synthetic products' catalog is
    "change": ("change", "plugins.py", "data/scene.py", "data/render.py", "cog.py", "io.py", "synthesize/catalog.py"),
    # reflectance images are embedded as their RGB composite, rendered as the patches stage renders RGB
    # simcover on reflectance: each band through its fixed unit reflectance (data/bands.py)
    "embed": ("features", "plugins.py", "torchfile.py", "io.py", "data/render.py", "data/bands.py"),
    # the metrics read the features files (features/files.py), never an extractor
    # reflectance samples' spectral columns: the mask stage's snow rule (data/mask.py), the band checks
    "metrics": ("metrics", "features/files.py", "io.py", "data/mask.py", "data/bands.py", "data/scene.py", "cog.py"),
    # the ladders degrade and embed images (features) and measure them with the metrics stage's functions
    # (reflectance sets: its spectral columns' snow rule and angles); the colour cast weighs a reflectance
    # band by its centre wavelength (synthesize/catalog.py's table)
    "validity": (
        "validity", "metrics", "features", "plugins.py", "torchfile.py", "io.py", "data/render.py",
        "data/mask.py", "data/bands.py", "data/scene.py", "cog.py",  # the metrics stage's spectral columns
        "synthesize/catalog.py",
    ),
    # figures read metrics.csv by the column names metrics/table.py defines, the comparison's tables
    # with metrics/compare.py, and testA's data source from its provenance chain
    "figures": (
        "figures", "io.py", "metrics/table.py", "data/bands.py", "metrics/compare.py", "provenance/__init__.py",
        "data/render.py", "data/scene.py", "cog.py",  # Figure 9 renders the scenes as the patches stage does
    ),
}

#: Modules a stage command runs that never change its results, so no STAGE_CODE entry lists them
#: (a change to them reruns nothing). tests/test_structure.py checks that every other package
#: module a stage's command imports is in its entry.
INFRASTRUCTURE: tuple[str, ...] = (
    # the version string and DeepsnowError: what the package is called and how it fails
    "__init__.py",
    # package docstrings (data, gan, synthesize) and lazy export tables (features, metrics: which submodule a
    # public name comes from); stage modules import the submodules themselves
    "data/__init__.py", "gan/__init__.py", "synthesize/__init__.py", "features/__init__.py", "metrics/__init__.py",
    # the CLI layer: cli.py assembles the subcommands, commands.py is the stage-command pattern
    # (parse --params, call the handler, write the sidecars)
    "cli.py", "commands.py",
    # validation: it refuses bad params or fills the schema's defaults, and the filled section is
    # what the rule passes (and the sidecar hashes), so a changed default reruns the stage anyway
    "config.py",
    # the sidecars that record what was made (figures, which read them, list provenance/__init__.py)
    "provenance",
    # this file: which files to hash
    "stages.py",
    # lazy package exports: which submodule a public name comes from, not what it does
    "lazy.py",
    # locks that keep two jobs from writing one folder at once; they order writes, not contents
    "locks.py",
)
