# Train: one job trains the whole cycleGAN run (GPU rule). At every saved epoch it writes a
# checkpoint and translates the fixed held-out test set with that epoch's generators (the
# per-epoch samples); only every gan.keep_every-th epoch's checkpoint and the last one stay.


rule train:
    """Train the cycleGAN; checkpoints and test-set samples at every saved epoch."""
    input:
        train_a=run_path("dataset/trainA.npz"),
        train_b=run_path("dataset/trainB.npz"),
        test_a=run_path("dataset/testA.npz"),
        test_b=run_path("dataset/testB.npz"),
    output:
        checkpoints=protected(
            expand(
                variant_path("train/checkpoints/epoch_{epoch:03d}.pt"),
                epoch=KEPT,
                allow_missing=True,
            )
        ),
        samples=SAMPLES,
        losses=report(
            variant_path("train/losses.csv"), caption="../report/losses.rst", category="Training"
        ),
        iter_losses=variant_path("train/losses_iter.csv"),
    log:
        variant_path("logs/train.log"),
    benchmark:
        variant_path("benchmarks/train.tsv")
    conda:
        "../../envs/gan.yaml"
    threads: config["gan"]["threads"]
    resources:
        gpu=gpus_for("gan"),
        mem_mb=8000,
        gpu_mem_mb=config["gan"]["gpu_mem_mb"],
        runtime=config["gan"]["runtime_min"],
    params:
        section=vsection("gan"),
        samples=vsection("samples"),
        code=code("train"),
        epochs=EPOCHS[-1],
        checkpoint_dir=output_dir,
        samples_dir=samples_dir,
        state_dir=state_dir,
    message:
        "Training the cycleGAN for {params.epochs} epochs (samples and checkpoints as it goes)"
    shell:
        "deepsnow train --params {params.section:q} --samples-params {params.samples:q}"
        " --train-a {input.train_a:q} --train-b {input.train_b:q} --test-a {input.test_a:q} --test-b {input.test_b:q}"
        " --checkpoint-dir {params.checkpoint_dir:q} --samples-dir {params.samples_dir:q}"
        " --state-dir {params.state_dir:q} --losses {output.losses:q} --iter-losses {output.iter_losses:q} 2> {log:q}"
