# Steered generation per (layer, strength) on the SAE model, the unsteered baseline once, and
# pairwise judging of each steered arm against it (network, rate-limited: resource judge_api).


def steer_resources(wildcards=None):
    return wf.model_resources(STEER_MODEL, "bfloat16", "cuda", CLUSTER)


rule generate_baseline:
    input:
        expand(f"{OUT}/data/{{name}}.json", name=DATA),
    output:
        f"{OUT}/generate/baseline.json",
    resources:
        gpu=lambda w: steer_resources()["gpus"],
        mem_mb=lambda w: steer_resources()["mem_mb"],
        runtime=600,
    shell:
        "{PYTHON} {JOBS:q} generate --profile {PROFILE} --chapter {SAE_CHAPTER}"
        " --model {STEER_MODEL} --limit {PROMPTS} --out {output:q}"


rule generate_steered:
    input:
        f"{OUT}/sae/{STEER_MODEL}/layer{{layer}}.json",
    output:
        f"{OUT}/generate/layer{{layer}}-s{{strength}}.json",
    resources:
        gpu=lambda w: steer_resources()["gpus"],
        mem_mb=lambda w: steer_resources()["mem_mb"],
        runtime=600,
    shell:
        "{PYTHON} {JOBS:q} generate --profile {PROFILE} --chapter {SAE_CHAPTER}"
        " --model {STEER_MODEL} --layer {wildcards.layer} --strength {wildcards.strength}"
        " --limit {PROMPTS} --out {output:q}"


rule judge:
    input:
        baseline=f"{OUT}/generate/baseline.json",
        steered=f"{OUT}/generate/layer{{layer}}-s{{strength}}.json",
    output:
        f"{OUT}/judge/layer{{layer}}-s{{strength}}.json",
    resources:
        judge_api=1,
        network=1,
        mem_mb=4000,
        runtime=240,
    shell:
        "{PYTHON} {JOBS:q} judge --layer {wildcards.layer} --strength {wildcards.strength}"
        " --baseline {input.baseline:q} --steered {input.steered:q} --out {output:q}"


def judged_arms():
    return [
        f"{OUT}/judge/layer{layer}-s{s}.json" for layer in STEER_LAYERS for s in STRENGTHS
    ]
