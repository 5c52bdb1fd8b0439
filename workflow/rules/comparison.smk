# Comparison (sweeps only, docs/sweeps.md): every variant's metrics (and change testbed's AUCs and gap)
# per group of variants that differ only in gan.seed, mean, s.d. and n, Welch t-tests at the last
# epoch; then Figures 3, 5, 7 per group and Figure 11.


rule comparison:
    """Mean, s.d. and n per variant group, epoch, direction and metric; Welch t-tests at the end."""
    input:
        unpack(comparison_inputs),
    output:
        summary=report(
            run_path("comparison/summary.csv"),
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        final=report(
            run_path("comparison/final.csv"),
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        correlations=report(
            run_path("comparison/correlations.csv"),
            caption="../report/comparison.rst",
            category="Comparison",
        ),
    log:
        run_path("logs/comparison.log"),
    conda:
        "../../envs/eval.yaml"
    params:
        code=code("metrics"),
        variants=list(VARIANTS),
        groups=VARIANT_GROUPS,
        change=comparison_change_option,
    message:
        "Comparing the sweep's variant groups"
    shell:
        "deepsnow metrics compare --tables {input.tables:q} --artifacts {input.artifacts:q} --losses {input.losses:q}"
        " --variants {params.variants:q} --groups {params.groups:q} --summary {output.summary:q} --final {output.final:q}"
        " --correlations {output.correlations:q} {params.change} 2> {log:q}"


rule comparison_figure:
    """Draw a sweep's figure (3, 5, 7 per group; 11: the groups compared) as PNG and PDF."""
    input:
        comparison_summary=run_path("comparison/summary.csv"),
    output:
        png=report(
            run_path("comparison/figure{n}.png"),
            caption="../report/comparison_figure.rst",
            category="Comparison",
            labels={"figure": "{n}"},
        ),
        pdf=run_path("comparison/figure{n}.pdf"),
    log:
        run_path("logs/comparison/figure{n}.log"),
    wildcard_constraints:
        n="|".join(SWEEP_FIGURES),
    conda:
        "../../envs/figures.yaml"
    params:
        section=section("figures"),
        code=code("figures"),
    message:
        "Drawing Figure {wildcards.n} from the sweep's comparison (its groups, mean ± s.d.)"
    shell:
        "deepsnow figures --params {params.section:q} --figure {wildcards.n}"
        " --outputs {output.png:q} {output.pdf:q} --comparison-summary {input.comparison_summary:q} 2> {log:q}"
