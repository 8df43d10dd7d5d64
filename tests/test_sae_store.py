"""Trained SAEs on disk: sae-lens round trip, the centre beside it, lookup by the full key."""

import numpy as np
import pytest
import torch

from moralkit.sae import centred_reconstruction, load_sae_dir
from moralkit.sae.config import preset
from moralkit.sae.store import sae_key, save_sae_dir, stored_folder
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


def test_stored_folder_finds_an_sae_only_by_its_full_key(trained, tmp_path):
    result, x = trained
    payload = {"stage": "finetuned", "model": "toy-model", "layer": 4, "objective": "code"}
    folder = save_sae_dir(
        tmp_path / sae_key(payload), result.sae, result.centre, payload, features=np.array([3, 5])
    )
    assert stored_folder(tmp_path, dict(payload)) == folder
    sae, centre, features = load_sae_dir(folder)
    assert features.tolist() == [3, 5]
    h = torch.from_numpy(x[:5])
    expected = result.sae.decode(result.sae.encode(h - centre)) + centre
    assert torch.allclose(centred_reconstruction(sae, centre, h), expected.detach(), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no finetuned SAE for model='toy-model' layer=4"):
        stored_folder(tmp_path, {**payload, "objective": "page"})  # another variant: not found
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        load_sae_dir(tmp_path)


def test_cache_key_changes_with_any_field():
    base = {"model": "m", "layer": 1, "data": "abc", "train": {"lr": 1e-4}}
    assert sae_key(base) == sae_key(dict(base))
    assert sae_key(base) != sae_key({**base, "layer": 2})
    assert sae_key(base) != sae_key({**base, "train": {"lr": 1e-3}})
