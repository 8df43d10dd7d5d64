"""Every chapter ends with two or three "Try it" exercises whose commands validate.

Each exercise is a parameter change with its ``moralkit run`` command and what to look for. The
command is parsed by the real argument parser and its parameters, and any file they name, are
checked as ``moralkit run`` checks them before a kernel starts; nothing is executed.
"""

from __future__ import annotations

import re
import shlex

import pytest

from moralkit.book import check_parameters, find_chapter, list_chapters
from moralkit.book.preflight import check_input_files, resolved_parameters
from moralkit.cli import _collect_params, _join_param_values, build_parser
from moralkit.provenance import REPO_ROOT

CHAPTERS = list_chapters(REPO_ROOT / "notebooks")
_ITEM = re.compile(r"^(\d+)\. \*\*(.+?)\*\*", re.M)


def exercises(text: str) -> list[str]:
    """The items of the chapter's closing "## Try it" section."""
    headings = [m.start() for m in re.finditer(r"^## ", text, re.M)]
    start = text.find("\n## Try it\n")
    assert start >= 0 and start + 1 == headings[-1], "'## Try it' must be the last section"
    section = text[start:]
    starts = [m.start() for m in _ITEM.finditer(section)]
    return [section[a:b] for a, b in zip(starts, [*starts[1:], len(section)], strict=True)]


def command(item: str) -> str:
    (block,) = re.findall(r"```bash\n(.*?)\n\s*```", item, re.S)
    (line,) = [x.strip() for x in block.splitlines() if x.strip()]
    assert line.startswith("moralkit run "), line
    return line


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.chapter_id for c in CHAPTERS])
def test_every_chapter_ends_with_exercises_whose_parameters_validate(chapter, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # where the exercises say to run them
    monkeypatch.delenv("MORALKIT_NOTEBOOK_DIR", raising=False)
    items = exercises(chapter.path.read_text(encoding="utf-8"))
    assert 2 <= len(items) <= 3, chapter.chapter_id
    for item in items:
        assert "*Look for:*" in item, item
        argv = shlex.split(command(item))[1:]
        args = build_parser().parse_args(_join_param_values(argv))
        assert args.command == "run" and find_chapter(args.chapter) == chapter, item
        params = _collect_params(args.param)
        assert params, f"an exercise changes a parameter: {item}"
        check_parameters(chapter, args.profile, params)  # names, types, choices
        resolved = resolved_parameters(chapter, args.profile, params)
        check_input_files(resolved)  # a ground-truth file is read and validated
        default = resolved_parameters(chapter, args.profile, {})
        changed = [n for n in params if resolved[n] != default[n]]
        assert changed, f"the exercise repeats the profile's values: {item}"


def test_a_broken_exercise_would_be_caught():
    item = "1. **x.** y\n\n   ```bash\n   moralkit run 02 -p n_permutations many\n   ```\n"
    args = build_parser().parse_args(_join_param_values(shlex.split(command(item))[1:]))
    with pytest.raises(ValueError, match="n_permutations='many'"):
        check_parameters(find_chapter("02", CHAPTERS), args.profile, _collect_params(args.param))
