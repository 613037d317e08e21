# Train, validation and test splits of the packet table, and Table 6 (rows per
# device type and split). split.mode chooses stratified rows or whole captures.


rule split:
    input:
        packets=local("results/features/packets.parquet"),
    output:
        train="results/splits/train.parquet",
        val="results/splits/val.parquet",
        test="results/splits/test.parquet",
        table_csv=report(
            "results/tables/table06_split.csv",
            category="Splits",
        ),
        table_md="results/tables/table06_split.md",
    params:
        mode=config["split"]["mode"],
        shares={name: config["split"][name] for name in ("train", "val", "test")},
        seed=config["seed"],
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/split.log",
    benchmark:
        "results/benchmarks/split.tsv"
    script:
        "../scripts/split.py"
