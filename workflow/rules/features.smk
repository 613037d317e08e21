# Per-packet features: one extraction job per capture, then one merge.


rule extract_capture:
    input:
        unpack(extract_inputs),
    output:
        table="results/features/captures/{device}/{name}.parquet",
        report="results/features/captures/{device}/{name}.json",
    params:
        capture=lambda wildcards: vars(capture_of(wildcards)),
        strict=config["dataset"]["strict"],
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/extract_capture/{device}/{name}.log",
    benchmark:
        "results/benchmarks/extract_capture/{device}/{name}.tsv"
    script:
        "../scripts/extract.py"


rule merge_features:
    input:
        tables=capture_outputs("tables"),
        reports=capture_outputs("reports"),
    output:
        packets="results/features/packets.parquet",
        dictionary="results/features/feature_dictionary.csv",
        skipped="results/features/skipped_captures.csv",
        dropped="results/features/dropped_packets.csv",
    params:
        session_identifying=config["features"]["session_identifying"],
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/merge_features.log",
    benchmark:
        "results/benchmarks/merge_features.tsv"
    script:
        "../scripts/merge.py"
