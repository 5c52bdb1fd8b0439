# Acquire: Sentinel-2 L2A scenes per area and season (docs/formats.md, "Scene").


rule simulate:
    """Simulate one area's snow-free and snow scenes, its two true snow-covered scenes and its land cover."""
    output:
        snowfree=run_path("scenes/{aoi}/snowfree.tif"),
        snow=run_path("scenes/{aoi}/snow.tif"),
        truth=run_path("truth/{aoi}/snow.tif"),
        snowfall=run_path("truth/{aoi}/snowfall.tif"),
        landcover=run_path("truth/{aoi}/landcover.tif"),
    log:
        run_path("logs/simulate/{aoi}.log"),
    benchmark:
        run_path("benchmarks/simulate/{aoi}.tsv")
    conda:
        "../../envs/data.yaml"
    params:
        section=section("data"),
        code=code("simulate"),
    message:
        "Simulating snow-free and snow-season scenes of area {wildcards.aoi}"
    shell:
        "deepsnow simulate --params {params.section:q} --aoi {wildcards.aoi:q}"
        " --snowfree {output.snowfree:q} --snow {output.snow:q} --truth {output.truth:q}"
        " --snowfall {output.snowfall:q} --landcover {output.landcover:q}"
        " 2> {log:q}"


import re


# Real scenes (data.source sentinelhub or stac): one job per area and season. In simulator
# runs the rule matches nothing (its aoi constraint never matches); in real runs it wins over
# simulate.
ruleorder: download > simulate


# Downloads need the internet, which cluster compute nodes often lack: run them where
# Snakemake itself runs (e.g. a login node); they are light (a few MB per scene).
localrules:
    download,


# Credentials are read from the environment by the job (never from the config); declaring
# them makes Snakemake stop before any job with a clear message when they are missing.
if config["data"]["source"] == "sentinelhub" and not config["data"]["sentinelhub"]["profile"]:

    envvars:
        "SH_CLIENT_ID",
        "SH_CLIENT_SECRET",


rule download:
    """Download one area's Sentinel-2 L2A scene of one season (Sentinel Hub or STAC)."""
    output:
        scene=run_path("scenes/{aoi}/{season}.tif"),
    log:
        run_path("logs/download/{aoi}_{season}.log"),
    benchmark:
        run_path("benchmarks/download/{aoi}_{season}.tsv")
    wildcard_constraints:
        aoi="(?!)" if SIMULATED else "|".join(map(re.escape, AOIS)),
    conda:
        "../../envs/data.yaml"
    resources:
        downloads=1,
    params:
        section=section("data"),
        code=code("download"),
        cache=run_path(f"cache/{config['data']['source']}"),
        source=config["data"]["source"],
        bands=config["patches"]["bands"],
    message:
        "Downloading the {wildcards.season} scene of area {wildcards.aoi} ({params.source})"
    shell:
        "deepsnow download --params {params.section:q} --aoi {wildcards.aoi:q}"
        " --season {wildcards.season:q} --output {output.scene:q} --cache {params.cache:q}"
        " --bands {params.bands:q}"
        " 2> {log:q}"
