# Constraint-guided CTGAN baseline: CTGAN's data transformer (its own step,
# minutes on the full training split), training with the WGAN's budget and
# constraint penalties, synthesis with the WGAN's rejection step, the
# balanced splits of both protocols, and figures 11 and 12 (drawn by the code
# of figures 8 and 9). Threads come from the profile or --set-threads
# (default 1).

CTGAN_PROTOCOLS = ["paper", "real_test"]


rule fit_ctgan_transformer:
    input:
        train="results/splits/train.parquet",
        dictionary=local("results/features/feature_dictionary.csv"),
    output:
        transformer="results/models/ctgan/transformer.pkl",
        columns="results/models/ctgan/transformer_columns.csv",
    params:
        ctgan=config["ctgan"],
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/fit_ctgan_transformer.log",
    benchmark:
        "results/benchmarks/fit_ctgan_transformer.tsv"
    script:
        "../scripts/fit_ctgan_transformer.py"


rule train_ctgan:
    input:
        train="results/splits/train.parquet",
        transformer=rules.fit_ctgan_transformer.output.transformer,
        preprocessor="results/preprocess/preprocessor.json",
        constraints="results/constraints/constraints.json",
    output:
        model="results/models/ctgan/model.pt",
        losses="results/models/ctgan/losses.csv",
        hyperparameters="results/models/ctgan/hyperparameters.csv",
        figure=report(
            "results/figures/ctgan_losses.png",
            category="Generators",
        ),
    params:
        wgan=config["wgan"],
        ctgan=config["ctgan"],
        seed=config["seed"],
        # Not an output: Snakemake deletes the outputs of a failed job, and
        # the checkpoints must survive a killed job so that a rerun resumes.
        # Taken from the output path, so the by_capture module gets its own.
        checkpoint_dir=lambda wildcards, output: os.path.join(os.path.dirname(output.model), "checkpoints"),
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/train_ctgan.log",
    benchmark:
        "results/benchmarks/train_ctgan.tsv"
    script:
        "../scripts/train_generator.py"


rule synthesize_ctgan:
    input:
        model=rules.train_ctgan.output.model,
        train="results/splits/train.parquet",
        val="results/splits/val.parquet",
        test="results/splits/test.parquet",
        preprocessor="results/preprocess/preprocessor.json",
        constraints="results/constraints/constraints.json",
    output:
        synthetic="results/synthetic/ctgan.parquet",
        rejection="results/synthetic/ctgan_rejection.csv",
    params:
        balance=config["balance"],
        rejection=config["ctgan"]["rejection"],
        seed=config["seed"],
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/synthesize_ctgan.log",
    benchmark:
        "results/benchmarks/synthesize_ctgan.tsv"
    script:
        "../scripts/synthesize.py"


rule balance_ctgan:
    input:
        train="results/splits/train.parquet",
        val="results/splits/val.parquet",
        test="results/splits/test.parquet",
        synthetic=rules.synthesize_ctgan.output.synthetic,
    output:
        train="results/balanced/ctgan/{protocol}/train.parquet",
        val="results/balanced/ctgan/{protocol}/val.parquet",
        test="results/balanced/ctgan/{protocol}/test.parquet",
        counts="results/balanced/ctgan/{protocol}/counts.csv",
    params:
        target=config["balance"]["target"],
    wildcard_constraints:
        protocol="|".join(CTGAN_PROTOCOLS),
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/balance/ctgan_{protocol}.log",
    benchmark:
        "results/benchmarks/balance/ctgan_{protocol}.tsv"
    script:
        "../scripts/balance.py"


rule plot_ctgan_synthetic:
    input:
        train="results/splits/train.parquet",
        synthetic=rules.synthesize_ctgan.output.synthetic,
        preprocessor="results/preprocess/preprocessor.json",
    output:
        projection=report(
            "results/figures/figure11_{generator}_pca_tsne.png",
            category="Synthetic data",
        ),
        correlation=report(
            "results/figures/figure12_{generator}_correlation.png",
            category="Synthetic data",
        ),
    params:
        figures=config["balance"]["figures"],
        seed=config["seed"],
    wildcard_constraints:
        # The script titles the figures with this wildcard.
        generator="ctgan",
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/plot_synthetic/{generator}.log",
    benchmark:
        "results/benchmarks/plot_synthetic/{generator}.tsv"
    script:
        "../scripts/plot_synthetic.py"
