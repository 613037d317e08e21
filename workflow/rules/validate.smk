# How plausible each generator's synthetic rows are, per device type: an LLM
# (forced tool call) or the offline score from constraint violations and
# nearest-real-row distances; see docs/validation.md. Generators are the
# balancings of classifiers.balancings other than none. The LLM reply cache
# sits in llm.cache_dir, outside results/, because Snakemake deletes a rule's
# outputs before a rerun. Threads come from the profile or --set-threads
# (default 1).

VALIDATION_GENERATORS = [
    name for name in config["classifiers"]["balancings"] if name != "none"
]


rule validate:
    input:
        synthetic="results/synthetic/{generator}.parquet",
        train="results/splits/train.parquet",
        preprocessor="results/preprocess/preprocessor.json",
        constraints="results/constraints/constraints.json",
        dictionary="results/features/feature_dictionary.csv",
    output:
        validation="results/validation/{generator}.json",
    params:
        validation=config["validation"],
        llm=config["llm"],
        top_categories=config["constraints"]["prompt"]["top_categories"],
        seed=config["seed"],
    wildcard_constraints:
        generator="[A-Za-z0-9_]+",
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/validate/{generator}.log",
    benchmark:
        "results/benchmarks/validate/{generator}.tsv"
    script:
        "../scripts/validate.py"


rule validation_table:
    input:
        validations=[
            f"results/validation/{generator}.json"
            for generator in VALIDATION_GENERATORS
        ],
    output:
        csv="results/tables/validation.csv",
        markdown=report(
            "results/tables/validation.md",
            category="Synthetic data",
        ),
    params:
        stem=lambda wildcards, output: output.csv.removesuffix(".csv"),
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/validation_table.log",
    benchmark:
        "results/benchmarks/validation_table.tsv"
    script:
        "../scripts/validation_table.py"
