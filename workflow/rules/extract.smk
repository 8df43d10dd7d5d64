# Activations of one model (all the profile's layers and poolings), GPU and memory sized from
# the registry's parameter count. The cache entry is the one the chapters ask for.


def extract_resources(wildcards):
    chapter = wf.extraction_chapter(wildcards.model, PROFILE, CHAPTERS)
    params = wf.chapter_parameters(chapter, PROFILE)
    res = wf.model_resources(wildcards.model, params["dtype"], params["device"], CLUSTER)
    return res


rule extract:
    input:
        expand(f"{OUT}/data/{{name}}.json", name=DATA),
    output:
        f"{OUT}/activations/{{model}}.json",
    params:
        chapter=lambda w: wf.extraction_chapter(w.model, PROFILE, CHAPTERS),
        # several GPUs: device_map="auto" spreads the model over them
        device=lambda w: "--device auto" if extract_resources(w)["gpus"] > 1 else "",
        settings=lambda w: wf.job_settings(
            wf.extraction_chapter(w.model, PROFILE, CHAPTERS), PROFILE, model=w.model
        ),
    resources:
        gpu=lambda w: extract_resources(w)["gpus"],
        mem_mb=lambda w: extract_resources(w)["mem_mb"],
        runtime=lambda w: wf.extraction_runtime_min(w.model, wf.ComputeAssumptions().n_records),
    shell:
        "{PYTHON} {JOBS:q} extract --profile {PROFILE} --model {wildcards.model:q}"
        " --chapter {params.chapter} {params.device} --out {output:q}"
