# Fidelity of the synthetic rows: one report per generator scored by the
# classifiers (classifiers.balancings minus none) and one table over them.
# Threads come from the profile or --set-threads (default 1).

FIDELITY_GENERATORS = [
    name for name in config["classifiers"]["balancings"] if name != "none"
]


rule fidelity:
    input:
        synthetic="results/synthetic/{generator}.parquet",
        # SMOTE has no rejection step and so no rejection CSV.
        rejection=lambda wildcards: (
            []
            if wildcards.generator == "smote"
            else f"results/synthetic/{wildcards.generator}_rejection.csv"
        ),
        train="results/splits/train.parquet",
        test="results/splits/test.parquet",
        preprocessor="results/preprocess/preprocessor.json",
        constraints="results/constraints/constraints.json",
        adjacency="results/graph/adjacency.csv",
    output:
        report="results/fidelity/{generator}.json",
    params:
        fidelity=config["fidelity"],
        seed=config["seed"],
    wildcard_constraints:
        generator="|".join(FIDELITY_GENERATORS) if FIDELITY_GENERATORS else "(?!)",
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/fidelity/{generator}.log",
    benchmark:
        "results/benchmarks/fidelity/{generator}.tsv"
    script:
        "../scripts/fidelity.py"


rule fidelity_table:
    input:
        reports=[
            f"results/fidelity/{generator}.json" for generator in FIDELITY_GENERATORS
        ],
    output:
        csv="results/tables/fidelity.csv",
        markdown=report(
            "results/tables/fidelity.md",
            category="Synthetic data",
        ),
    params:
        generators=FIDELITY_GENERATORS,
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/fidelity_table.log",
    benchmark:
        "results/benchmarks/fidelity_table.tsv"
    script:
        "../scripts/fidelity_table.py"
