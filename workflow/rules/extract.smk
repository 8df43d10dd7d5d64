# Activations of one model (all the profile's layers and poolings), GPUs, memory and run time
# from the compute plan (moralkit.compute_plan). The cache entry is the one the chapters ask for.


def extract_resources(wildcards):
    chapter = wf.extraction_chapter(wildcards.model, PROFILE, CHAPTERS)
    return cp.job_resources("extract", PROFILE, chapter, wildcards.model, GPU)


rule extract:
    input:
        expand(f"{OUT}/data/{{name}}.json", name=DATA),
    output:
        f"{OUT}/activations/{{model}}.json",
    params:
        chapter=lambda w: wf.extraction_chapter(w.model, PROFILE, CHAPTERS),
        # several GPUs: device_map="auto" spreads the model over them
        device=lambda w: "--device auto" if extract_resources(w)["gpu"] > 1 else "",
        settings=lambda w: wf.job_settings(
            wf.extraction_chapter(w.model, PROFILE, CHAPTERS), PROFILE, model=w.model
        ),
    resources:
        gpu=lambda w: extract_resources(w)["gpu"],
        slurm_partition=lambda w: PARTITIONS[extract_resources(w)["gpu"] > 0],
        mem_mb=lambda w: extract_resources(w)["mem_mb"],
        runtime=lambda w: extract_resources(w)["runtime"],
    shell:
        "{PYTHON} {JOBS:q} extract --profile {PROFILE} --model {wildcards.model:q}"
        " --chapter {params.chapter} {params.device} --out {output:q}"
