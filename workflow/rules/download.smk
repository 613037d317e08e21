# Download of the public IoT Sentinel captures into resources/, used when the
# config names neither dataset.captures_dir nor dataset.capture_list.

from iotsynth.download import CAPTURES_DIR, VERIFIED_MARKER


# A download needs internet access, which cluster compute nodes often lack.
localrules:
    download_captures,


# The only output is the checksum report. The captures folder is not an
# output because Snakemake deletes the outputs of a failed job, and a failed
# verification must keep the downloaded files for inspection.
rule download_captures:
    input:
        manifest=config["dataset"]["download"]["manifest"],
    output:
        marker=VERIFIED_MARKER,
    params:
        url=config["dataset"]["download"]["url"],
        archive_folder=config["dataset"]["download"]["archive_folder"],
        timeout=config["dataset"]["download"]["timeout"],
        captures_dir=CAPTURES_DIR,
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/download_captures.log",
    benchmark:
        "results/benchmarks/download_captures.tsv"
    script:
        "../scripts/download.py"
