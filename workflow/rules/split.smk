# Split: domains A (snow-free) and B (snowy), train/test held out by area.


rule split:
    """Assemble domains A (snow-free) and B (snowy); whole areas held out for testing."""
    input:
        shards=expand(R("patches/{aoi}/{season}.npz"), aoi=AOIS, season=SEASONS),
    output:
        *DATASET,
        manifest=R("dataset/manifest.csv"),
        summary=report(R("dataset/summary.json"), caption="../report/dataset.rst", category="Data"),
    log:
        R("logs/split.log"),
    benchmark:
        R("benchmarks/split.tsv")
    conda:
        "../../envs/data.yaml"
    params:
        section=section("split"),
        code=code("split"),
        outdir=output_dir,
    shell:
        "deepsnow split --params {params.section:q} --shards {input.shards:q}"
        " --outdir {params.outdir:q} 2> {log:q}"
