"""Offline behavioural measures: scoring maths, bring-your-own-benchmark files, steering arms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sae_lens
import torch

from moralkit.evaluation.behaviour import BehaviourConfig, steered_behaviour
from moralkit.evaluation.schema import LABELLED, PAIRED, load_benchmark
from moralkit.figures.behaviour import plot_behaviour
from moralkit.models import load_model
from moralkit.models.scoring import answer_margins, continuation_logprobs
from moralkit.steering import SteeringConfig, SteeringSAE, active_hook_count


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-llama")


@pytest.fixture(scope="module")
def saes():
    torch.manual_seed(5)
    out = {}
    for stage in ("pretrained", "finetuned"):
        sae = sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=32, d_sae=48))
        out[(stage, 1)] = SteeringSAE(sae, torch.randn(32) * 0.3, selected=(0, 1, 2))
    return out


def _full_logprob(loaded, context: str, continuation: str) -> float:
    """Reference: log P(continuation | context) from the full model's logits."""
    tok = loaded.tokenizer
    head = tok(context)["input_ids"]
    tail = tok(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([head + tail])
    with torch.inference_mode():
        logp = torch.log_softmax(loaded.model(ids).logits[0].float(), dim=-1)
    return float(sum(logp[len(head) + i - 1, t] for i, t in enumerate(tail)))


def test_continuation_logprobs_match_full_logits(loaded):
    contexts = ["Help others.", "A much longer context to force some padding here."]
    conts = [" She helps.", " He walks away quickly."]
    got, counts = continuation_logprobs(loaded, contexts, conts, batch_size=2)
    for i in range(2):
        assert got[i] == pytest.approx(_full_logprob(loaded, contexts[i], conts[i]), abs=1e-4)
    assert list(counts) == [len(c.encode()) for c in conts]  # byte-level tiny tokenizer


def test_answer_margins_match_full_logits(loaded):
    prompts = ["Is it wrong? Answer:", "Short?"]
    got = answer_margins(loaded, prompts, "Y", "N", batch_size=2)
    tok = loaded.tokenizer
    y, n = (tok(a, add_special_tokens=False)["input_ids"][0] for a in ("Y", "N"))
    for i, p in enumerate(prompts):
        with torch.inference_mode():
            logits = loaded.model(torch.tensor([tok(p)["input_ids"]])).logits[0, -1]
        assert got[i] == pytest.approx(float(logits[y] - logits[n]), abs=1e-4)
    with pytest.raises(ValueError, match="different tokens"):
        answer_margins(loaded, prompts, " Yes", " Yo")


def test_bring_your_own_benchmark_from_files(tmp_path):
    labelled = pd.DataFrame({"text": ["I kicked a dog.", "I fed a dog."], "label": [1, 0]})
    labelled.to_csv(tmp_path / "mine.csv", index=False)
    paired = pd.DataFrame({"acceptable": ["returns it"], "unacceptable": ["keeps it"]})
    paired.to_json(tmp_path / "pairs.jsonl", orient="records", lines=True)
    a = load_benchmark(tmp_path / "mine.csv")
    b = load_benchmark(tmp_path / "pairs.jsonl")
    assert (a.name, a.schema, list(a.table["id"])) == ("mine", LABELLED, ["0", "1"])
    assert (b.schema, b.table.loc[0, "context"]) == (PAIRED, "")
    with pytest.raises(ValueError, match="'label'"):
        load_benchmark(labelled.assign(label=[1, 2]))
    with pytest.raises(ValueError, match="schema"):
        load_benchmark(pd.DataFrame({"prompt": ["x"]}))
    with pytest.raises(ValueError, match="row 1, column 'acceptable': ' ': a value is required"):
        load_benchmark(paired.assign(acceptable=[" "]))
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_benchmark(tmp_path / "nope.csv")


def test_steered_behaviour_arms_differences_and_cache(loaded, saes, tmp_path):
    rng = np.random.default_rng(0)
    texts = [
        f"I {w} my neighbour." for w in ("helped", "robbed", "thanked", "hit", "fed", "cheated")
    ]
    labelled = load_benchmark(
        pd.DataFrame({"text": texts, "label": [0, 1, 0, 1, 0, 1]}), name="mini-ethics"
    )
    paired = load_benchmark(
        pd.DataFrame(
            {
                "context": ["Be honest."] * 4,
                "acceptable": [f"Tom tells the truth {i}." for i in range(4)],
                "unacceptable": [f"Tom lies {rng.integers(9)}." for _ in range(4)],
            }
        ),
        name="mini-stories",
    )
    config = BehaviourConfig(
        positive_answer="Y",  # the tiny byte-level tokenizer splits " Yes" into bytes
        negative_answer="N",
        n_bootstrap=50,
        cache_dir=str(tmp_path),
        fluency_texts=("A cat sat.", "Rain fell."),
    )
    arms = [SteeringConfig("pretrained", 1, 1.0), SteeringConfig("finetuned", 1, 0.5)]
    result = steered_behaviour(loaded, [labelled, paired], arms, saes, config, progress=False)
    summary = result["summary"]
    assert set(summary["stage"]) == {"none", "pretrained", "finetuned"}
    assert len(summary) == 6 and summary["value"].between(0, 1).all()
    assert (summary["ci_low"] <= summary["value"]).all() and (
        summary["value"] <= summary["ci_high"]
    ).all()
    diffs = result["differences"].set_index(["benchmark", "arm"])
    none_rate = summary.set_index(["benchmark", "stage"])["value"]
    steered = summary.set_index(["benchmark", "arm"])["value"]
    for (bench, arm), row in diffs.iterrows():
        assert row["difference"] == pytest.approx(
            steered[(bench, arm)] - none_rate[(bench, "none")]
        )
    fluency = result["fluency"].set_index("stage")
    assert fluency.loc["none", "ratio_to_unsteered"] == pytest.approx(1.0)
    assert fluency["perplexity"].gt(1).all()
    assert fluency.loc["pretrained", "perplexity"] != fluency.loc["none", "perplexity"]
    assert len(result.resolution()) == 2
    assert "mini-stories (4 items)" in result.resolution_note()
    fig = plot_behaviour(summary, result["fluency"])
    assert len(fig.axes) == 3  # two benchmarks + fluency
    assert active_hook_count(loaded.model) == 0
    # second run reads every item score from the cache (files are not rewritten)
    files = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.csv")}
    assert len(files) == 3 * 3
    again = steered_behaviour(loaded, [labelled, paired], arms, saes, config, progress=False)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.csv")} == files
    pd.testing.assert_frame_equal(again["summary"], summary)


def test_missing_sae_for_a_layer_is_named(loaded, saes):
    bench = load_benchmark(pd.DataFrame({"text": ["x", "y"], "label": [0, 1]}))
    with pytest.raises(ValueError, match="finetuned SAE for layer 2"):
        steered_behaviour(loaded, [bench], [SteeringConfig("finetuned", 2)], saes, progress=False)
