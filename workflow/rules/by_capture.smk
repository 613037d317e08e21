# Scores of the stratified split beside those of the by_capture split, whose
# stages the Snakefile loads as the by_capture module.


rule split_comparison:
    input:
        stratified="results/tables/classifiers_summary.csv",
        by_capture="results/by_capture/tables/classifiers_summary.csv",
        stratified_windows="results/tables/windowed.csv",
        by_capture_windows="results/by_capture/tables/windowed.csv",
    output:
        csv=report(
            "results/tables/split_comparison.csv",
            category="Classifiers",
        ),
        md="results/tables/split_comparison.md",
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/split_comparison.log",
    benchmark:
        "results/benchmarks/split_comparison.tsv"
    script:
        "../scripts/split_comparison.py"
