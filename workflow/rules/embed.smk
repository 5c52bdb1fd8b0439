# Embed: 2048-d features of the real test sets (once per extractor) and of every
# epoch's samples (GPU rules), with the weights the features section names.


rule embed_real:
    """Embed the real test sets with one feature extractor."""
    input:
        test_a=run_path("dataset/testA.npz"),
        test_b=run_path("dataset/testB.npz"),
        weights=extractor_weights,
    output:
        features=real_features("{extractor}"),
    log:
        shared_or_variant("logs/embed/real_{extractor}.log"),
    benchmark:
        shared_or_variant("benchmarks/embed/real_{extractor}.tsv")
    conda:
        "../../envs/eval.yaml"
    threads: 2
    resources:
        gpu=gpus_for("features"),
        mem_mb=8000,
        runtime=60,
    params:
        section=vsection("features") if FEATURES_SWEPT else section("features"),
        code=code("embed"),
        weights=weights_option,
        rgb_view=RGB_VIEW,
    message:
        "Embedding the real test sets with {wildcards.extractor}"
    shell:
        "deepsnow embed --params {params.section:q} --extractor {wildcards.extractor:q}"
        " --real-a {input.test_a:q} --real-b {input.test_b:q} --output {output.features:q}"
        " --threads {threads} {params.weights} {params.rgb_view} 2> {log:q}"


rule embed_samples:
    """Embed one epoch's samples with one feature extractor."""
    input:
        samples=variant_path("samples/epoch_{epoch}.npz"),
        weights=extractor_weights,
    output:
        features=variant_path("features/epoch_{epoch}_{extractor}.npz"),
    log:
        variant_path("logs/embed/epoch_{epoch}_{extractor}.log"),
    benchmark:
        variant_path("benchmarks/embed/epoch_{epoch}_{extractor}.tsv")
    group:
        "eval"
    conda:
        "../../envs/eval.yaml"
    threads: 2
    resources:
        gpu=gpus_for("features"),
        mem_mb=8000,
        runtime=60,
    params:
        section=vsection("features"),
        code=code("embed"),
        weights=weights_option,
        rgb_view=RGB_VIEW,
    message:
        "Embedding the epoch {wildcards.epoch} samples with {wildcards.extractor}"
    shell:
        "deepsnow embed --params {params.section:q} --extractor {wildcards.extractor:q}"
        " --samples {input.samples:q} --outputs {output.features:q} --threads {threads}"
        " {params.weights} {params.rgb_view} 2> {log:q}"
