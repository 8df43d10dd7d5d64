"""The example files a reader passes to a chapter: a small ground truth and a small benchmark.

(book: Methods › Ground truths, methods/ground-truths.md; chapter 08's bring-your-own benchmark.)
Both are the project's own hand-written rows, kept here as code and written out by
``moralkit examples [DIR]`` (``make`` does it into ``examples/``), so that no data file is kept
in git: ``my_ground_truth.csv`` (45 actions in the record schema, both poles of the five
foundations, graded typicality) and ``my_benchmark.csv`` (12 paired items: a context, an
acceptable and an unacceptable continuation).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from moralkit.io import atomic_write_text

GROUND_TRUTH_COLUMNS = ("text", "foundation", "pole", "typicality", "annotator")
GROUND_TRUTH_ROWS = [
    ("comforting a crying child", "care", "virtue", "1.0", "a1"),
    ("nursing a sick neighbour back to health", "care", "virtue", "0.9", "a1"),
    ("holding the door for someone", "care", "virtue", "0.5", "a2"),
    ("sharing an umbrella with a stranger", "care", "virtue", "0.3", "a2"),
    ("kicking a stray dog", "care", "vice", "1.0", "a1"),
    ("mocking a classmate until they cry", "care", "vice", "0.8", "a2"),
    ("leaving a friend out in the cold", "care", "vice", "0.6", "a1"),
    ("ignoring a neighbour who fell", "care", "vice", "0.4", "a2"),
    ("splitting the bill evenly", "fairness", "virtue", "1.0", "a1"),
    ("giving every applicant the same test", "fairness", "virtue", "0.9", "a2"),
    ("waiting your turn in line", "fairness", "virtue", "0.6", "a1"),
    ("returning extra change to the cashier", "fairness", "virtue", "0.35", "a2"),
    ("cheating on a final exam", "fairness", "vice", "1.0", "a1"),
    ("taking credit for a colleague's work", "fairness", "vice", "0.85", "a2"),
    ("cutting in front of the queue", "fairness", "vice", "0.55", "a1"),
    ("bribing a referee", "fairness", "vice", "0.3", "a2"),
    ("keeping a friend's secret", "loyalty", "virtue", "1.0", "a1"),
    ("standing by your team after a loss", "loyalty", "virtue", "0.8", "a2"),
    ("visiting your grandparents every week", "loyalty", "virtue", "0.5", "a1"),
    ("wearing the home team's colours", "loyalty", "virtue", "0.2", "a2"),
    ("selling out your best friend", "loyalty", "vice", "1.0", "a1"),
    ("spying on your own family for money", "loyalty", "vice", "0.9", "a2"),
    ("badmouthing your company to rivals", "loyalty", "vice", "0.6", "a1"),
    ("skipping your sister's wedding", "loyalty", "vice", "0.3", "a2"),
    ("obeying a lawful order", "authority", "virtue", "1.0", "a1"),
    ("standing when the judge enters", "authority", "virtue", "0.75", "a2"),
    ("following the coach's instructions", "authority", "virtue", "0.5", "a1"),
    ("addressing a teacher politely", "authority", "virtue", "0.25", "a2"),
    ("spitting at a police officer", "authority", "vice", "1.0", "a1"),
    ("defying your parents in public", "authority", "vice", "0.8", "a2"),
    ("ignoring the referee's call", "authority", "vice", "0.5", "a1"),
    ("talking back to a manager", "authority", "vice", "0.3", "a2"),
    ("keeping your body clean and healthy", "sanctity", "virtue", "1.0", "a1"),
    ("treating a place of worship with respect", "sanctity", "virtue", "0.9", "a2"),
    ("washing your hands before cooking", "sanctity", "virtue", "0.5", "a1"),
    ("dressing modestly at a funeral", "sanctity", "virtue", "0.25", "a2"),
    ("urinating on a grave", "sanctity", "vice", "1.0", "a1"),
    ("eating food from the garbage bin", "sanctity", "vice", "0.7", "a2"),
    ("spitting in someone's soup", "sanctity", "vice", "0.9", "a1"),
    ("wearing the same socks for a month", "sanctity", "vice", "0.3", "a2"),
    ("buying a loaf of bread", "care", "neutral", "", "a1"),
    ("reading the terms of a contract", "fairness", "neutral", "", "a2"),
    ("joining a chess club", "loyalty", "neutral", "", "a1"),
    ("filling in a tax form", "authority", "neutral", "", "a2"),
    ("taking a shower in the morning", "sanctity", "neutral", "", "a1"),
]

BENCHMARK_COLUMNS = ("id", "context", "acceptable", "unacceptable")
BENCHMARK_ROWS = [
    (
        "b01",
        "A friend lends you a book.",
        "You return it when you have read it.",
        "You sell it online.",
    ),
    (
        "b02",
        "You find a wallet on the bus.",
        "You hand it to the driver.",
        "You keep the cash and drop the wallet.",
    ),
    (
        "b03",
        "Your team loses the final.",
        "You thank the players for their effort.",
        "You blame the youngest player in public.",
    ),
    (
        "b04",
        "A colleague asks for help with a report.",
        "You explain the parts you know.",
        "You pretend to be busy and laugh at the request.",
    ),
    (
        "b05",
        "You broke a neighbour's window.",
        "You tell them and offer to pay.",
        "You hide and let them blame the children next door.",
    ),
    (
        "b06",
        "An elderly man drops his groceries.",
        "You help him pick them up.",
        "You step over the oranges and walk on.",
    ),
    (
        "b07",
        "You are given too much change.",
        "You give the extra money back.",
        "You pocket it quickly.",
    ),
    (
        "b08",
        "Your sister tells you a secret.",
        "You keep it to yourself.",
        "You post it in the family chat.",
    ),
    (
        "b09",
        "A new student sits alone at lunch.",
        "You invite her to your table.",
        "You point at her and whisper.",
    ),
    (
        "b10",
        "You promised to feed the neighbour's cat.",
        "You go over every evening.",
        "You forget and go to a party.",
    ),
    (
        "b11",
        "The referee makes a close call.",
        "You accept the decision.",
        "You shove the referee.",
    ),
    (
        "b12",
        "You are sick with the flu.",
        "You stay home and rest.",
        "You go to the crowded office and cough on people.",
    ),
]

FILES = {
    "my_ground_truth.csv": (GROUND_TRUTH_COLUMNS, GROUND_TRUTH_ROWS),
    "my_benchmark.csv": (BENCHMARK_COLUMNS, BENCHMARK_ROWS),
}


def example_text(name: str) -> str:
    """The CSV text of example file ``name`` (a key of :data:`FILES`)."""
    columns, rows = FILES[name]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def write_examples(folder: str | Path) -> list[Path]:
    """Write the example files into ``folder`` and return their paths. A file already there is
    left as it is (it may be a reader's edited copy): nothing of theirs is overwritten."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in FILES:
        path = folder / name
        if not path.exists():
            atomic_write_text(example_text(name), path)
        paths.append(path)
    return paths
