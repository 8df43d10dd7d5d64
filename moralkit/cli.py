"""The ``moralkit`` command: build the book, re-run one chapter, list chapters and profiles.

moralkit book [--profile quick|tiny|paper] [--only 01,02] [--keep-going]
moralkit run 02 -p model gemma-3-270m -p layers 0,6,12 [-o DIR] [--profile P] [--into-book]
moralkit chapters
moralkit profiles
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path


def _cmd_book(args: argparse.Namespace) -> int:
    from moralkit.book import ChapterFailed, build_book

    only = [x for part in (args.only or []) for x in part.split(",") if x.strip()]
    try:
        build_book(
            profile=args.profile,
            only=only or None,
            keep_going=args.keep_going,
            strict=not args.no_strict,
        )
    except (ChapterFailed, RuntimeError, ValueError) as exc:
        print(f"moralkit book: {exc}", file=sys.stderr)
        return 1
    return 0


def _parse_params(pairs: Sequence[Sequence[str]] | None) -> dict[str, object]:
    from moralkit.book import parse_cli_value

    params: dict[str, object] = {}
    for name, value in pairs or []:
        if name in params:
            raise ValueError(f"parameter {name!r} given twice")
        params[name] = parse_cli_value(value)
    return params


def _cmd_run(args: argparse.Namespace) -> int:
    from moralkit.book import (
        REPO_BOOK,
        ensure_mathjax,
        execute_chapter,
        find_chapter,
        list_chapters,
        run_jupyter_book,
        tidy_executed_notebook,
        unpublish_failed,
        write_generated_pages,
    )

    try:
        chapter = find_chapter(args.chapter)
        params = _parse_params(args.param)
        if "profile" in params:
            raise ValueError("give the profile with --profile, not -p profile")
        if args.into_book:
            notebook = REPO_BOOK.executed_dir / f"{chapter.chapter_id}.ipynb"
            out = REPO_BOOK.executed_dir / chapter.chapter_id
            cwd = REPO_BOOK.executed_dir
        else:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            out = Path(args.output or Path("outputs") / "runs" / f"{chapter.chapter_id}-{stamp}")
            notebook = out / f"{chapter.chapter_id}.ipynb"
            cwd = out
        print(f"[moralkit run] executing {chapter.chapter_id} (profile {args.profile}) ...")
        run = execute_chapter(chapter, notebook, out, args.profile, params, cwd=cwd)
    except ValueError as exc:
        print(f"moralkit run: {exc}", file=sys.stderr)
        return 2
    if not run.ok:
        print(run.error, file=sys.stderr)
        if args.into_book:  # never leave a page without outputs in the book
            unpublish_failed(run)
        print(
            f"moralkit run: {chapter.chapter_id} failed; executed notebook: {run.notebook}",
            file=sys.stderr,
        )
        return 1
    print(f"[moralkit run] done in {run.wall_time_s:.0f} s")
    print(f"  executed notebook: {run.notebook}")
    for kind in ("figures", "tables"):
        files = sorted((run.output_dir / kind).glob("*"))
        if files:
            print(f"  {kind}: {run.output_dir / kind} ({len(files)} files)")
    print(f"  provenance: {run.output_dir / 'provenance.json'}")
    if args.into_book:
        tidy_executed_notebook(run.notebook)
        write_generated_pages(list_chapters(), args.profile)
        try:
            ensure_mathjax()
            html = run_jupyter_book()
        except RuntimeError as exc:
            print(f"moralkit run: {exc}", file=sys.stderr)
            return 1
        print(f"  site rebuilt: {html / 'index.html'}")
    return 0


def _cmd_chapters(args: argparse.Namespace) -> int:
    from moralkit.book import chapter_parameter_names, list_chapters

    chapters = list_chapters()
    if not chapters:
        print("no chapter notebooks found")
    for chapter in chapters:
        print(f"{chapter.chapter_id}: {chapter.title}")
        if args.verbose:
            print(f"    parameters: {', '.join(chapter_parameter_names(chapter))}")
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from moralkit.profiles import describe_profiles

    print(describe_profiles(), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``moralkit`` command."""
    parser = argparse.ArgumentParser(
        prog="moralkit",
        description="Companion to 'Mechanistic Origin of Moral Indifference in Language Models'"
        " (arXiv 2603.15615): build the book, re-run chapters.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    book = sub.add_parser("book", help="execute every chapter and build the Jupyter Book site")
    book.add_argument("--profile", default="quick", help="run profile (default: quick)")
    book.add_argument(
        "--only", action="append", metavar="01,02", help="execute only these chapters"
    )
    book.add_argument(
        "--keep-going", action="store_true", help="run every chapter even after a failure"
    )
    book.add_argument(
        "--no-strict", action="store_true", help="do not turn Sphinx warnings into errors"
    )
    book.set_defaults(func=_cmd_book)

    run = sub.add_parser("run", help="re-execute one chapter with changed parameters")
    run.add_argument("chapter", help="chapter id or number, e.g. 02 or 02_categorical_indifference")
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="set a parameter (repeatable); 'a,b' gives a list, numbers are parsed",
    )
    run.add_argument("-o", "--output", help="output folder (default outputs/runs/<chapter>-<time>)")
    run.add_argument("--profile", default="quick", help="run profile (default: quick)")
    run.add_argument(
        "--into-book",
        action="store_true",
        help="replace the book's copy of the chapter and rebuild the site",
    )
    run.set_defaults(func=_cmd_run)

    chapters = sub.add_parser("chapters", help="list the chapters")
    chapters.add_argument("-v", "--verbose", action="store_true", help="show parameter names")
    chapters.set_defaults(func=_cmd_chapters)

    profiles = sub.add_parser("profiles", help="show the run profiles")
    profiles.set_defaults(func=_cmd_profiles)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``moralkit`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
