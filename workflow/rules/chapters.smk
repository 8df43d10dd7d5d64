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
    """The chapter's own work (cached activations are read, not extracted): no GPU for a
    chapter that runs no model (moralkit.compute_plan)."""
    return cp.job_resources("chapter", PROFILE, wildcards.chapter, gpu=GPU)


rule chapter:
    input:
        unpack(chapter_inputs),
    output:
        f"{OUT}/chapters/{{chapter}}.json",
    params:
        settings=lambda w: wf.job_settings(w.chapter, PROFILE),
    resources:
        gpu=lambda w: chapter_resources(w)["gpu"],
        slurm_partition=lambda w: PARTITIONS[chapter_resources(w)["gpu"] > 0],
        mem_mb=lambda w: chapter_resources(w)["mem_mb"],
        runtime=lambda w: chapter_resources(w)["runtime"],
    shell:
        "{PYTHON} {JOBS:q} chapter --profile {PROFILE} --chapter {wildcards.chapter}"
        " --root {ROOT:q} --out {output:q}"
