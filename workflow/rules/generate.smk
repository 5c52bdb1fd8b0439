# Generate: translate the fixed held-out test set with every saved epoch's generators (GPU rule).


rule generate:
    input:
        checkpoint=R("train/checkpoints/epoch_{epoch}.pt"),
        test_a=R("dataset/testA.npz"),
        test_b=R("dataset/testB.npz"),
    output:
        samples=R("samples/epoch_{epoch}.npz"),
    log:
        R("logs/generate/epoch_{epoch}.log"),
    benchmark:
        R("benchmarks/generate/epoch_{epoch}.tsv")
    group:
        "samples"
    conda:
        "../../envs/gan.yaml"
    resources:
        gpu=gpus_for("samples"),
        mem_mb=4000,
        runtime=60,
    params:
        section=section("samples"),
        code=code("generate"),
    message:
        "Translating the test set with the epoch {wildcards.epoch} generators"
    shell:
        "deepsnow generate --params {params.section:q} --checkpoints {input.checkpoint:q}"
        " --outputs {output.samples:q} --test-a {input.test_a:q} --test-b {input.test_b:q} 2> {log:q}"
