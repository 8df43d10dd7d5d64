"""``moralkit run`` around the chapter: --check, the output folder's owner and lock, Ctrl-C, the
cache and the data mirror (issue 21: --check and bad-input rows 1, 5, 6, 7, 8)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from shared_data import SHARED_DATA, needs_mirror
from workflow_runs import REPO, SNAKEMAKE, snakemake

from moralkit.book.output_dirs import RUN_LOCK, prepare_run_dir, record_output_files
from moralkit.cli import main
from moralkit.data.fetch import fetch
from moralkit.data.manifest import load_manifest
from moralkit.notebooks import OUTPUT_MARKER
from moralkit.paths import DataMirrorError

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
WAIT = FIXTURES / "wait"
EXAMPLE = REPO / "examples" / "my_ground_truth.csv"


@pytest.fixture
def demo(monkeypatch, tmp_path):
    monkeypatch.setenv("MORALKIT_NOTEBOOK_DIR", str(FIXTURES))
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------ --check
def test_check_prints_resolved_values_and_runs_nothing(demo, capsys):
    code = main(["run", "01", "--profile", "tiny", "-p", "n_points", "7", "-o", "out", "--check"])
    out = capsys.readouterr().out
    assert code == 0
    checked = yaml.safe_load(out[: out.index("[moralkit run --check]")])
    assert checked["chapter"] == "01_demo_chapter" and checked["profile"] == "tiny"
    assert checked["params"]["n_points"] == 7  # converted to the parameter's type
    assert checked["params"]["model"] == ["smollm2-135m"]  # the profile's value, resolved
    assert checked["params"]["layers"] == "0,15,-1"
    assert checked["environment"]["MORALKIT_CACHE"] == str((demo / "cache").resolve())
    assert checked["output"].endswith("out (new folder)")
    assert "nothing was run" in out
    assert not (demo / "out").exists()


def test_check_reads_a_ground_truth_file_and_records_its_checksum(demo, capsys):
    assert main(["run", "01", "-p", "ground_truth", str(EXAMPLE), "--check"]) == 0
    out = capsys.readouterr().out
    checked = yaml.safe_load(out[: out.index("[moralkit run --check]")])
    assert checked["params"]["ground_truth"] == str(EXAMPLE)
    from moralkit.io import sha256_of

    (entry,) = checked["input_files"]
    assert entry["sha256"] == sha256_of(EXAMPLE) and "45 records" in entry["read"]


def test_check_refuses_a_bad_ground_truth_file_naming_row_and_column(demo, capsys):
    bad = demo / "mine.csv"
    bad.write_text("text,foundation,pole\nhelping,care,virtue\nlying,honesty,vice\n")
    assert main(["run", "01", "-p", "ground_truth", "mine.csv", "--check"]) == 2
    err = capsys.readouterr().err
    assert f"file {bad}: row 2 (line 3), column 'foundation': 'honesty'" in err


def test_check_refuses_what_a_run_would_refuse(demo, capsys):
    (demo / "mine").mkdir()
    (demo / "mine" / "thesis.tex").write_text("x")
    assert main(["run", "01", "-o", "mine", "--check"]) == 2
    assert "already holds files that moralkit did not write" in capsys.readouterr().err
    assert main(["run", "01", "-p", "seed", "-1", "--check"]) == 2
    assert "seed='-1'" in capsys.readouterr().err


# ------------------------------------------------------------------ row 7: the cache
def test_unwritable_cache_is_refused_at_start_naming_it(demo, monkeypatch, capsys):
    """Issue 21, bad input #7: a cache nobody can write to (under a regular file: root too)."""
    (demo / "afile").write_text("")
    monkeypatch.setenv("MORALKIT_CACHE", str(demo / "afile" / "cache"))
    assert main(["run", "01", "-o", "out"]) == 2
    err = capsys.readouterr().err
    assert f"MORALKIT_CACHE={demo / 'afile' / 'cache'} is not writable" in err
    assert not (demo / "out").exists()
    assert main(["book", "--profile", "tiny", "--root", str(demo)]) == 2
    assert "MORALKIT_CACHE=" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache_folder_is_refused_at_start(demo, monkeypatch, capsys):
    cache = demo / "ro"
    cache.mkdir()
    cache.chmod(0o555)
    monkeypatch.setenv("MORALKIT_CACHE", str(cache))
    try:
        assert main(["run", "01", "--check"]) == 2
    finally:
        cache.chmod(0o755)
    assert "is not writable (Permission denied)" in capsys.readouterr().err


# ------------------------------------------------------------------ row 8: the mirror
def test_a_relative_mirror_is_resolved_once_where_it_is_read(tmp_path, monkeypatch):
    """Issue 21, bad input #8 (API): resolved against the folder the process is in when first
    read, written back absolute, so a later change of folder (a kernel, a job) reads the same."""
    (tmp_path / "mirror" / "here").mkdir(parents=True)
    (tmp_path / "mirror" / "here" / "f.txt").write_text("x")
    manifest_file = tmp_path / "m.toml"
    manifest_file.write_text(
        '[files.f]\nurl = "http://127.0.0.1:9/f.txt"\nmirror_path = "here/f.txt"\n'
        'licence = "x"\ncitation = "x"\nbytes = 1\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", "mirror")
    manifest = load_manifest(manifest_file)
    assert fetch("f", manifest) == tmp_path / "mirror" / "here" / "f.txt"
    assert os.environ["MORALKIT_DATA_MIRROR"] == str(tmp_path / "mirror")
    monkeypatch.chdir("/")
    assert fetch("f", manifest) == tmp_path / "mirror" / "here" / "f.txt"


def test_a_missing_mirror_is_named_before_any_download(tmp_path, monkeypatch, demo, capsys):
    """Issue 21, bad input #8: no download is tried (the URL would refuse) and the error names
    the variable, its value and the folder it resolved to."""
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", "../no-such-mirror")
    with pytest.raises(DataMirrorError) as err:
        fetch("moralstrength-care")
    assert "MORALKIT_DATA_MIRROR=../no-such-mirror (resolved to" in str(err.value)
    assert str((tmp_path / ".." / "no-such-mirror").resolve()) in str(err.value)
    assert main(["run", "01", "-o", "out"]) == 2
    assert "MORALKIT_DATA_MIRROR=../no-such-mirror" in capsys.readouterr().err


@pytest.mark.slow
@needs_mirror
@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake not installed")
def test_the_workflow_resolves_a_relative_mirror_where_snakemake_started(tmp_path):
    """Issue 21, bad input #8 (workflow): jobs run in --directory; ../shared/data still means
    the folder the user started snakemake in; a mirror that does not exist stops it, named."""
    relative = os.path.relpath(SHARED_DATA, REPO)
    target = "_build/workflow/tiny/data/moralstrength-care.json"
    args = (target, "--cores", "1", "--config", "profile=tiny")
    run = snakemake(tmp_path, *args, env={"MORALKIT_DATA_MIRROR": relative, "PWD": str(REPO)})
    assert run.returncode == 0, run.stdout[-3000:]
    marker = json.loads((tmp_path / target).read_text())
    # resolved: ../shared may itself be a link
    assert Path(marker["path"]) == (SHARED_DATA / "moralstrength" / "care.tsv").resolve()
    env = {"MORALKIT_DATA_MIRROR": "../no-such-mirror", "PWD": str(REPO)}
    run = snakemake(tmp_path / "second", *args, env=env)
    assert run.returncode != 0
    assert "MORALKIT_DATA_MIRROR=../no-such-mirror (resolved to" in run.stdout
    assert "NameResolutionError" not in run.stdout and "fetch_data" not in run.stdout


# ------------------------------------------------------------------ rows 5 and 6: processes
def start_run(folder: Path, out: Path, *extra: str) -> subprocess.Popen:
    """``moralkit run`` of the waiting chapter, as a user starts it in a terminal."""
    env = {**os.environ, "MORALKIT_NOTEBOOK_DIR": str(WAIT), "MORALKIT_CACHE": str(folder / "c")}
    cmd = [sys.executable, "-m", "moralkit.cli", "run", "01", "-o", str(out), *extra]
    return subprocess.Popen(cmd, cwd=folder, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.communicate()}")
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow  # a kernel start and a Ctrl-C, twice: about 20 s
def test_ctrl_c_leaves_one_line_and_no_half_result(tmp_path):
    """Issue 21, bad input #5: SIGINT (Ctrl-C) during the chapter: one line, exit 130; a folder
    this run made is removed, an earlier run's folder is marked interrupted (the user's file
    in it kept), and the kernel does not outlive the run."""
    out = tmp_path / "new"
    proc = start_run(tmp_path, out)
    wait_for(out / "kernel.pid", proc)
    kernel = int((out / "kernel.pid").read_text())
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    lines = [x for x in stderr.splitlines() if x.startswith("moralkit run:")]
    assert len(lines) == 1 and "01_wait interrupted after" in lines[0]
    assert f"output folder {out} removed" in lines[0]
    assert not out.exists()
    assert gone(kernel)

    earlier = prepare_run_dir(tmp_path / "earlier")
    (earlier.path / "run.json").write_text("{}")
    record_output_files(earlier)
    (earlier.path / "notes.md").write_text("mine")
    proc = start_run(tmp_path, earlier.path)
    wait_for(earlier.path / "kernel.pid", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "marked interrupted in its run.json" in stderr
    record = json.loads((earlier.path / "run.json").read_text())
    assert record["status"] == "interrupted" and "interrupted" in record["error"]
    assert (earlier.path / "notes.md").read_text() == "mine"
    listed = json.loads((earlier.path / OUTPUT_MARKER).read_text())["files"]
    assert "tables/partial.csv" in listed and "notes.md" not in listed  # the next run clears


@pytest.mark.slow  # one kernel start: about 10 s
def test_a_second_run_into_a_held_folder_is_refused(tmp_path):
    """Issue 21, bad input #6: two `moralkit run -o` into one folder at once: the second is
    refused (exit 2) naming the first run's process; the first finishes unharmed."""
    out, release = tmp_path / "out", tmp_path / "release"
    first = start_run(tmp_path, out, "-p", "release", str(release))
    wait_for(out / "kernel.pid", first)
    second = start_run(tmp_path, out)
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 2
    assert f"output folder {out} is in use by another moralkit run (process {first.pid})" in stderr
    release.write_text("go")
    stdout, stderr = first.communicate(timeout=90)
    assert first.returncode == 0, stderr
    assert (out / "done.txt").read_text() == "done"
    assert json.loads((out / "run.json").read_text())["status"] == "ok"
    assert (out / RUN_LOCK).is_file()  # kept; an unlocked lock file means nothing
    again = start_run(tmp_path, out, "--check")  # free again once the first has finished
    assert again.wait(timeout=60) == 0


# ------------------------------------------------------------------ row 1: the user's files
@pytest.mark.slow  # two kernel starts: about 15 s
def test_a_rerun_keeps_the_users_files_in_the_output_folder(tmp_path):
    """Issue 21, bad input #1: run, add notes to the folder, run again with the same -o: the
    notes stay (and are named), moralkit's files are replaced; an executed notebook the user
    edited makes the next run refuse, naming it."""
    out, release = tmp_path / "out", tmp_path / "release"
    release.write_text("go")
    first = start_run(tmp_path, out, "-p", "release", str(release))
    assert first.wait(timeout=90) == 0, first.communicate()
    (out / "notes.md").write_text("what I saw")
    (out / "tables" / "mine.csv").write_text("x\n")
    (out / "done.txt").unlink()
    second = start_run(tmp_path, out, "-p", "release", str(release))
    stdout, stderr = second.communicate(timeout=90)
    assert second.returncode == 0, stderr
    assert "kept 2 file(s) of yours in the folder: notes.md, tables/mine.csv" in stdout
    assert (out / "notes.md").read_text() == "what I saw"
    assert (out / "tables" / "mine.csv").read_text() == "x\n"
    assert (out / "done.txt").exists()  # written again by the second run
    with (out / "01_wait.ipynb").open("a") as handle:
        handle.write(" ")
    third = start_run(tmp_path, out)
    _, stderr = third.communicate(timeout=60)
    assert third.returncode == 2 and "01_wait.ipynb" in stderr and "were changed" in stderr


# ------------------------------------------------------------------ set-up
def test_bootstrap_refuses_a_full_disk_before_installing(tmp_path):
    # CI once died halfway through pip with "No space left on device": the set-up checks the
    # free space first, names the disk and the need, and leaves no half-made venv behind
    for name in ("scripts/bootstrap.sh", "pyproject.toml"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes((REPO / name).read_bytes())
    env = {**os.environ, "MORALKIT_INSTALL_MB": str(10**12), "MORALKIT_VENV": "venv"}
    run = subprocess.run(
        ["bash", "scripts/bootstrap.sh"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 1
    assert "MB free on the disk that holds venv" in run.stderr and "needs about" in run.stderr
    assert not (tmp_path / "venv").exists()
