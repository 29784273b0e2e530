"""A directory swapped for a symlink (and back) while patches arrive: the sandbox's check and
the write race the swap (the hostile-input issue once saw the patch actor crash on a
FileNotFoundError here). Every answer must be a clear one, nothing may be written outside the
workspace, and the patch actor must never restart."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile.conftest import good_patch
from tests.node_process import NodeProcess

pytestmark = pytest.mark.timeout(120)


def test_a_directory_symlink_swap_during_patches_is_a_clean_refusal(
    make_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    node = make_node()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.py").write_text("OUTSIDE = 1\n")
    ws = node.workspace
    real = ws / "d"
    real.mkdir()
    (real / "f.py").write_text("x = 0\n")
    stop = threading.Event()

    def swap() -> None:
        aside = ws / "d.real"
        while not stop.is_set():
            try:
                os.rename(real, aside)
                os.symlink(outside, real)
                time.sleep(0.001)
                os.unlink(real)
                os.rename(aside, real)
            except OSError:
                pass
            time.sleep(0.001)

    swapper = threading.Thread(target=swap)
    swapper.start()
    statuses: list[int] = []
    try:
        api = node.client(timeout=30)
        for i in range(60):
            bodies = [
                {"format": "files", "files": [{"path": "d/f.py", "content": f"x = {i}\n"}]},
                {"patch": f"*** Begin Patch\n*** Add File: d/n{i}.py\n+y = {i}\n*** End Patch\n"},
                {"patch": "*** Begin Patch\n*** Delete File: d/f.py\n*** End Patch\n"},
            ]
            reply = api.post("/webhook", bodies[i % 3])
            statuses.append(reply.status)
            assert reply.status in (200, 403, 404, 409, 422, 503), reply.raw[:300]
            assert reply.status != 500
    finally:
        stop.set()
        swapper.join(10)
    if real.is_symlink():
        real.unlink()
    if (ws / "d.real").exists():
        shutil.rmtree(real, ignore_errors=True)
        os.rename(ws / "d.real", real)
    assert sorted(p.name for p in outside.iterdir()) == ["f.py"]
    assert (outside / "f.py").read_text() == "OUTSIDE = 1\n"
    health = node.client().get("/health").json
    assert health["actors"]["patch.main"]["restarts"] == 0, (health["actors"], statuses)
    good_patch(node)
