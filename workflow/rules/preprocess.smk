# Scaling and one-hot encoding of the features, fitted on the training split
# only; the generators and the fidelity checks read it back.


rule preprocess:
    input:
        train=rules.split.output.train,
        dictionary=local("results/features/feature_dictionary.csv"),
    output:
        preprocessor="results/preprocess/preprocessor.json",
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/preprocess.log",
    benchmark:
        "results/benchmarks/preprocess.tsv"
    script:
        "../scripts/preprocess.py"
