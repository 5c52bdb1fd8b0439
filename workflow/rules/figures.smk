# Figures: the paper's Figures 1-6, plus 7 (artifact measures), 8 (paired error beside the
# unpaired metrics) and the others up to 12 (metric validity), PNG and PDF each, registered for
# the report. What each is drawn from and the code that draws it: deepsnow/figures/table.py.


rule figure:
    """Draw one figure as PNG and PDF (what it is drawn from: deepsnow/figures/table.py)."""
    input:
        unpack(figure_inputs),
    output:
        png=report(
            variant_path("figures/figure{n}.png"),
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{n}"},
        ),
        pdf=variant_path("figures/figure{n}.pdf"),
    log:
        variant_path("logs/figures/figure{n}.log"),
    wildcard_constraints:
        n=FIGURE_N,
    conda:
        "../../envs/figures.yaml"
    params:
        section=section("figures"),
        code=code("figures"),
        inputs=figure_options,
        rgb_view=RGB_VIEW,
    message:
        "Drawing Figure {wildcards.n}"
    shell:
        "deepsnow figures --params {params.section:q} --figure {wildcards.n}"
        " --outputs {output.png:q} {output.pdf:q} {params.inputs} {params.rgb_view} 2> {log:q}"


rule figure_artifacts:
    """Draw Figure 7 (the generator's artifacts per epoch) and artifacts.csv."""
    input:
        **FIGURE_INPUTS["7"],
    output:
        png=report(
            variant_path("figures/figure7.png"),
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "7"},
        ),
        pdf=variant_path("figures/figure7.pdf"),
        table=report(
            FIGURE_EXTRA_OUTPUTS["7"]["output_csv"],
            caption="../report/artifacts.rst",
            category="Figures",
            labels={"figure": "7 (table)"},
        ),
    log:
        variant_path("logs/figures/figure7.log"),
    conda:
        "../../envs/figures.yaml"
    params:
        section=section("figures"),
        code=code("figures"),
        inputs=figure_options,
        rgb_view=RGB_VIEW,
    message:
        "Drawing Figure 7 (artifact measures)"
    shell:
        "deepsnow figures --params {params.section:q} --figure 7 --outputs {output.png:q} {output.pdf:q}"
        " {params.inputs} --output-csv {output.table:q} {params.rgb_view} 2> {log:q}"


rule report_pages:
    """Render the run's tables, merged config and headline numbers as HTML report pages."""
    input:
        unpack(report_simcover_inputs),
        unpack(report_validity_inputs),
        metrics=variant_path("metrics/metrics.csv"),
        losses=variant_path("train/losses.csv"),
        artifacts=FIGURE_EXTRA_OUTPUTS["7"]["output_csv"],
        summary=run_path("dataset/summary.json"),
    output:
        headline=report(
            variant_path("report/headline.html"),
            caption="../report/headline.rst",
            category="Summary",
        ),
        metrics=report(
            variant_path("report/metrics.html"),
            caption="../report/metrics.rst",
            category="Metrics",
            labels={"table": "metrics.csv"},
        ),
        losses=report(
            variant_path("report/losses.html"),
            caption="../report/losses.rst",
            category="Training",
            labels={"table": "losses.csv"},
        ),
        artifacts=report(
            variant_path("report/artifacts.html"),
            caption="../report/artifacts.rst",
            category="Figures",
            labels={"figure": "7 (table, shown)"},
        ),
        validity=report(
            variant_path("report/validity.html"),
            caption="../report/validity.rst",
            category="Metrics",
            labels={"table": "validity.csv (shown)"},
        ),
        dataset=report(
            variant_path("report/dataset.html"),
            caption="../report/dataset.rst",
            category="Data",
            labels={"table": "summary.json"},
        ),
        config=report(
            variant_path("report/config.html"),
            caption="../report/config.rst",
            category="Configuration",
        ),
    log:
        variant_path("logs/report_pages.log"),
    conda:
        "../../envs/figures.yaml"
    params:
        # the whole merged config, on purpose: the report shows it (one page, cheap to redo)
        config=variant_config_json,
        code=code("figures"),
        outdir=output_dir,
        simcover=simcover_option,
        validity=report_validity_option,
    message:
        "Rendering the report's tables"
    shell:
        "deepsnow report-pages --config-json {params.config:q} --metrics {input.metrics:q}"
        " --losses {input.losses:q} --artifacts {input.artifacts:q} {params.validity}"
        " --summary {input.summary:q}"
        " --outdir {params.outdir:q} {params.simcover} 2> {log:q}"
