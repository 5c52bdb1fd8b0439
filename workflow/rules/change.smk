# Change-detection testbed: per held-out test area, the anomalous change detectors (change.detectors) on the pairs
# (before, real after), (before, synthetic after) and, on simulator data, (before, true after), with
# the same implanted changes; one small job tabulates all areas. Inputs: common.smk (change_*).


rule change:
    """Run the change detectors on one held-out area's real, synthetic and true pairs."""
    input:
        unpack(change_inputs),
    output:
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
    message:
        "Change detectors on {wildcards.aoi}: real vs synthetic vs true after-images"
    shell:
        "deepsnow change area --params {params.section:q} --area {wildcards.aoi:q}"
        " --before {input.before:q} --before-mask {input.before_mask:q} --real {input.real:q}"
        " --real-mask {input.real_mask:q} --synthetic {input.synthetic:q} --output {output.record:q}"
        " --rgb-max {params.rgb_max:q} --rgb-gamma {params.rgb_gamma:q} {params.options} 2> {log:q}"


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
