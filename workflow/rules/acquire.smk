# Acquire: Sentinel-2 L2A scenes per area and season (docs/formats.md, "Scene").


rule simulate:
    output:
        snowfree=R("scenes/{aoi}/snowfree.tif"),
        snow=R("scenes/{aoi}/snow.tif"),
        truth=R("truth/{aoi}/snow.tif"),
    log:
        R("logs/simulate/{aoi}.log"),
    benchmark:
        R("benchmarks/simulate/{aoi}.tsv")
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
        " 2> {log:q}"
