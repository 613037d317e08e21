# Conditional WGAN-GP variants (wgan: graph layer, graph loss and constraint
# penalties; wgan_plain: none of them), the synthetic rows that top up every
# split, the balanced splits of both protocols, and figures 8 to 10.
# Threads come from the profile or --set-threads (default 1).

WGAN_VARIANTS = list(config["wgan"]["variants"])
BALANCE_PROTOCOLS = ["paper", "real_test"]
SPLITS = ["train", "val", "test"]
FIGURE10_VARIANT = next(
    (name for name in WGAN_VARIANTS if name in config["classifiers"]["balancings"]),
    WGAN_VARIANTS[0],
)


rule train_generator:
    input:
        train="results/splits/train.parquet",
        preprocessor="results/preprocess/preprocessor.json",
        adjacency="results/graph/adjacency.csv",
        constraints="results/constraints/constraints.json",
    output:
        model="results/models/{generator}/model.pt",
        losses="results/models/{generator}/losses.csv",
        hyperparameters="results/models/{generator}/hyperparameters.csv",
        figure=report(
            "results/figures/{generator}_losses.png",
            category="Generators",
        ),
    params:
        wgan=config["wgan"],
        seed=config["seed"],
        # Not an output: Snakemake deletes the outputs of a failed job, and
        # the checkpoints must survive a killed job so that a rerun resumes.
        # Taken from the output path, so the by_capture module gets its own.
        checkpoint_dir=lambda wildcards, output: os.path.join(os.path.dirname(output.model), "checkpoints"),
    wildcard_constraints:
        generator="|".join(WGAN_VARIANTS),
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/train_generator/{generator}.log",
    benchmark:
        "results/benchmarks/train_generator/{generator}.tsv"
    script:
        "../scripts/train_generator.py"


rule synthesize:
    input:
        model="results/models/{generator}/model.pt",
        train="results/splits/train.parquet",
        val="results/splits/val.parquet",
        test="results/splits/test.parquet",
        preprocessor="results/preprocess/preprocessor.json",
        constraints="results/constraints/constraints.json",
    output:
        synthetic="results/synthetic/{generator}.parquet",
        rejection="results/synthetic/{generator}_rejection.csv",
    params:
        balance=config["balance"],
        rejection=lambda wildcards: config["wgan"]["variants"][wildcards.generator]["rejection"],
        seed=config["seed"],
    wildcard_constraints:
        generator="|".join(WGAN_VARIANTS),
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/synthesize/{generator}.log",
    benchmark:
        "results/benchmarks/synthesize/{generator}.tsv"
    script:
        "../scripts/synthesize.py"


rule balance:
    input:
        train="results/splits/train.parquet",
        val="results/splits/val.parquet",
        test="results/splits/test.parquet",
        synthetic="results/synthetic/{generator}.parquet",
    output:
        train="results/balanced/{generator}/{protocol}/train.parquet",
        val="results/balanced/{generator}/{protocol}/val.parquet",
        test="results/balanced/{generator}/{protocol}/test.parquet",
        counts="results/balanced/{generator}/{protocol}/counts.csv",
    params:
        target=config["balance"]["target"],
    wildcard_constraints:
        generator="|".join(WGAN_VARIANTS),
        protocol="|".join(BALANCE_PROTOCOLS),
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/balance/{generator}_{protocol}.log",
    benchmark:
        "results/benchmarks/balance/{generator}_{protocol}.tsv"
    script:
        "../scripts/balance.py"


rule plot_synthetic:
    input:
        train="results/splits/train.parquet",
        synthetic="results/synthetic/{generator}.parquet",
        preprocessor="results/preprocess/preprocessor.json",
    output:
        projection=report(
            "results/figures/figure08_{generator}_pca_tsne.png",
            category="Synthetic data",
        ),
        correlation=report(
            "results/figures/figure09_{generator}_correlation.png",
            category="Synthetic data",
        ),
    params:
        figures=config["balance"]["figures"],
        seed=config["seed"],
    wildcard_constraints:
        generator="|".join(WGAN_VARIANTS),
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/plot_synthetic/{generator}.log",
    benchmark:
        "results/benchmarks/plot_synthetic/{generator}.tsv"
    script:
        "../scripts/plot_synthetic.py"


rule plot_class_distribution:
    input:
        # Every generator tops up to the same targets, so one generator's
        # counts stand for all of them: the first evaluated variant's, so
        # that the figure trains no variant of its own.
        counts=f"results/balanced/{FIGURE10_VARIANT}/paper/counts.csv",
    output:
        figure=report(
            "results/figures/figure10_class_distribution.png",
            category="Synthetic data",
        ),
    params:
        caption="protocol paper (train, validation and test topped up); under real_test the test split keeps its real rows",
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/plot_class_distribution.log",
    benchmark:
        "results/benchmarks/plot_class_distribution.tsv"
    script:
        "../scripts/plot_synthetic.py"
