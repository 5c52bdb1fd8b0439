"""Which package code each stage runs.

The Snakefile passes ``code_hash(*STAGE_CODE[stage])`` as a rule param, and the
commands (:func:`deepsnow.commands.run_stage`) record the same hash in every
provenance sidecar, so a change to a stage's code reruns exactly that stage (and
what depends on it), and a sidecar names the code its rule ran.
Paths are relative to the ``deepsnow`` package folder; a folder means all its
``.py`` files.
"""

STAGE_CODE: dict[str, tuple[str, ...]] = {
    "simulate": ("data/simulator", "data/landcover.py", "data/scene.py", "cog.py", "io.py"),
    "download": ("data/download", "data/scene.py", "cog.py", "io.py"),
    "mask": ("data/mask.py", "data/scene.py", "cog.py", "io.py"),
    "patches": ("data/patches.py", "data/landcover.py", "data/scene.py", "cog.py", "io.py"),
    "split": ("data/split.py", "io.py"),
    "train": ("gan", "io.py", "locks.py"),
    "generate": ("gan", "io.py"),
    "translate": ("gan", "cog.py", "io.py"),
    # scene translation (gan/translate.py), the patches stage's RGB rendering, COG and STAC writing
    "synthesize": ("synthesize", "gan", "cog.py", "io.py", "data/patches.py", "data/scene.py"),
    "train_simcover": ("features/simcover.py", "features/simcover_train.py", "gan/checkpoint.py", "io.py"),
    # the change testbed reads scenes (data/scene.py), renders them as the patches stage does
    "change": ("change", "data/scene.py", "data/patches.py", "cog.py", "io.py"),
    "embed": ("features", "gan/checkpoint.py", "io.py", "lazy.py"),
    "metrics": (
        "metrics", "features/__init__.py", "features/embed.py", "features/registry.py", "io.py", "lazy.py"
    ),
    # figures read metrics.csv by the column names metrics/table.py defines, and testA's data
    # source from its provenance chain
    "figures": (
        "figures", "io.py", "lazy.py", "metrics/__init__.py", "metrics/table.py", "provenance/__init__.py",
        "data/patches.py", "data/scene.py", "cog.py",  # Figure 9 renders the scenes as the patches stage does
    ),
}
