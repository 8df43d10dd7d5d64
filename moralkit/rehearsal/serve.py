"""Everything the ``rehearsal`` profile reads from outside, served locally.

(book: Methods › Re-running, reproduce.md.) :func:`serve` gives, for the duration of a block:

- the tiny twins of the paper's 23 models (:mod:`moralkit.models.twins`) in a hub cache under
  their real hub ids (``HF_HUB_CACHE``, ``HF_HUB_OFFLINE=1``);
- the synthetic Social-Chem-101 zip (:mod:`moralkit.rehearsal.social_chem`) on a file server
  at 127.0.0.1, at the official URL's path, named by a manifest overlay
  (``MORALKIT_MANIFEST_OVERLAY``) that keeps the official entry but for URL and row count;
- an OpenAI-compatible judge at 127.0.0.1 (``MORALKIT_JUDGE_*``): the scripted endpoint of
  :mod:`moralkit.evaluation.scripted_judge`, which also fails some calls and garbles some
  answers, so that both judging protocols meet failures. Its verdicts are hashes: numbers
  judged by it mean nothing.

The block yields the environment a run needs (:attr:`Rehearsal.env`); ``python -m
moralkit.rehearsal serve`` prints it and serves until interrupted, ``python -m
moralkit.rehearsal run`` runs the Snakemake workflow of the ``rehearsal`` profile inside it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

from moralkit.data.manifest import OVERLAY_ENV, DataFile, load_manifest
from moralkit.evaluation.judge import API_KEY_ENV, BASE_URL_ENV, MODEL_ENV
from moralkit.evaluation.scripted_judge import (
    ScriptedEndpoint,
    ScriptedReply,
    demo_script,
    serve_scripted_judge,
)
from moralkit.models.registry import PAPER_MODELS
from moralkit.models.twins import TWIN_VERSION
from moralkit.rehearsal.files import serve_files
from moralkit.rehearsal.hub_cache import write_twin_cache
from moralkit.rehearsal.social_chem import rehearsal_entry, synthetic_zip

SOCIAL_CHEM = "social-chem-101"
N_ROWS = 3000
JUDGE_MODEL = "rehearsal-scripted-judge"


@dataclass(frozen=True)
class Rehearsal:
    """A running rehearsal: the environment to run in, and what serves it."""

    env: dict[str, str]
    commits: dict[str, str]
    zip_url: str
    files: ThreadingHTTPServer  # its ``requests`` list what was downloaded
    judge: ScriptedEndpoint


def rehearsal_judge(prompt: str, attempt: int) -> ScriptedReply | str:
    """:func:`~moralkit.evaluation.scripted_judge.demo_script`, except that about 1 prompt in 20
    fails once with HTTP 500 (then answers) and 1 in 25 is answered with prose that no parser
    accepts, on every attempt."""
    bucket = int(hashlib.sha256(prompt.encode()).hexdigest()[8:16], 16)
    if bucket % 25 == 3:
        return "I cannot decide."
    if bucket % 20 == 7 and attempt == 1:
        return ScriptedReply(status=500)
    return demo_script(prompt, attempt)


def _toml(entry: DataFile) -> str:
    lines = [f"[files.{entry.name}]"]
    for field in fields(entry):
        value = getattr(entry, field.name)
        if field.name != "name" and value is not None:
            lines.append(f"{field.name} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@contextmanager
def serve(
    root: Path, models: tuple[str, ...] = PAPER_MODELS, n_rows: int = N_ROWS
) -> Iterator[Rehearsal]:
    """Serve the twins, the zip and the judge; ``root`` holds the hub cache and the overlay
    (created, kept: a second rehearsal in the same ``root`` reuses the twins)."""
    root = Path(root).resolve()
    hub = root / f"hub-twins-v{TWIN_VERSION}"  # a new construction never meets an old one
    commits = write_twin_cache(hub, models)
    official = load_manifest(load_manifest().path)[SOCIAL_CHEM]  # never an earlier overlay
    path = urlparse(official.url).path
    data = synthetic_zip(n_rows)
    with (
        serve_files({path.lstrip("/"): data}) as files,
        serve_scripted_judge(rehearsal_judge) as judge,
    ):
        entry = rehearsal_entry(official, files.base_url + path, n_rows)
        overlay = root / "manifest-overlay.toml"
        overlay.write_text(_toml(entry), encoding="utf-8")
        env = {
            "HF_HUB_CACHE": str(hub),
            "HF_HUB_OFFLINE": "1",
            OVERLAY_ENV: str(overlay),
            MODEL_ENV: JUDGE_MODEL,
            BASE_URL_ENV: judge.base_url,
            API_KEY_ENV: "rehearsal",
            "NO_PROXY": ",".join(
                filter(None, ["127.0.0.1", "localhost", os.environ.get("NO_PROXY")])
            ),
        }
        yield Rehearsal(env, commits, entry.url, files, judge)
