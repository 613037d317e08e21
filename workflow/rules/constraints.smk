# Per-device-type constraints (value ranges, feature correlations, protocol
# rules) from the training split, by an LLM or offline, and their violation
# rates on real rows. The LLM reply cache sits in llm.cache_dir, outside
# results/, because Snakemake deletes a rule's outputs before a rerun.

import os


rule constraints:
    input:
        train="results/splits/train.parquet",
        dictionary=local("results/features/feature_dictionary.csv"),
        preprocessor="results/preprocess/preprocessor.json",
        edges="results/graph/edges.csv",
    output:
        constraints="results/constraints/constraints.json",
        counts="results/constraints/counts.csv",
        prompts=directory("results/constraints/prompts"),
        replies=directory("results/constraints/replies"),
    params:
        audit_dir=lambda wildcards, output: os.path.dirname(output.constraints),
        llm=config["llm"],
        constraints=config["constraints"],
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/constraints.log",
    benchmark:
        "results/benchmarks/constraints.tsv"
    script:
        "../scripts/constraints.py"


rule constraint_violations:
    input:
        constraints=rules.constraints.output.constraints,
        dictionary=local("results/features/feature_dictionary.csv"),
        split="results/splits/{split}.parquet",
    output:
        rates="results/constraints/violations/{split}_rates.csv",
        summary="results/constraints/violations/{split}_summary.csv",
    wildcard_constraints:
        split="train|val|test",
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/constraint_violations_{split}.log",
    benchmark:
        "results/benchmarks/constraint_violations_{split}.tsv"
    script:
        "../scripts/constraints.py"
