# simcover: the land-cover ResNet-18 extractor, trained on the simulator's labels of the
# training patches (both domains) when features.extractors names it and no weights file is given.


rule train_simcover:
    """Train the simcover extractor on the training patches' land-cover and snow fractions."""
    input:
        train_a=run_path("dataset/trainA.npz"),
        train_b=run_path("dataset/trainB.npz"),
    output:
        weights=SIMCOVER_TRAINED,
        summary=SIMCOVER_SUMMARY,
    log:
        run_path("logs/train_simcover.log"),
    benchmark:
        run_path("benchmarks/train_simcover.tsv")
    conda:
        "../../envs/eval.yaml"
    threads: config["simcover"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        section=section("simcover"),
        code=code("train_simcover"),
    message:
        "Training the simcover extractor on the training patches' land cover"
    shell:
        "deepsnow train-simcover --params {params.section:q} --train-a {input.train_a:q}"
        " --train-b {input.train_b:q} --output {output.weights:q} --summary {output.summary:q} 2> {log:q}"
