# One SAE per (model, layer): pretraining then fine-tuning, with the SAE chapter's settings.


rule sae:
    input:
        f"{OUT}/activations/{{model}}.json",
    output:
        f"{OUT}/sae/{{model}}/layer{{layer}}.json",
    params:
        settings=lambda w: wf.job_settings(SAE_CHAPTER, PROFILE),
    resources:
        gpu=lambda w: cp.job_resources("sae", PROFILE, SAE_CHAPTER, gpu=GPU)["gpu"],
        slurm_partition=lambda w: PARTITIONS[
            cp.job_resources("sae", PROFILE, SAE_CHAPTER, gpu=GPU)["gpu"] > 0
        ],
        mem_mb=lambda w: cp.job_resources("sae", PROFILE, SAE_CHAPTER, gpu=GPU)["mem_mb"],
        runtime=lambda w: cp.job_resources("sae", PROFILE, SAE_CHAPTER, gpu=GPU)["runtime"],
    shell:
        "{PYTHON} {JOBS:q} sae --profile {PROFILE} --chapter {SAE_CHAPTER}"
        " --model {wildcards.model:q} --layer {wildcards.layer} --out {output:q}"


def sae_markers(chapter):
    """The SAEs a chapter trains, or steers with (then it starts after they exist)."""
    return [f"{OUT}/sae/{m}/layer{layer}.json" for m, layer in wf.chapter_saes(chapter, PROFILE)]
