# Clouds and snow: per-pixel classes from SCL and NDSI (docs/formats.md, "Mask").


rule mask:
    input:
        scene=R("scenes/{aoi}/{season}.tif"),
    output:
        mask=R("masks/{aoi}/{season}.tif"),
        summary=R("masks/{aoi}/{season}.json"),
    log:
        R("logs/mask/{aoi}_{season}.log"),
    benchmark:
        R("benchmarks/mask/{aoi}_{season}.tsv")
    conda:
        "../../envs/data.yaml"
    params:
        section=section("mask"),
        code=code("mask"),
    shell:
        "deepsnow mask --params {params.section:q} --scene {input.scene:q}"
        " --output {output.mask:q} --summary {output.summary:q} 2> {log:q}"
