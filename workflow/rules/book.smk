# The Jupyter Book build, after every chapter (and, for the paper profile, the judged arms).


rule site:
    input:
        expand(f"{OUT}/chapters/{{chapter}}.json", chapter=CHAPTERS),
        judged_arms(),
    output:
        f"{OUT}/site.json",
    params:
        strict="" if STRICT else "--no-strict",
    resources:
        mem_mb=8000,
        runtime=60,
    shell:
        "{PYTHON} {JOBS:q} site --profile {PROFILE} --root {ROOT:q} {params.strict}"
        " --out {output:q}"
