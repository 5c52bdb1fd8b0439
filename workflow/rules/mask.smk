# Clouds and snow: per-pixel classes from SCL and NDSI (docs/formats.md, "Mask").


rule mask:
    """Label each pixel of a scene: invalid, clear, water, snow, cloud, cloud shadow."""
    input:
        scene=run_path("scenes/{aoi}/{season}.tif"),
    output:
        mask=run_path("masks/{aoi}/{season}.tif"),
        summary=run_path("masks/{aoi}/{season}.json"),
    log:
        run_path("logs/mask/{aoi}_{season}.log"),
    benchmark:
        run_path("benchmarks/mask/{aoi}_{season}.tsv")
    conda:
        "../../envs/data.yaml"
    params:
        section=section("mask"),
        code=code("mask"),
    shell:
        "deepsnow mask --params {params.section:q} --scene {input.scene:q}"
        " --output {output.mask:q} --summary {output.summary:q} 2> {log:q}"
