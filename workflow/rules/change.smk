# Change-detection testbed: per held-out test area, the anomalous change detectors (change.detectors) on the pairs
# (before, real after), (before, synthetic after) and, on simulator data, (before, true after), with
# the same implanted changes, written also as benchmark files (change/benchmark/<area>/); one small job
# tabulates all areas, one writes the benchmark's STAC collection. Inputs: common.smk (change_*).


rule change:
    """Run the change detectors on one held-out area's real, synthetic and true pairs."""
    input:
        unpack(change_inputs),
    output:
        **CHANGE_BENCHMARK_FILES,
        record=variant_path("change/{aoi}.json"),
    log:
        variant_path("logs/change/{aoi}.log"),
    benchmark:
        variant_path("benchmarks/change/{aoi}.tsv")
    wildcard_constraints:
        aoi="|".join(CHANGE_AREAS),
    conda:
        "../../envs/eval.yaml"
    resources:
        mem_mb=8000,
    params:
        section=section("change"),
        code=code("change"),
        rgb_max=config["patches"]["rgb_max"],
        rgb_gamma=config["patches"]["rgb_gamma"],
        options=change_options,
        benchmark=change_benchmark_dir,
    message:
        "Change detectors on {wildcards.aoi}: real vs synthetic vs true after-images"
    shell:
        "deepsnow change area --params {params.section:q} --area {wildcards.aoi:q}"
        " --before {input.before:q} --before-mask {input.before_mask:q} --real {input.real:q}"
        " --real-mask {input.real_mask:q} --synthetic {input.synthetic:q} --output {output.record:q}"
        " --benchmark {params.benchmark:q} --rgb-max {params.rgb_max:q}"
        " --rgb-gamma {params.rgb_gamma:q} {params.options} 2> {log:q}"


rule change_benchmark:
    """The STAC collection of the change benchmark: one label item per held-out area."""
    input:
        anomalies=expand(
            CHANGE_BENCHMARK_FILES["rgb_anomalies"], aoi=CHANGE_AREAS, allow_missing=True
        ),
        files=expand(list(CHANGE_BENCHMARK_FILES.values()), aoi=CHANGE_AREAS, allow_missing=True),
    output:
        catalog=CHANGE_BENCHMARK_CATALOG,
        stac_items=expand(CHANGE_BENCHMARK_ITEMS, aoi=CHANGE_AREAS, allow_missing=True),
    log:
        variant_path("logs/change/benchmark.log"),
    conda:
        "../../envs/eval.yaml"
    params:
        code=code("change"),
        run=RUN,
        benchmarks=change_benchmark_dirs,
    message:
        "Writing the STAC collection of the change-detection benchmark"
    shell:
        "deepsnow change catalog --benchmarks {params.benchmarks:q} --output {output.catalog:q}"
        " --run {params.run:q} 2> {log:q}"


rule change_summary:
    """Tabulate the change detectors of every held-out area; the AUC gap synthetic vs real."""
    input:
        areas=expand(variant_path("change/{aoi}.json"), aoi=CHANGE_AREAS, allow_missing=True),
    output:
        table=CHANGE_SUMMARY,
        summary=variant_path("change/summary.json"),
        page=report(
            variant_path("change/summary.html"),
            caption="../report/change.rst",
            category="Change detection",
        ),
    log:
        variant_path("logs/change/summary.log"),
    conda:
        "../../envs/eval.yaml"
    params:
        section=section("change"),
        code=code("change"),
    message:
        "Summarising the change-detection testbed"
    shell:
        "deepsnow change summary --params {params.section:q} --areas {input.areas:q}"
        " --output {output.table:q} --output-json {output.summary:q} --output-html {output.page:q}"
        " 2> {log:q}"
