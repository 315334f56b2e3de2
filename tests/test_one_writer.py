"""One writer per folder, durable records, and child process trees that end with us."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sweetspot.lock import LOCK_NAME, folder_lock

POOL = Path(__file__).resolve().parents[1] / "examples" / "data" / "scored_pool.jsonl"


def _pair(bin_: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([bin_, "pair", "--input", str(POOL), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_a_second_command_on_a_folder_in_use_stops_at_once_naming_the_holder(
    tmp_path, sweetspot_bin
):
    out = tmp_path / "pairs"
    with folder_lock(out, "sweetspot run"):
        t0 = time.monotonic()
        r = _pair(sweetspot_bin, out)
        took = time.monotonic() - t0
        assert r.returncode == 2 and took < 30
        msg = " ".join(r.stderr.split())
        assert "in use by another sweetspot command" in msg
        assert f"pid {os.getpid()} on {socket.gethostname()}" in msg and "sweetspot run" in msg
        assert not (out / "sweet-spot.parquet").exists()
    r = _pair(sweetspot_bin, out)  # released: it runs, and leaves no lock behind
    assert r.returncode == 0, r.stderr
    assert pq.read_table(out / "sweet-spot.parquet").num_rows > 0
    assert not (out / LOCK_NAME).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note(tmp_path, sweetspot_bin):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "pairs"
    out.mkdir()
    holder = {"pid": dead.pid, "host": socket.gethostname(), "since": "2026-01-01T00:00:00+00:00",
              "command": "sweetspot run"}  # fmt: skip
    (out / LOCK_NAME).write_text(json.dumps(holder))
    r = _pair(sweetspot_bin, out)
    assert r.returncode == 0, r.stderr
    assert f"left by a process that is gone (pid {dead.pid}" in " ".join(r.stderr.split())


def test_run_and_sweep_lock_their_folder(tmp_path, sweetspot_bin):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("policy: {model: m}\n")
    for cmd in ("run", "sweep"):
        folder = tmp_path / cmd
        if cmd == "sweep":
            cfg.write_text("policy: {model: m}\nsweep: {n: [2], train: none}\n")
        with folder_lock(folder, "test"):
            r = subprocess.run([sweetspot_bin, cmd, str(cfg), "-o", str(folder)],
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert r.returncode == 2 and "in use by another sweetspot command" in r.stderr, cmd


def test_the_lock_is_exclusive_within_and_across_processes(tmp_path):
    with folder_lock(tmp_path / "f", "a"):
        with folder_lock(tmp_path / "f", "a again"):  # re-entrant in one process
            pass
        code = (
            "import sys\nfrom sweetspot.lock import folder_lock, FolderInUse\n"
            f"try:\n    with folder_lock({str(tmp_path / 'f')!r}): pass\n"
            "except FolderInUse as e:\n    print(e); sys.exit(3)\n"
        )
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode == 3 and "in use" in r.stdout
    with folder_lock(tmp_path / "f"):  # released when the block ended
        pass


def test_atomic_writes_are_durable(tmp_path, monkeypatch):
    from sweetspot import io as sio

    synced = []
    real = os.fsync

    def record(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    sio.write_json_atomic(tmp_path / "manifest.json", {"a": 1})
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"a": 1}
    # the temporary file's bytes before the rename, the folder's entry after it
    assert len(synced) == 2 and ".tmp-manifest.json" in synced[0]
    assert synced[1] == str(tmp_path)


LAUNCHER = textwrap.dedent(
    """
    # a stand-in launcher: starts a worker (as accelerate or torchrun would) and waits for it
    import subprocess, sys, time
    from pathlib import Path
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(sys.argv[-1]).with_suffix(".pids").write_text(f"{worker.pid}")
    worker.wait()
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (reaped later by init) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def _worker_pid(tmp_path: Path) -> int:
    for _ in range(200):
        found = list(tmp_path.glob("*.pids"))
        if found and found[0].read_text():
            return int(found[0].read_text())
        time.sleep(0.05)
    raise AssertionError("the launcher started no worker")


def test_a_training_timeout_ends_the_launcher_and_its_workers(tmp_path):
    from sweetspot.training.launch import TrainingLaunchError, launch_training

    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER)
    with pytest.raises(TrainingLaunchError, match="timed out"):
        launch_training([sys.executable, str(script)], tmp_path / "p.parquet", "m",
                        tmp_path / "model", {}, timeout=3)  # fmt: skip
    pid = _worker_pid(tmp_path)
    time.sleep(0.5)
    assert not _alive(pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_launcher_and_its_workers(tmp_path, sig):
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER)
    driver = textwrap.dedent(
        f"""
        import signal, sys
        from sweetspot.cli import _on_sigterm
        from sweetspot.training.launch import launch_training
        signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            launch_training([sys.executable, {str(script)!r}], {str(tmp_path / "p.parquet")!r},
                            "m", {str(tmp_path / "model")!r}, {{}})
        except KeyboardInterrupt:
            sys.exit(130)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", driver])
    pid = _worker_pid(tmp_path)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 130
    time.sleep(0.5)
    assert not _alive(pid)
