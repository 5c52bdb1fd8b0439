# Metrics: per epoch and direction FID, FRD, CRD, KID, the random-forest
# real-vs-generated test and (simulator) paired errors; then one table and the PCA.


rule metrics_epoch:
    """FID, FRD, CRD, KID, the random-forest test and paired errors of one epoch."""
    input:
        unpack(metrics_epoch_inputs),
    output:
        metrics=variant_path("metrics/epoch_{epoch}.json"),
    log:
        variant_path("logs/metrics/epoch_{epoch}.log"),
    benchmark:
        variant_path("benchmarks/metrics/epoch_{epoch}.tsv")
    group:
        "eval"
    conda:
        "../../envs/eval.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        section=vsection("metrics"),
        code=code("metrics"),
        truth=truth_option,
        spectral=spectral_option,
    message:
        "Measuring the epoch {wildcards.epoch} samples"
    shell:
        "deepsnow metrics epoch --params {params.section:q} --real {input.real:q}"
        " --features {input.features:q} --samples {input.samples:q} {params.truth} {params.spectral}"
        " --outputs {output.metrics:q} --threads {threads} 2> {log:q}"


rule metrics_table:
    """Collect the per-epoch metrics into one table, and their rank correlations."""
    input:
        epochs=expand(
            variant_path("metrics/epoch_{epoch:03d}.json"), epoch=EPOCHS, allow_missing=True
        ),
    output:
        table=report(
            variant_path("metrics/metrics.csv"),
            caption="../report/metrics.rst",
            category="Metrics",
        ),
        correlations=variant_path("metrics/correlations.csv"),
    log:
        variant_path("logs/metrics/table.log"),
    conda:
        "../../envs/eval.yaml"
    params:
        section=vsection("metrics"),
        code=code("metrics"),
    message:
        "Collecting the per-epoch metrics into one table"
    shell:
        "deepsnow metrics table --params {params.section:q} --epochs {input.epochs:q}"
        " --output {output.table:q} --correlations {output.correlations:q} 2> {log:q}"


rule metrics_pca:
    """PCA of the real and generated ResNet features (Figure 6)."""
    input:
        real=real_features(RESNET),
        features=expand(
            variant_path("features/epoch_{epoch:03d}_{extractor}.npz"),
            epoch=EPOCHS,
            extractor=RESNET,
            allow_missing=True,
        ),
    output:
        pca=variant_path("metrics/pca.csv"),
        summary=variant_path("metrics/pca.json"),
    log:
        variant_path("logs/metrics/pca.log"),
    conda:
        "../../envs/eval.yaml"
    params:
        section=vsection("metrics"),
        code=code("metrics"),
    message:
        "PCA of real and generated ResNet features"
    shell:
        "deepsnow metrics pca --params {params.section:q} --real {input.real:q}"
        " --features {input.features:q} --output {output.pca:q} --summary {output.summary:q} 2> {log:q}"


rule metric_validity:
    """Every metric along degradation ladders of known severity (once per run, not per epoch)."""
    input:
        unpack(validity_inputs),
    output:
        table=report(
            validity_path("metrics/validity.csv"),
            caption="../report/validity.rst",
            category="Metrics",
            labels={"table": "validity.csv"},
        ),
    log:
        validity_path("logs/metrics/validity.log"),
    benchmark:
        validity_path("benchmarks/metrics/validity.tsv")
    conda:
        "../../envs/eval.yaml"
    threads: 2
    resources:
        gpu=gpus_for("features"),
        mem_mb=8000,
        runtime=120,
    params:
        section=validity_section("validity"),
        metrics=validity_section("metrics"),
        features=validity_section("features"),
        code=code("validity"),
        simcover=simcover_weights_option,
        view=validity_view,
    message:
        "Measuring every metric along the degradation ladders"
    shell:
        "deepsnow metrics validity --params {params.section:q} --metrics-params {params.metrics:q}"
        " --features-params {params.features:q} --test-a {input.test_a:q} --test-b {input.test_b:q}"
        " --real {input.real:q} {params.simcover} {params.view} --output {output.table:q} --threads {threads} 2> {log:q}"


rule metric_tracking:
    """How well each metric tracks the paired error across the epochs (simulator runs)."""
    input:
        unpack(tracking_inputs),
    output:
        table=report(
            TRACKING,
            caption="../report/tracking.rst",
            category="Metrics",
            labels={"table": "tracking.csv"},
        ),
    log:
        variant_path("logs/metrics/tracking.log"),
    benchmark:
        variant_path("benchmarks/metrics/tracking.tsv")
    conda:
        "../../envs/eval.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        section=vsection("tracking"),
        metrics=vsection("metrics"),
        code=code("metrics"),
    message:
        "Rank-correlating every metric with the paired error across the epochs"
    shell:
        "deepsnow metrics tracking --params {params.section:q} --metrics-params {params.metrics:q}"
        " --table {input.table:q} --real {input.real:q} --features {input.features:q}"
        " --samples {input.samples:q} --truth {input.truth:q} --output {output.table:q}"
        " --threads {threads} 2> {log:q}"


rule metric_ranking:
    """Which metric to trust: the run's ladders and its tracking, per metric (tracking runs)."""
    input:
        validity=validity_path("metrics/validity.csv"),
        tracking=TRACKING,
    output:
        table=report(
            RANKING,
            caption="../report/ranking.rst",
            category="Metrics",
            labels={"table": "ranking.csv"},
        ),
    log:
        variant_path("logs/metrics/ranking.log"),
    conda:
        "../../envs/eval.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=code("validity"),
    message:
        "Ranking the metrics by the ladders and the tracking"
    shell:
        "deepsnow metrics rank --validity {input.validity:q} --tracking {input.tracking:q}"
        " --output {output.table:q} 2> {log:q}"
