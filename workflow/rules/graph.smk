# Feature-relationship graph: Pearson, Spearman and mutual information between
# every pair of features, fitted on the training split only, with node
# centrality and figure 6 (the most central features).


rule graph:
    input:
        train="results/splits/train.parquet",
        dictionary=local("results/features/feature_dictionary.csv"),
    output:
        adjacency="results/graph/adjacency.csv",
        edges="results/graph/edges.csv",
        centrality="results/graph/centrality.csv",
        graphml="results/graph/feature_graph.graphml",
        figure=report(
            "results/figures/figure06_feature_graph.png",
            category="Feature graph",
        ),
    params:
        graph=config["graph"],
    conda:
        "../../envs/iotsynth.yaml"
    log:
        "results/logs/graph.log",
    benchmark:
        "results/benchmarks/graph.tsv"
    script:
        "../scripts/graph.py"
