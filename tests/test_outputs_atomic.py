"""Stage outputs: one atomic helper, shared-project modes, a lock per folder, no leftovers."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from minigen import cli
from minigen.errors import UserError
from minigen.stages import search as S
from minigen.store import atomic
from archives import make_raw_dir, write_params
from conftest import run_cli
from test_search import FakeEvaluator, factory, tiny_params, write_mini

FILES = [f"part_{i}.txt" for i in range(12)]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_staged_dir_gives_0755_folders_and_0644_files_under_umask_022(tmp_path, umask_022):
    with atomic.staged_dir(tmp_path / "out") as staging:
        atomic.write_text(staging / "a.txt", "a")
        atomic.ensure_dir(staging / "sub")
        atomic.write_text(staging / "sub" / "b.txt", "b")
    out = tmp_path / "out"
    assert [mode(out), mode(out / "sub")] == [0o755, 0o755]
    assert [mode(out / "a.txt"), mode(out / "sub" / "b.txt")] == [0o644, 0o644]
    assert hidden(tmp_path) == []  # no staging folder, no lock file left


def test_the_search_output_folder_is_0755_under_umask_022(tmp_path, umask_022):
    mini_dir = write_mini(tmp_path / "mini")
    S.run(tiny_params(), mini_dir, tmp_path / "search", make_evaluator=factory(FakeEvaluator()))
    assert mode(tmp_path / "search") == 0o755
    assert {mode(p) for p in (tmp_path / "search").iterdir()} == {0o644}


def test_sample_output_folder_is_0755_under_umask_022(tmp_path, umask_022):
    make_raw_dir(tmp_path / "data" / "raw")
    write_params(tmp_path, data={"train_per_class": 2, "test_per_class": 1})
    proc = run_cli("sample", cwd=tmp_path)  # inherits the umask
    assert proc.returncode == 0, proc.stderr
    assert mode(tmp_path / "data" / "mini") == 0o755


def _swap_many(args: tuple[str, int, int]) -> str:
    final, worker, rounds = args
    for round_ in range(rounds):
        token = f"{worker}-{round_}"
        with atomic.staged_dir(final) as staging:
            for name in FILES:
                atomic.write_text(staging / name, token)
                time.sleep(0.0005)  # widen the window two unlocked swaps would collide in
    return "ok"


def test_concurrent_writers_of_one_folder_take_turns_and_all_succeed(tmp_path):
    final = str(tmp_path / "out")
    with multiprocessing.get_context("fork").Pool(8) as pool:
        results = pool.map(_swap_many, [(final, worker, 8) for worker in range(8)])
    assert results == ["ok"] * 8
    texts = {(tmp_path / "out" / name).read_text() for name in FILES}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(FILES)
    assert len(texts) == 1  # complete, and all from one writer
    assert hidden(tmp_path) == []


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from minigen.store import atomic
    with atomic.staged_dir(sys.argv[1]) as staging:
        atomic.write_text(staging / "half.txt", "half")
        print("ready", flush=True)
        time.sleep(120)
""")


def test_a_sigkilled_swap_leaves_a_staging_folder_the_next_run_removes(tmp_path):
    final = tmp_path / "out"
    with atomic.staged_dir(final) as staging:
        atomic.write_text(staging / "earlier.txt", "earlier")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(final)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and (leftovers[0] / "half.txt").is_file()
    assert (final / "earlier.txt").read_text() == "earlier"  # the earlier output is untouched
    with atomic.staged_dir(final) as staging:  # the dead holder's lock is gone: no wait
        atomic.write_text(staging / "new.txt", "new")
    assert hidden(tmp_path) == [] and [p.name for p in final.iterdir()] == ["new.txt"]


def test_a_kill_between_the_two_renames_gets_the_earlier_output_back(tmp_path):
    final = tmp_path / "out"
    old = tmp_path / ".out.old"  # what the swap leaves after `final -> .old` and nothing more
    old.mkdir()
    (old / "earlier.txt").write_text("earlier")
    with pytest.raises(RuntimeError):
        with atomic.staged_dir(final):
            raise RuntimeError("this run fails too")
    assert [p.name for p in final.iterdir()] == ["earlier.txt"] and hidden(tmp_path) == []


def test_a_sibling_output_with_a_longer_name_keeps_its_staging_folder(tmp_path):
    sibling = tmp_path / ".out.x.abcdefgh.tmp"  # the staging folder of output "out.x"
    sibling.mkdir()
    with atomic.staged_dir(tmp_path / "out"):
        pass
    assert sibling.is_dir()


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(UserError, match=r"cannot write .*a\.txt: No space left on device"):
        atomic.write_text(tmp_path / "a.txt", "a")
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


def test_a_file_where_the_output_folder_should_be_is_one_line(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(UserError, match="is not a folder"):
        with atomic.staged_dir(tmp_path / "out"):
            pass


def _dispatch_raising(error: BaseException) -> int:
    """`cli.dispatch` on a command that raises `error`."""
    def fail(args):
        raise error

    parser = cli.build_parser()
    args = parser.parse_args(["genome", "info", "x.json"])
    args.func = fail
    parser.parse_args = lambda argv: args
    return cli.dispatch(parser, [])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES])
def test_the_cli_turns_disk_errors_into_one_line_naming_the_file(capsys, code):
    assert _dispatch_raising(OSError(code, os.strerror(code), "/data/mini/train.npz")) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "/data/mini/train.npz" in err and os.strerror(code) in err


def test_the_cli_lets_a_bug_end_in_a_traceback(capsys):
    with pytest.raises(OSError):  # python -m minigen then prints the traceback and exits 1
        _dispatch_raising(OSError(errno.EIO, "Input/output error"))
    with pytest.raises(KeyError):
        _dispatch_raising(KeyError("a bug"))


def test_a_user_error_spanning_lines_is_printed_as_one(capsys):
    assert _dispatch_raising(UserError("first\nsecond")) == 2
    assert capsys.readouterr().err == "minigen: error: first second\n"
