# Each chapter notebook executed through papermill with its profile, into the book (as
# `moralkit book` does). Inputs: its source, its models' activations, its SAEs; its resolved
# parameters are the job's params, so a profile change that touches it re-runs it.


def chapter_inputs(wildcards):
    chapter = wildcards.chapter
    return {
        "source": str(wf.chapter_source(chapter)),
        "data": expand(f"{OUT}/data/{{name}}.json", name=DATA),
        "activations": [
            f"{OUT}/activations/{m}.json" for m in wf.chapter_models(chapter, PROFILE)
        ],
        "saes": sae_markers(chapter),
        "generated": generated_arms(chapter),
    }


def chapter_resources(wildcards):
    models = wf.chapter_models(wildcards.chapter, PROFILE)
    params = wf.chapter_parameters(wildcards.chapter, PROFILE)
    if not models:
        return {"gpus": 0, "mem_mb": 8000}
    # a chapter reads cached activations, but may extract variants (untrained twin) itself
    return wf.model_resources(models[0], params["dtype"], params["device"], CLUSTER)


rule chapter:
    input:
        unpack(chapter_inputs),
    output:
        f"{OUT}/chapters/{{chapter}}.json",
    params:
        settings=lambda w: wf.job_settings(w.chapter, PROFILE),
    resources:
        gpu=lambda w: chapter_resources(w)["gpus"],
        mem_mb=lambda w: max(8000, chapter_resources(w)["mem_mb"]),
        runtime=240,
    shell:
        "{PYTHON} {JOBS:q} chapter --profile {PROFILE} --chapter {wildcards.chapter}"
        " --root {ROOT:q} --out {output:q}"
