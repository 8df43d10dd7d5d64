"""The offline GGUF models pinned to references, so that a de-quantisation or conversion error
fails instead of silently changing every chapter's numbers (slow: loads both models).

Three references per model: the token embedding equals the ``gguf`` package's own
de-quantisation of the file (an independent reader); the top next token of a fixed prompt is
the factual answer (a model with garbled weights does not produce it); and a fingerprint of the
layer-0 hidden states (their norm and mean), recorded from the converted model that passes the
first two checks, catches any later change in the conversion.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch

from moralkit.models import get_model_spec, load_model
from moralkit.models.offline import _materialise_gguf

pytestmark = pytest.mark.slow

#: name -> (prompt, its factual next token, layer-0 norm, layer-0 mean) on that prompt
REFERENCES = {
    "smollm2-135m": ("The capital of France is", " Paris", 106.3274, -0.021321),
    "gemma-3-270m": ("Monday, Tuesday, Wednesday,", " Thursday", 3475.289, 1.323712),
}


@pytest.fixture(scope="module", params=sorted(REFERENCES))
def loaded(request):
    return load_model(request.param)


def test_embedding_equals_the_gguf_readers_dequantisation(loaded):
    with tempfile.TemporaryDirectory() as work:
        path = _materialise_gguf(get_model_spec(loaded.name), Path(work))
        tensor = next(t for t in gguf.GGUFReader(path).tensors if t.name == "token_embd.weight")
        reference = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    weight = loaded.model.get_input_embeddings().weight.detach().numpy()
    assert weight.shape == reference.shape
    rows = np.random.default_rng(0).choice(len(weight), 500, replace=False)
    np.testing.assert_allclose(weight[rows], reference[rows], rtol=0, atol=1e-6)


def test_top_next_token_and_layer0_fingerprint(loaded):
    prompt, answer, norm, mean = REFERENCES[loaded.name]
    ids = loaded.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = loaded.model(input_ids=ids, output_hidden_states=True)
    top = int(out.logits[0, -1].argmax())
    assert loaded.tokenizer.decode([top]) == answer
    layer0 = out.hidden_states[1][0]
    assert float(layer0.norm()) == pytest.approx(norm, rel=1e-3)
    assert float(layer0.mean()) == pytest.approx(mean, rel=1e-2, abs=1e-4)
