# Figures: the paper's Figures 1-6, plus 7 (artifact measures) and 8 (paired error
# beside the unpaired metrics), PNG and PDF each, registered for the report. What each is
# drawn from and the code that draws it: the figure table, deepsnow/figures/table.py.


rule figure:
    """Draw one figure as PNG and PDF (what it is drawn from: deepsnow/figures/table.py)."""
    input:
        unpack(figure_inputs),
    output:
        png=report(
            R("figures/figure{n}.png"),
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{n}"},
        ),
        pdf=R("figures/figure{n}.pdf"),
    log:
        R("logs/figures/figure{n}.log"),
    wildcard_constraints:
        n=FIGURE_N,
    conda:
        "../../envs/figures.yaml"
    params:
        section=section("figures"),
        code=code("figures"),
        inputs=figure_options,
    message:
        "Drawing Figure {wildcards.n}"
    shell:
        "deepsnow figures --params {params.section:q} --figure {wildcards.n}"
        " --outputs {output.png:q} {output.pdf:q} {params.inputs} 2> {log:q}"


rule figure_artifacts:
    """Draw Figure 7 (the generator's artifacts per epoch) and artifacts.csv."""
    input:
        **FIGURE_INPUTS["7"],
    output:
        png=report(
            R("figures/figure7.png"),
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "7"},
        ),
        pdf=R("figures/figure7.pdf"),
        table=report(
            FIGURE_EXTRA_OUTPUTS["7"]["output_csv"],
            caption="../report/artifacts.rst",
            category="Figures",
            labels={"figure": "7 (table)"},
        ),
    log:
        R("logs/figures/figure7.log"),
    conda:
        "../../envs/figures.yaml"
    params:
        section=section("figures"),
        code=code("figures"),
        inputs=figure_options,
    message:
        "Drawing Figure 7 (artifact measures)"
    shell:
        "deepsnow figures --params {params.section:q} --figure 7 --outputs {output.png:q} {output.pdf:q}"
        " {params.inputs} --output-csv {output.table:q} 2> {log:q}"
