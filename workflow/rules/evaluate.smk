# SMOTE baseline (synthetic rows and balanced splits), the Random Forest,
# neural network and SVM per (balancing, protocol), and the classifier tables
# 7 and 8 with the comparison against the published values.
# Threads come from the profile or --set-threads (default 1).

from iotsynth.classify.tables import table_stems

EVALUATION_BALANCINGS = list(config["classifiers"]["balancings"])
EVALUATION_PROTOCOLS = list(config["classifiers"]["protocols"])
EVALUATION_PAIRS = [
    (balancing, protocol)
    for balancing in EVALUATION_BALANCINGS
    for protocol in EVALUATION_PROTOCOLS
]


rule smote:
    input:
        train="results/splits/train.parquet",
        val="results/splits/val.parquet",
        test="results/splits/test.parquet",
        preprocessor="results/preprocess/preprocessor.json",
    output:
        synthetic="results/synthetic/smote.parquet",
    params:
        target=config["balance"]["target"],
        smote=config["smote"],
        seed=config["seed"],
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/smote.log",
    benchmark:
        "results/benchmarks/smote.tsv"
    script:
        "../scripts/smote.py"


# The SMOTE rows have the layout of the generators' synthetic rows, so the
# generators' balance script builds the balanced splits.
rule smote_balance:
    input:
        train="results/splits/train.parquet",
        val="results/splits/val.parquet",
        test="results/splits/test.parquet",
        synthetic=rules.smote.output.synthetic,
    output:
        train="results/balanced/smote/{protocol}/train.parquet",
        val="results/balanced/smote/{protocol}/val.parquet",
        test="results/balanced/smote/{protocol}/test.parquet",
        counts="results/balanced/smote/{protocol}/counts.csv",
    params:
        target=config["balance"]["target"],
    wildcard_constraints:
        protocol="paper|real_test",
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/balance/smote_{protocol}.log",
    benchmark:
        "results/benchmarks/balance/smote_{protocol}.tsv"
    script:
        "../scripts/balance.py"


rule evaluate:
    input:
        unpack(evaluation_splits),
        preprocessor="results/preprocess/preprocessor.json",
    output:
        metrics="results/metrics/{balancing}/{protocol}.json",
        per_class="results/metrics/{balancing}/{protocol}_per_class.csv",
        predictions="results/predictions/{balancing}/{protocol}.parquet",
        figure=report(
            "results/figures/figure13_confusion_{balancing}_{protocol}.png",
            category="Classifiers",
        ),
    params:
        classifiers=config["classifiers"],
        seed=config["seed"],
    wildcard_constraints:
        balancing="[A-Za-z0-9_]+",
        protocol="paper|real_test",
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/evaluate/{balancing}_{protocol}.log",
    benchmark:
        "results/benchmarks/evaluate/{balancing}_{protocol}.tsv"
    script:
        "../scripts/evaluate.py"


rule tables:
    input:
        metrics=[
            f"results/metrics/{balancing}/{protocol}.json"
            for balancing, protocol in EVALUATION_PAIRS
        ],
        reference="resources/paper_results.csv",
    output:
        tables=[
            f"results/tables/{stem}.{suffix}"
            for stem in table_stems(EVALUATION_BALANCINGS, EVALUATION_PROTOCOLS)
            for suffix in ("csv", "md")
        ],
        comparison=report(
            "results/tables/paper_comparison.md",
            category="Classifiers",
        ),
    params:
        pairs=EVALUATION_PAIRS,
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/tables.log",
    benchmark:
        "results/benchmarks/tables.tsv"
    script:
        "../scripts/tables.py"


rule windows:
    input:
        predictions=[
            f"results/predictions/{balancing}/{protocol}.parquet"
            for balancing, protocol in EVALUATION_PAIRS
        ],
    output:
        csv="results/tables/windowed.csv",
        md="results/tables/windowed.md",
    params:
        pairs=EVALUATION_PAIRS,
        windows=config["windows"],
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/windows.log",
    benchmark:
        "results/benchmarks/windows.tsv"
    script:
        "../scripts/windows.py"
