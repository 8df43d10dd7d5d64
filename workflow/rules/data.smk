# Fetch and verify one manifest file (mirror, then its URL): one job per file.


rule fetch_data:
    output:
        f"{OUT}/data/{{name}}.json",
    resources:
        network=1,
        mem_mb=2000,
        runtime=60,
    shell:
        "{PYTHON} {JOBS:q} fetch --name {wildcards.name:q} --out {output:q}"


rule data:
    input:
        expand(f"{OUT}/data/{{name}}.json", name=DATA),
