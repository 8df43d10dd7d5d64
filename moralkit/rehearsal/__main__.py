"""``python -m moralkit.rehearsal serve|run``: the rehearsal's local services, or the whole run.

- ``serve --root DIR``: build the twins' hub cache in DIR, serve the synthetic zip and the
  judge, print the environment (``export`` lines) and serve until interrupted (Ctrl-C);
- ``run --root DIR [--cores N] [--book-root PATH] [-- SNAKEMAKE ARGS]``: the same, and inside
  it the Snakemake workflow of the ``rehearsal`` profile on the local Snakemake profile (all
  chapters, then the site); exit status: Snakemake's.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from moralkit.provenance import REPO_ROOT
from moralkit.rehearsal.serve import serve


def snakemake_command(book_root: Path, workdir: Path, *extra: str) -> list[str]:
    """The workflow of the ``rehearsal`` profile on the local Snakemake profile."""
    return [
        str(Path(sys.executable).with_name("snakemake")),
        "-s", str(REPO_ROOT / "workflow" / "Snakefile"),
        "--profile", str(REPO_ROOT / "workflow" / "profiles" / "local"),
        "--directory", str(workdir),
        "--config", "profile=rehearsal", f"root={book_root}",
        *extra,
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moralkit.rehearsal", description=__doc__)
    parser.add_argument("command", choices=["serve", "run"])
    parser.add_argument("--root", type=Path, required=True, help="hub cache, overlay, caches")
    parser.add_argument("--book-root", type=Path, default=REPO_ROOT, help="the book to build")
    parser.add_argument("--cores", type=int, default=None, help="Snakemake --cores")
    parser.add_argument("extra", nargs="*", help="more Snakemake arguments (after --)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    started = time.perf_counter()
    with serve(root) as rehearsal:
        env = rehearsal.env  # moralkit's cache is the caller's: nothing in it is overwritten
        print(f"# twins of {len(rehearsal.commits)} models in {env['HF_HUB_CACHE']}", flush=True)
        if args.command == "serve":
            for key, value in env.items():
                print(f"export {key}={shlex.quote(value)}", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        cores = ["--cores", str(args.cores)] if args.cores else []
        cmd = snakemake_command(args.book_root.resolve(), root, *cores, *args.extra)
        code = subprocess.run(cmd, env={**os.environ, **env}).returncode
    print(f"# rehearsal finished in {time.perf_counter() - started:.0f} s (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
