"""The first ten minutes of a new user (issue 20), each trip of theirs against a real
`bin/ghost-node` started in a fresh project directory, as the README says to start it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.web.support import NODE
from tests.node_process import NodeProcess

PATCH = "*** Begin Patch\n*** Add File: hello.md\n+hello\n*** End Patch\n"
UNITTEST_FILE = (
    "import unittest\n\n\nclass Sums(unittest.TestCase):\n"
    "    def test_adds(self) -> None:\n        self.assertEqual(1 + 1, 2)\n"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    home = tmp_path / "project"
    home.mkdir()
    (home / "app.py").write_text('print("hello")\n')
    return home


@pytest.fixture
def node_in(project: Path) -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.kill()


def test_a_taken_port_is_one_line_naming_its_holder_and_creates_nothing(project: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(NODE), "--port", str(port)],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert f"held by pid {os.getpid()}" in lines[0], lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not (project / ".ghost").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_state_directory_stays_out_of_git(project: Path, node_in: list[NodeProcess]) -> None:
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    node_in.append(NodeProcess(project))
    assert (project / ".ghost" / ".gitignore").read_text() == "*\n"
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "app.py" in status
    assert ".ghost" not in status, status


def test_the_root_url_leads_to_the_dashboard(project: Path, node_in: list[NodeProcess]) -> None:
    node = NodeProcess(project)
    node_in.append(node)
    answer = node.client().get("/?token=" + node.token, auth=False)
    assert answer.status == 302
    assert answer.headers["location"] == "/dashboard"  # the token never travels on
    assert node.client().get(answer.headers["location"], auth=False).status == 200


def test_without_tests_the_answer_says_why_never_null(
    project: Path, node_in: list[NodeProcess]
) -> None:
    node = NodeProcess(project)
    node_in.append(node)
    api = node.client()
    tests = api.get("/health").json["tests"]["main"]
    assert tests["status"] == "skipped"
    assert tests["reason"].startswith("no test command found"), tests
    applied = api.post("/webhook", {"patch": PATCH})
    assert applied.json["tests"] == {"status": "skipped", "reason": tests["reason"]}
    dry = api.post("/webhook", {"patch": PATCH.replace("hello.md", "b.md"), "dry_run": True})
    assert dry.json["tests"] == {"status": "skipped", "reason": "dry run"}
    shown = api.get(f"/patches/{applied.json['patch_id']}").json
    assert shown["tests"]["status"] == "skipped"
    banner = (project / "ghost-node.stderr").read_text()
    assert "Traceback" not in banner


def test_a_python_projects_tests_are_found_and_run(
    project: Path, node_in: list[NodeProcess]
) -> None:
    (project / "tests").mkdir()
    (project / "tests" / "test_sums.py").write_text(UNITTEST_FILE)
    node = NodeProcess(project)
    node_in.append(node)
    api = node.client()
    tests = api.get("/health").json["tests"]["main"]
    # pytest when the python3 on PATH has it, else unittest: both run this file.
    assert " -m pytest" in tests["command"] or " -m unittest" in tests["command"], tests
    assert tests["origin"].startswith("detected: "), tests
    applied = api.post("/webhook", {"patch": PATCH})
    assert applied.json["status"] == "applied", applied.json
    assert applied.json["tests"]["status"] == "passed", applied.json["tests"]
    # A failing test after a patch rolls it back: the detected command is a real judge.
    broken = PATCH.replace("hello.md", "tests/test_broken.py").replace(
        "+hello", "+" + UNITTEST_FILE.replace("1 + 1, 2", "1 + 1, 3").replace("\n", "\n+")[:-1]
    )
    failed = api.post("/webhook", {"patch": broken})
    assert failed.json["tests"]["status"] == "failed", failed.json
    assert not (project / "tests" / "test_broken.py").exists()


def test_test_command_false_turns_detection_off(project: Path, node_in: list[NodeProcess]) -> None:
    (project / "test_sums.py").write_text(UNITTEST_FILE)
    (project / "ghost.toml").write_text(
        '[[workspace]]\nname = "main"\npath = "."\ntest_command = false\n'
    )
    node = NodeProcess(project, "--config", "ghost.toml")
    node_in.append(node)
    tests = node.client().get("/health").json["tests"]["main"]
    assert tests == {"status": "skipped", "reason": "test_command = false in the config"}
    assert json.loads((project / ".ghost" / "node.json").read_text())["port"] == node.port
