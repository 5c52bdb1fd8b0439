# Synthesize: the synthetic change products. One GPU job per scene (every held-out test area, and
# every scene of synthesize.scenes) translates the whole scene with one checkpoint into a COG on
# the input's grid; one small job writes their STAC catalog. Inputs: common.smk (synthesize_*).


rule synthesize:
    """Translate one whole scene to snow (COG on the input's grid) with the chosen checkpoint."""
    input:
        unpack(synthesize_inputs),
    output:
        **SYNTH_REFLECTANCE,
        cog=variant_path("synthetic/{name}/snow.tif"),
        summary=variant_path("synthetic/{name}/snow.summary.json"),
    log:
        variant_path("logs/synthesize/{name}.log"),
    benchmark:
        variant_path("benchmarks/synthesize/{name}.tsv")
    wildcard_constraints:
        name="|".join(SYNTH_SCENES),
    group:
        "synthesize"
    conda:
        "../../envs/gan.yaml"
    threads: SYNTH["threads"]
    resources:
        gpu=gpus_for("synthesize"),
        mem_mb=16000,
        gpu_mem_mb=SYNTH["gpu_mem_mb"],
        runtime=SYNTH["runtime_min"],
    params:
        section=section("synthesize"),
        code=code("synthesize"),
        rgb_max=config["patches"]["rgb_max"],
        rgb_gamma=config["patches"]["rgb_gamma"],
        options=synthesize_options,
    message:
        "Synthesizing the snow scene of {wildcards.name}"
    shell:
        "deepsnow synthesize scene --params {params.section:q} --name {wildcards.name:q}"
        " --input {input.scene:q} --checkpoints {input.checkpoints:q} --output {output.cog:q}"
        " --summary {output.summary:q} --rgb-max {params.rgb_max:q} --rgb-gamma {params.rgb_gamma:q}"
        " {params.options} 2> {log:q}"


rule synthetic_catalog:
    """The STAC catalog of every synthetic product, with the real scenes and checkpoints as assets."""
    input:
        products=expand(
            variant_path("synthetic/{name}/snow.summary.json"),
            name=SYNTH_SCENES,
            allow_missing=True,
        ),
        companions=[p for name in SYNTH_SCENES for p in synthesize_companions(name).values()],
    output:
        catalog=SYNTH_CATALOG,
        stac_items=expand(
            variant_path("synthetic/{name}/{name}.json"), name=SYNTH_SCENES, allow_missing=True
        ),
    log:
        variant_path("logs/synthesize/catalog.log"),
    conda:
        "../../envs/gan.yaml"
    params:
        section=section("synthesize"),
        code=code("synthesize"),
        run=RUN,
    message:
        "Writing the STAC catalog of the synthetic products"
    shell:
        "deepsnow synthesize catalog --params {params.section:q} --products {input.products:q}"
        " --output {output.catalog:q} --run {params.run:q} 2> {log:q}"
