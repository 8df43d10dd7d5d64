"""The ``moralkit`` command: build the book, re-run one chapter, list chapters and profiles.

moralkit book [--profile quick|tiny|paper] [--only 01,02] [--keep-going] [--root DIR]
moralkit run 02 -p model gemma-3-270m -p layers -1,-2 [-o DIR] [--profile P] [--into-book]
moralkit run 02 -p ground_truth my_records.csv --check
moralkit fork 02 DIR [--keep-outputs [EXECUTED.ipynb]] [--profile tiny] [--force]
moralkit chapters [-v]
moralkit profiles

``moralkit run`` checks the chapter, the profile, every parameter's name and value, every input
file a parameter names, the data mirror, the cache and the output folder before a kernel starts
(:mod:`moralkit.book.preflight`); such a refusal exits with status 2, a failed chapter with 1,
Ctrl-C with 130. ``--check`` stops after the checks and prints the resolved values.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import yaml

from moralkit.book import (
    REPO_BOOK,
    BookLayout,
    ChapterFailed,
    ChapterRun,
    ChapterSource,
    RunInterrupted,
    build_book,
    chapter_parameter_names,
    ensure_mathjax,
    execute_chapter,
    find_chapter,
    list_chapters,
    run_jupyter_book,
    tidy_executed_notebook,
    unpublish_failed,
    write_generated_pages,
)
from moralkit.book.fork import fork_chapter
from moralkit.book.preflight import check_environment, check_run
from moralkit.profiles import DEFAULT_PROFILE, describe_profiles


def _cmd_book(args: argparse.Namespace) -> int:
    only = [x for part in (args.only or []) for x in part.split(",") if x.strip()]
    layout = BookLayout(Path(args.root).resolve()) if args.root else BookLayout()
    try:
        check_environment()
    except ValueError as exc:
        print(f"moralkit book: {exc}", file=sys.stderr)
        return 2
    try:
        build_book(
            profile=args.profile,
            only=only or None,
            keep_going=args.keep_going,
            strict=not args.no_strict,
            layout=layout,
        )
    except (ChapterFailed, RuntimeError, ValueError) as exc:
        print(f"moralkit book: {exc}", file=sys.stderr)
        return 1
    except RunInterrupted as stop:
        print(f"moralkit book: {stop.message}", file=sys.stderr)
        return 130
    return 0


def _name_value(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` (what :func:`_join_param_values` makes of ``-p NAME VALUE``)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME VALUE, got {text!r}")
    return name.strip(), value


def _join_param_values(argv: Sequence[str]) -> list[str]:
    """Rewrite ``-p NAME VALUE`` as ``--param=NAME=VALUE``.

    argparse refuses an option value that starts with '-' (``-p layers -1,-2``); joined, the
    value is taken verbatim. ``-p NAME=VALUE`` is accepted as it is.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("-p", "--param") and i + 1 < len(argv) and "=" in argv[i + 1]:
            out.append(f"--param={argv[i + 1]}")
            i += 2
        elif token in ("-p", "--param") and i + 2 < len(argv):
            out.append(f"--param={argv[i + 1]}={argv[i + 2]}")
            i += 3
        else:
            out.append(token)
            i += 1
    return out


def _collect_params(pairs: Sequence[tuple[str, str]] | None) -> dict[str, str]:
    """The ``-p`` values as text; their types are checked against the chapter's parameters."""
    params: dict[str, str] = {}
    for name, value in pairs or []:
        if name in params:
            raise ValueError(f"parameter {name!r} given twice")
        params[name] = value
    return params


def _run_paths(chapter: ChapterSource, args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """(executed notebook, output folder, kernel folder) of ``moralkit run``."""
    if args.into_book:
        executed = REPO_BOOK.executed_dir
        return executed / f"{chapter.chapter_id}.ipynb", executed / chapter.chapter_id, executed
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.output or Path("outputs") / "runs" / f"{chapter.chapter_id}-{stamp}")
    return out / f"{chapter.chapter_id}.ipynb", out, out


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        chapter = find_chapter(args.chapter)
        params = _collect_params(args.param)
        if "profile" in params:
            raise ValueError("give the profile with --profile, not -p profile")
        notebook, out, cwd = _run_paths(chapter, args)
        # every check before a kernel starts: environment, parameters, input files, -o
        checked = check_run(chapter, args.profile, params, out)
        if args.check:
            print(yaml.safe_dump(checked, sort_keys=False, allow_unicode=True), end="")
            print("[moralkit run --check] all checks passed; nothing was run")
            return 0
        print(f"[moralkit run] executing {chapter.chapter_id} (profile {args.profile}) ...")
        run = execute_chapter(chapter, notebook, out, args.profile, params, cwd=cwd)
    except ValueError as exc:  # bad chapter, parameter, file, profile or output folder: nothing ran
        print(f"moralkit run: {exc}", file=sys.stderr)
        return 2
    except RunInterrupted as stop:
        if args.into_book and stop.notebook is not None and stop.notebook.exists():
            failed = REPO_BOOK.build_dir / "failed" / stop.notebook.name
            failed.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(stop.notebook), failed)  # never a half-run page in the book
        print(f"moralkit run: {stop.message}", file=sys.stderr)
        return 130
    if not run.ok:
        return _report_failed_run(run, args.into_book)
    _report_run(run)
    return _rebuild_site(args.profile, run) if args.into_book else 0


def _report_failed_run(run: ChapterRun, into_book: bool) -> int:
    print(run.error, file=sys.stderr)
    if into_book:  # never leave a page without outputs in the book
        unpublish_failed(run)
    print(
        f"moralkit run: {run.chapter.chapter_id} failed; executed notebook: {run.notebook}",
        file=sys.stderr,
    )
    return 1


def _report_run(run: ChapterRun) -> None:
    print(f"[moralkit run] done in {run.wall_time_s:.0f} s")
    print(f"  executed notebook: {run.notebook}")
    for kind in ("figures", "tables"):
        files = sorted((run.output_dir / kind).glob("*"))
        if files:
            print(f"  {kind}: {run.output_dir / kind} ({len(files)} files)")
    print(f"  provenance: {run.output_dir / 'provenance.json'}")
    if run.kept:
        print(f"  kept {len(run.kept)} file(s) of yours in the folder: {', '.join(run.kept)}")


def _rebuild_site(profile: str, run: ChapterRun) -> int:
    tidy_executed_notebook(run.notebook)
    write_generated_pages(list_chapters(), profile)
    try:
        ensure_mathjax()
        html = run_jupyter_book()
    except RuntimeError as exc:
        print(f"moralkit run: {exc}", file=sys.stderr)
        return 1
    print(f"  site rebuilt: {html / 'index.html'}")
    return 0


def _cmd_fork(args: argparse.Namespace) -> int:
    try:
        chapter = find_chapter(args.chapter)
        executed = None
        if args.keep_outputs is not None:
            default = REPO_BOOK.executed_dir / f"{chapter.chapter_id}.ipynb"
            executed = Path(args.keep_outputs) if args.keep_outputs else default
        fork = fork_chapter(chapter, args.folder, args.profile, executed, args.force)
    except ValueError as exc:
        print(f"moralkit fork: {exc}", file=sys.stderr)
        return 2
    print(f"[moralkit fork] {chapter.chapter_id} -> {fork.notebook}")
    print(f"  how to run it: {fork.readme}")
    return 0


def _cmd_chapters(args: argparse.Namespace) -> int:
    chapters = list_chapters()
    if not chapters:
        print("no chapter notebooks found")
    for chapter in chapters:
        print(f"{chapter.chapter_id}: {chapter.title}")
        if args.verbose:
            print(f"    parameters: {', '.join(chapter_parameter_names(chapter))}")
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    print(describe_profiles(), end="")
    return 0


def _add_profile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"run profile (default: {DEFAULT_PROFILE})"
    )


def _add_book_command(sub: argparse._SubParsersAction) -> None:
    """``moralkit book``: every chapter, then the site."""
    book = sub.add_parser("book", help="execute every chapter and build the Jupyter Book site")
    _add_profile_option(book)
    book.add_argument(
        "--only", action="append", metavar="01,02", help="execute only these chapters"
    )
    book.add_argument(
        "--keep-going", action="store_true", help="run every chapter even after a failure"
    )
    book.add_argument(
        "--no-strict", action="store_true", help="do not turn Sphinx warnings into errors"
    )
    book.add_argument(
        "--root",
        metavar="DIR",
        help="folder holding _config.yml, _toc.yml and book/ (default: this checkout)",
    )
    book.set_defaults(func=_cmd_book)


def _add_run_command(sub: argparse._SubParsersAction) -> None:
    """``moralkit run``: one chapter with changed parameters."""
    run = sub.add_parser("run", help="re-execute one chapter with changed parameters")
    run.add_argument("chapter", help="chapter id or number, e.g. 02 or 02_categorical_indifference")
    run.add_argument(
        "-p",
        "--param",
        action="append",
        type=_name_value,
        metavar="NAME VALUE",
        help="set a parameter (repeatable), e.g. -p layers -1,-2 or -p dtype bfloat16; values"
        " are checked against the parameter's type before the chapter runs",
    )
    run.add_argument("-o", "--output", help="output folder (default outputs/runs/<chapter>-<time>)")
    _add_profile_option(run)
    run.add_argument(
        "--into-book",
        action="store_true",
        help="replace the book's copy of the chapter and rebuild the site",
    )
    run.add_argument(
        "--check",
        action="store_true",
        help="validate every parameter, input file and setting, print the resolved values"
        " (what the provenance would record) and exit without running the chapter",
    )
    run.set_defaults(func=_cmd_run)


def _add_fork_command(sub: argparse._SubParsersAction) -> None:
    """``moralkit fork``: one chapter as a standalone notebook."""
    fork = sub.add_parser(
        "fork", help="write one chapter as a standalone notebook (.ipynb) with a README"
    )
    fork.add_argument("chapter", help="chapter id or number, e.g. 02")
    fork.add_argument("folder", help="where to write <chapter>.ipynb and README.md")
    fork.add_argument(
        "--keep-outputs",
        nargs="?",
        const="",
        metavar="EXECUTED.ipynb",
        help="keep the outputs of an executed copy (default: the book's, book/_executed/)",
    )
    fork.add_argument("--profile", help="the profile the parameters cell starts with")
    fork.add_argument("--force", action="store_true", help="overwrite an earlier fork")
    fork.set_defaults(func=_cmd_fork)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``moralkit`` command."""
    parser = argparse.ArgumentParser(
        prog="moralkit",
        description="Companion to 'Mechanistic Origin of Moral Indifference in Language Models'"
        " (arXiv 2603.15615): build the book, re-run chapters.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    _add_book_command(sub)
    _add_run_command(sub)
    _add_fork_command(sub)

    chapters = sub.add_parser("chapters", help="list the chapters")
    chapters.add_argument("-v", "--verbose", action="store_true", help="show parameter names")
    chapters.set_defaults(func=_cmd_chapters)

    profiles = sub.add_parser("profiles", help="show the run profiles")
    profiles.set_defaults(func=_cmd_profiles)

    examples = sub.add_parser(
        "examples", help="write the example ground truth and benchmark (existing files are kept)"
    )
    examples.add_argument("folder", nargs="?", default="examples", help="default: examples/")
    examples.set_defaults(func=_cmd_examples)
    return parser


def _cmd_examples(args: argparse.Namespace) -> int:
    from moralkit.example_files import write_examples

    for path in write_examples(args.folder):
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``moralkit`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_join_param_values(argv))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
