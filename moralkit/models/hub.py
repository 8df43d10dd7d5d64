"""Is the Hugging Face hub reachable? Asked once per process, with a short time-out.

Without network, transformers retries each hub call for a minute or more before it fails. So
before any hub call moralkit checks once (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``, else one
HEAD request to the hub endpoint with a :data:`HUB_PROBE_TIMEOUT_S` time-out, through
huggingface_hub's own HTTP client so proxy settings apply) and, when the hub is out of reach,
asks transformers for local files only: an id that is not on disk then fails in seconds.
"""

from __future__ import annotations

from functools import lru_cache

HUB_PROBE_TIMEOUT_S = 3.0


class ModelNotAvailableError(OSError):
    """A model id that is neither offline nor loadable (no network, unknown id, missing wheel)."""


def hub_offline_by_setting() -> bool:
    """True when the hub is switched off (``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``)."""
    import huggingface_hub.constants

    return bool(huggingface_hub.constants.HF_HUB_OFFLINE)


@lru_cache(maxsize=1)
def hub_answers() -> bool:
    """One HEAD request to the hub endpoint (any HTTP answer counts); remembered per process."""
    import huggingface_hub.constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(huggingface_hub.constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - DNS, refused, time-out, proxy: all mean "not reachable"
        return False
    return True


def local_files_only() -> bool:
    """Whether hub calls must stay on disk: the hub is switched off or does not answer."""
    return hub_offline_by_setting() or not hub_answers()


def hub_status() -> str:
    """Why hub calls stay local, for error messages ('' when the hub is reachable)."""
    import huggingface_hub.constants

    if hub_offline_by_setting():
        return "HF_HUB_OFFLINE is set, so only the local Hugging Face cache was searched"
    if not hub_answers():
        return (
            f"the hub ({huggingface_hub.constants.ENDPOINT}) did not answer within "
            f"{HUB_PROBE_TIMEOUT_S:.0f} s, so only the local Hugging Face cache was searched"
        )
    return ""
