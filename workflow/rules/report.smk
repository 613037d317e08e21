# The results report: one self-contained HTML page with the configuration,
# software versions, machine, dataset summary, every table under
# results/tables/, every figure under results/figures/, the by_capture
# run's tables and figures and the benchmark timings of every rule. It runs
# after every other target of the run (report_inputs() in common.smk).


rule report:
    input:
        report_inputs(),
    output:
        html="results/report.html",
    params:
        # The folder the report reads; its files are the inputs above plus
        # the benchmark files the other jobs wrote.
        results_dir=lambda wildcards, output: os.path.dirname(output.html),
        report=config["report"],
        benchmark_patterns=benchmark_patterns,
        # The by_capture run's folder below the results folder, or None
        # when this configuration runs no by_capture split.
        by_capture_dir=lambda wildcards, output: (
            os.path.join(os.path.dirname(output.html), "by_capture") if by_capture_targets() else None
        ),
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    script:
        "../scripts/report.py"
