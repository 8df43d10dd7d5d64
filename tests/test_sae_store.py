"""Trained SAEs on disk: sae-lens round trip, the centre beside it, the index for steering."""

import numpy as np
import pytest
import torch

from moralkit.sae import centred_reconstruction, load_sae_dir, load_trained
from moralkit.sae.config import preset
from moralkit.sae.store import register, sae_key, save_sae_dir
from moralkit.sae.train import train_sae


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 12)) + 2.0).astype(np.float32)
    return train_sae(x[:250], x[250:], preset("tiny", width=24, epochs=2), progress=False), x


def test_sae_lens_round_trip_gives_same_codes_and_reconstructions(trained, tmp_path):
    from sae_lens import SAE

    result, x = trained
    folder = save_sae_dir(tmp_path / "k", result.sae, result.centre, {"m": 1}, result.history)
    loaded = SAE.load_from_disk(folder / "sae")
    xc = torch.from_numpy(x - result.centre)
    with torch.no_grad():
        z0, z1 = result.sae.encode(xc), loaded.encode(xc)
        assert torch.equal(z0, z1)
        assert torch.equal(result.sae.decode(z0), loaded.decode(z1))
    assert np.array_equal(np.load(folder / "centre.npy"), result.centre)


def test_load_trained_finds_the_registered_folder(trained, tmp_path):
    result, x = trained
    folder = save_sae_dir(tmp_path / "k2", result.sae, result.centre, {}, features=np.array([3, 5]))
    register(tmp_path, "toy-model", 4, "tiny", "finetuned", folder)
    sae, centre, features = load_trained("toy-model", 4, "finetuned", "tiny", cache_dir=tmp_path)
    assert features.tolist() == [3, 5]
    h = torch.from_numpy(x[:5])
    expected = result.sae.decode(result.sae.encode(h - centre)) + centre
    assert torch.allclose(centred_reconstruction(sae, centre, h), expected.detach(), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no pretrained SAE"):
        load_trained("toy-model", 4, "pretrained", "tiny", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        load_sae_dir(tmp_path)


def test_cache_key_changes_with_any_field():
    base = {"model": "m", "layer": 1, "data": "abc", "train": {"lr": 1e-4}}
    assert sae_key(base) == sae_key(dict(base))
    assert sae_key(base) != sae_key({**base, "layer": 2})
    assert sae_key(base) != sae_key({**base, "train": {"lr": 1e-3}})
