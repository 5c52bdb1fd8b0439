# Clouds and snow: per-pixel classes from SCL and NDSI (docs/formats.md, "Mask").


rule mask:
    """Label each pixel of a scene: invalid, clear, water, snow, cloud, cloud shadow."""
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
