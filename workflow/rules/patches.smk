# Patches: labelled RGB windows per scene (docs/formats.md, "Patches").


rule patches:
    """Cut labelled RGB patches from a scene and its mask; a table of every window."""
    input:
        unpack(patch_inputs),
    output:
        shard=run_path("patches/{aoi}/{season}.npz"),
        table=run_path("patches/{aoi}/{season}.csv"),
    log:
        run_path("logs/patches/{aoi}_{season}.log"),
    benchmark:
        run_path("benchmarks/patches/{aoi}_{season}.tsv")
    conda:
        "../../envs/data.yaml"
    params:
        section=section("patches"),
        code=code("patches"),
        truth=truth_option,
        landcover=landcover_option,
    shell:
        "deepsnow patches --params {params.section:q} --scene {input.scene:q} --mask {input.mask:q}"
        " {params.truth} {params.landcover} --output {output.shard:q} --table {output.table:q} 2> {log:q}"
