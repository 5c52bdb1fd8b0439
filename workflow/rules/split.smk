# Split: domains A (snow-free) and B (snowy), train/test held out by area.


rule split:
    """Assemble domains A (snow-free) and B (snowy); whole areas held out for testing."""
    input:
        shards=expand(run_path("patches/{aoi}/{season}.npz"), aoi=AOIS, season=SEASONS),
    output:
        *DATASET,
        manifest=run_path("dataset/manifest.csv"),
        summary=report(
            run_path("dataset/summary.json"), caption="../report/dataset.rst", category="Data"
        ),
    log:
        run_path("logs/split.log"),
    benchmark:
        run_path("benchmarks/split.tsv")
    conda:
        "../../envs/data.yaml"
    params:
        section=section("split"),
        code=code("split"),
        outdir=output_dir,
    shell:
        "deepsnow split --params {params.section:q} --shards {input.shards:q}"
        " --outdir {params.outdir:q} 2> {log:q}"
