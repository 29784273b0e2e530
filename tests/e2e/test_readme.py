"""README.md as a test, so that it cannot go stale: every command line of every ```sh block
runs, in README order, in a fresh directory set up as a user would have it, against the node
that the README's own first command starts; every ```toml block parses as config.

How each command runs is one entry of KNOWN (a pattern over the command, a method of Readme
that runs and checks it). A README command that no entry knows fails the test, naming the
README line: a new command must be taught here. Placeholders (YOUR-TUNNEL, PATCH_ID, the Slack
URL, the --until time) get real values of this run from PLACEHOLDERS; any other `...` left in a
command also fails.

The install step (`python3 -m venv .venv && .venv/bin/pip install -e ...`) is the one part
not run as written in the default suite (a from-scratch install takes minutes): `.venv` is a
symlink to this checkout's own venv, and the rest of the line runs as written.
`test_readme_setup_from_scratch` (marked slow) runs both setup commands for real in a copy of
the checkout.

The README's commands use the default port 5051 (its curl lines name it), so the test needs
5051 free on 127.0.0.1 and skips, saying so, when it is not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from adapters.config import load_config
from eventstore import SQLiteEventStore
from tests.adapters.slack.fake_slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ARTIFACTS = ROOT / "tests" / "artifacts"  # git-ignored
REPO_VENV = ROOT / ".venv"  # the checkout's own venv: what `.venv` links to in the temp dir
PORT = 5051
BASE = f"http://127.0.0.1:{PORT}"
TUNNEL_HOST = "readme-test.trycloudflare.com"
SIGNING_SECRET = "readme-test-signing-secret"
INSTALL = re.compile(
    r"python3 -m venv \.venv && \.venv/bin/pip install -e (?P<spec>\S+) && (?P<rest>.+)", re.S
)

# README placeholder (a regex) -> the Readme attribute with this run's real value.
PLACEHOLDERS: list[tuple[str, str]] = [
    (r"YOUR-TUNNEL\.trycloudflare\.com", "tunnel_host"),  # a tunnel's public host name
    (r"\bPATCH_ID\b", "patch_id"),  # the id in the first patch's answer
    (r"https://hooks\.slack\.com/services/\.\.\.", "slack_webhook_url"),  # a FakeSlack
    (r"(?<=SLACK_SIGNING_SECRET=)\.\.\.", "signing_secret"),
    (r"(?<=--until )2026-\S+", "until"),  # the time the first patch was applied
]
LEFTOVER = re.compile(r"\.\.\.|YOUR-|PATCH_ID|<[a-z-]+>")


# --- the README, parsed -------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    block: int  # 1-based index of its ```sh block
    line: int  # the README line it starts on
    text: str  # as written: comments stripped, `\` continuations and quoted newlines kept

    @property
    def flat(self) -> str:
        """One line, whitespace runs collapsed: what KNOWN's patterns match."""
        return " ".join(self.text.replace("\\\n", " ").split())

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.flat}"


def _scan(text: str) -> tuple[str, bool]:
    """`text` without its `#` comments (sh rules: outside quotes, at the start of a word), and
    whether a quote is still open at its end (the command goes on on the next line)."""
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote == "'":
            quote = None if c == "'" else quote
        elif c == "\\" and i + 1 < len(text):  # outside quotes or in double quotes
            out.append(text[i : i + 2])
            i += 2
            continue
        elif quote == '"':
            quote = None if c == '"' else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (not out or out[-1][-1].isspace()):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        out.append(c)
        i += 1
    return "".join(out), quote is not None


def sh_commands(markdown: str) -> list[Command]:
    commands: list[Command] = []
    blocks = re.finditer(r"^```sh\n(.*?)^```", markdown, re.M | re.S)
    for number, block in enumerate(blocks, 1):
        first = markdown.count("\n", 0, block.start(1)) + 1
        pending, start = "", first
        for offset, line in enumerate(block.group(1).splitlines()):
            if not pending:
                start = first + offset
            pending += line + "\n"
            text, open_quote = _scan(pending)
            text = text.rstrip()
            if open_quote or text.endswith("\\"):
                continue
            if text.strip():
                commands.append(Command(number, start, text.strip()))
            pending = ""
        assert not pending.strip(), f"README.md:{start}: a command that never ends: {pending!r}"
    return commands


def toml_blocks(markdown: str) -> list[tuple[int, str]]:
    return [
        (markdown.count("\n", 0, m.start(1)) + 1, m.group(1))
        for m in re.finditer(r"^```toml\n(.*?)^```", markdown, re.M | re.S)
    ]


# --- the user's directory, and the README run in it ---------------------------------------------
def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted's listenTCP
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _http(path: str, token: str | None = None, body: bytes | None = None, **headers: str) -> Any:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(BASE + path, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _user_env(home: Path) -> dict[str, str]:
    """The environment of a user's shell: this one's PATH and locale, HOME in the temp dir
    (`ghost service install --user` writes under it), none of this run's node or pytest
    settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GHOST_", "SLACK_", "NOTIFY_", "WATCHDOG_", "PYTEST_", "COV_"))
        # PYTHONUNBUFFERED too: a user's shell does not have it, and output that only shows
        # up unbuffered (a `--follow` that never flushes) must fail here.
        and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED")
    }
    return {**env, "HOME": str(home)}


@dataclass
class Background:
    """A command left running, as in its own terminal: its own process group (Ctrl-C there
    reaches the whole group), output to a file."""

    command: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def interrupt(self, timeout: float = 20) -> int:
        """Ctrl-C: SIGINT to the process group, then the exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                raise AssertionError(
                    f"{self.command!r} ignored Ctrl-C: {self.output()[-2000:]}"
                ) from exc
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class Readme:
    home: Path  # the user's directory: the workspace, and HOME
    slack: FakeSlack
    env: dict[str, str]
    tunnel_host: str = TUNNEL_HOST
    signing_secret: str = SIGNING_SECRET
    patch_id: str | None = None
    until: str | None = None
    node: Background | None = None
    background: list[Background] = field(default_factory=list)
    assignments: dict[int, list[str]] = field(default_factory=dict)  # block -> `X=...` lines

    @property
    def slack_webhook_url(self) -> str:
        return self.slack.webhook_url

    @property
    def token(self) -> str:
        return (self.home / ".ghost" / "token").read_text().strip()

    # --- running -------------------------------------------------------------------------------
    def substitute(self, command: Command) -> str:
        text = command.text
        for pattern, attr in PLACEHOLDERS:
            if re.search(pattern, text):
                value = getattr(self, attr)
                if value is None:
                    pytest.fail(f"{command}: needs {attr}, which no earlier README command gave")
                text = re.sub(pattern, str(value).replace("\\", "\\\\"), text)
        leftover = LEFTOVER.search(text)
        if leftover:
            pytest.fail(
                f"{command}: placeholder {leftover.group()!r} that the test does not know; "
                "add it to PLACEHOLDERS"
            )
        return text

    def _prelude(self, command: Command) -> str:
        # Variables set by earlier lines of the same block, as in the user's shell.
        return "".join(f"{line}\n" for line in self.assignments.get(command.block, []))

    def sh(
        self, command: Command, text: str | None = None, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        script = self._prelude(command) + (self.substitute(command) if text is None else text)
        kw.setdefault("cwd", self.home)
        kw.setdefault("env", self.env)
        return subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=kw.pop("timeout", 120),
            check=False,
            **kw,
        )

    def ok(self, command: Command, text: str | None = None, **kw: Any) -> str:
        run = self.sh(command, text, **kw)
        assert run.returncode == 0, f"{command}\nexit {run.returncode}\n{run.stdout}\n{run.stderr}"
        return run.stdout

    def start(self, command: Command, text: str | None = None) -> Background:
        log = self.home.parent / f"readme-{command.line}.log"
        script = self._prelude(command) + (self.substitute(command) if text is None else text)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", script],
                cwd=self.home,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = Background(command.flat, proc, log)
        self.background.append(started)
        return started

    def wait_serving(self, node: Background, timeout: float = 30) -> dict[str, Any]:
        node_json = self.home / ".ghost" / "node.json"

        def serving() -> dict[str, Any] | None:
            if "Address already in use" in node.output():  # taken since _port_free said free
                pytest.skip(f"127.0.0.1:{PORT} was taken meanwhile: the README needs it")
            assert node.proc.poll() is None, f"ghost-node exited: {node.output()[-3000:]}"
            try:
                info: dict[str, Any] = json.loads(node_json.read_text())
                _http("/health")
            except (OSError, ValueError):
                return None
            return info

        info: dict[str, Any] = _until(serving, "the README's ghost-node serving on 5051", timeout)
        assert info["port"] == PORT, info
        return info

    def wait_healthy(self) -> None:
        _until(lambda: _http("/health", self.token).get("status") == "ok", "/health ok")

    def stop_node(self) -> None:
        """Ctrl-C in the node's terminal: the README says it stops cleanly."""
        assert self.node is not None
        assert self.node.interrupt() == 0, self.node.output()[-3000:]
        assert not (self.home / ".ghost" / "node.json").exists()
        self.node = None

    # --- the commands ----------------------------------------------------------------------------
    def install_then(self, command: Command, m: re.Match[str]) -> None:
        """`python3 -m venv .venv && .venv/bin/pip install -e SPEC && REST`: the install is
        this checkout's venv, linked (the slow test does it for real); REST runs as written."""
        assert m["spec"] in (".", "'.[dev]'"), f"{command}: an install this test does not know"
        venv = self.home / ".venv"
        if not venv.exists():
            venv.symlink_to(REPO_VENV, target_is_directory=True)
        for tool in ("ghost-node", "ghost", *(("pytest",) if "dev" in m["spec"] else ())):
            assert (venv / "bin" / tool).exists(), f"{command}: the install gives no {tool}"
        rest = Command(command.block, command.line, m["rest"])
        dispatch(self, rest)

    def node_default(self, command: Command, m: re.Match[str]) -> None:
        """`.venv/bin/ghost-node` with no config: the README's claims about it, checked."""
        assert self.node is None, "a node is running already"
        self.node = self.start(command)
        info = self.wait_serving(self.node)
        state = self.home / ".ghost"
        assert info["host"] == "127.0.0.1"
        assert state.stat().st_mode & 0o777 == 0o700
        assert (state / "token").stat().st_mode & 0o777 == 0o600
        assert (state / "events.db").exists()
        _until(lambda: "dashboard:" in self.node.output() if self.node else False, "dashboard:")
        # stdout is a pipe here, not a terminal: the URL without the token (hostile-input 10)
        assert f"dashboard: {BASE}/dashboard (token: in " in self.node.output()
        assert self.token not in self.node.output()
        tree = _http("/tree", self.token)
        assert not any(f["path"].startswith(".ghost/") for f in tree["files"]), tree

    def run_pytest(self, command: Command, m: re.Match[str]) -> None:
        """`.venv/bin/pytest`: the suite this test is part of. Running it inside itself would
        recurse, so here it only collects, in the checkout; the slow test runs it in full."""
        run = self.sh(command, f"{ROOT}/.venv/bin/pytest --collect-only -q", cwd=ROOT, timeout=300)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "tests/e2e/test_readme.py::test_every_readme_command_runs" in run.stdout

    def assignment(self, command: Command, m: re.Match[str]) -> None:
        """`NAME=$(...)`: kept for the block's later lines; its value checked."""
        self.ok(command)
        value = self.ok(command, f'{command.text}\nprintf %s "${m["name"]}"')
        assert value == self.token, f"{command}: {value!r}"
        self.assignments.setdefault(command.block, []).append(command.text)

    def first_patch(self, command: Command, m: re.Match[str]) -> None:
        answer = json.loads(self.ok(command))
        assert answer["status"] == "applied", answer
        assert (self.home / "hello.md").read_text() == "hello from GPT\n"
        (changed,) = answer["files"]
        assert changed["path"] == "hello.md"
        assert changed["action"] == "add"
        assert changed["after_sha256"] == hashlib.sha256(b"hello from GPT\n").hexdigest()
        assert "+hello from GPT" in answer["diff"]
        assert isinstance(answer["position"], int)
        self.patch_id = answer["patch_id"]
        with SQLiteEventStore(self.home / ".ghost" / "events.db", readonly=True) as store:
            (applied,) = store.read_all(types=["PatchApplied"], streams=[f"patch-{self.patch_id}"])
        self.until = applied.recorded_at.isoformat()

    def openapi(self, command: Command, m: re.Match[str]) -> None:
        assert self.ok(command) == ""  # to the file
        schema = json.loads((self.home / "openapi.json").read_text())
        assert schema["openapi"].startswith("3.1")
        assert schema["servers"][0]["url"] == f"https://{TUNNEL_HOST}"
        assert schema["paths"]["/webhook"]["post"]["x-openai-isConsequential"] is True
        schemes = schema["components"]["securitySchemes"].values()
        assert any(s.get("scheme") == "bearer" for s in schemes), schema["components"]
        validator = pytest.importorskip("openapi_spec_validator")
        validator.validate(schema)

    def node_with_slack(self, command: Command, m: re.Match[str]) -> None:
        """The Slack section's node: the user stops the first one (Ctrl-C), writes ghost.toml
        with `ghost init` (as the README says) plus the README's [slack] block, and starts it."""
        if self.node is not None:
            self.stop_node()
        init = subprocess.run(
            [".venv/bin/ghost", "init"], cwd=self.home, env=self.env, capture_output=True, text=True
        )
        assert init.returncode == 0, init.stdout + init.stderr
        assert "wrote ghost.toml" in init.stdout
        slack_block = next(b for _, b in toml_blocks(README.read_text()) if "[slack]" in b)
        with (self.home / "ghost.toml").open("a") as config:
            config.write("\n" + slack_block)
        self.node = self.start(command)
        self.wait_serving(self.node)
        # The slash command, signed with the secret the command line gave: /ghost help.
        body = urlencode(
            {"command": "/ghost", "text": "help", "user_id": "U1", "user_name": "me",
             "response_url": self.slack.url + "/commands/1", "team_id": "T1",
             "channel_id": "C1"}
        ).encode()  # fmt: skip
        stamp = str(int(time.time()))
        digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
        answer = _http(
            "/slack/commands",
            body=body,
            **{
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": f"v0={digest.hexdigest()}",
            },
        )
        listed = json.dumps(answer)
        for sub in ("status", "patches", "show", "approve", "reject", "rollback", "pause"):
            assert sub in listed, answer

    def ghost_status(self, command: Command, m: re.Match[str]) -> None:
        self.wait_healthy()
        assert f"ghost-node ok at {BASE}" in self.ok(command)

    def ghost_audit(self, command: Command, m: re.Match[str]) -> None:
        out = self.ok(command)
        assert self.patch_id is not None
        assert self.patch_id in out, out
        assert "applied" in out, out

    def ghost_show(self, command: Command, m: re.Match[str]) -> None:
        out = self.ok(command)
        assert f"patch {self.patch_id}  [applied]" in out, out
        assert "+hello from GPT" in out

    def ghost_rollback(self, command: Command, m: re.Match[str]) -> None:
        assert self.node is not None, "the README rolls back through the running node"
        out = self.ok(command)
        assert f"rolled back patch {self.patch_id}" in out, out
        assert not (self.home / "hello.md").exists()
        pid = self.patch_id or "?"

        def told() -> bool:
            return any(pid in r.text and "rolled back" in r.text for r in self.slack.accepted())

        _until(told, "Slack told of the rollback")

    def ghost_replay_verify(self, command: Command, m: re.Match[str]) -> None:
        out = self.ok(command)
        assert "hash chain ok" in out, out
        assert "workspaces match the events" in out, out

    def ghost_replay_until(self, command: Command, m: re.Match[str]) -> None:
        out = self.ok(command)
        # At that moment the first patch was applied (it is rolled back by now): one patch,
        # applied, in the patches table (tables for people, no JSON dicts).
        assert "patches (1)" in out, out
        assert re.search(r"│ [0-9a-f]{16} │ applied ", out), out

    def ghost_events_follow(self, command: Command, m: re.Match[str]) -> None:
        follow = self.start(command)
        _until(lambda: "PatchRolledBack" in follow.output(), "the past events", 20)
        body = json.dumps(
            {"patch": "*** Begin Patch\n*** Add File: x.md\n+x\n*** End Patch\n", "dry_run": True}
        ).encode()
        _http("/webhook", self.token, body, **{"Content-Type": "application/json"})
        _until(lambda: "PatchDryRun" in follow.output(), "a live event in --follow", 20)
        assert follow.interrupt() == 0, follow.output()[-2000:]

    def ghost_doctor(self, command: Command, m: re.Match[str]) -> None:
        out = self.ok(command)
        lines = out.strip().splitlines()
        assert lines, out
        assert all(line.startswith("ok") for line in lines), out

    def service_install(self, command: Command, m: re.Match[str]) -> None:
        out = self.ok(command)
        unit = self.home / ".config" / "systemd" / "user" / "ghost-node.service"
        assert f"wrote {unit}" in out, out
        text = unit.read_text()
        for line in ("Type=notify", "Restart=on-failure", "NoNewPrivileges=yes"):
            assert f"\n{line}\n" in text, text
        assert re.search(r"^WatchdogSec=\d+$", text, re.M), text
        exec_start = re.search(r"^ExecStart=(.*)$", text, re.M)
        assert exec_start is not None
        assert exec_start[1] == (
            f"{ROOT}/bin/ghost-node --state-dir {self.home}/.ghost --workspace {self.home}"
        )
        # systemctl cannot run here (no user manager in this sandbox): the command prints the
        # two systemctl lines that start the unit, and that is what is checked.
        assert "systemctl --user daemon-reload" in out, out
        assert "systemctl --user enable --now ghost-node.service" in out, out
        analyze = shutil.which("systemd-analyze")
        if analyze:
            runtime = self.home / "run"
            runtime.mkdir(mode=0o700, exist_ok=True)
            run = subprocess.run(
                [analyze, "--user", "verify", str(unit)],
                env={**self.env, "XDG_RUNTIME_DIR": str(runtime)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert run.returncode == 0, run.stdout + run.stderr
            assert unit.name not in run.stdout + run.stderr, run.stdout + run.stderr


# A pattern over Command.flat (full match) -> the Readme method that runs and checks it.
KNOWN: list[tuple[str, Callable[[Readme, Command, re.Match[str]], None]]] = [
    (INSTALL.pattern, Readme.install_then),
    (r"\.venv/bin/ghost-node", Readme.node_default),
    (r"\.venv/bin/pytest", Readme.run_pytest),
    (r"(?P<name>TOKEN)=\$\(cat \.ghost/token\)", Readme.assignment),
    (
        r"curl -s -H \"Authorization: Bearer \$TOKEN\" -H 'Content-Type: application/json' "
        rf"{BASE}/webhook -d '\{{.*\}}'",
        Readme.first_patch,
    ),
    (
        r"curl -s -H \"Authorization: Bearer \$\(cat \.ghost/token\)\" "
        rf"\"{BASE}/openapi\.json\?server=https://YOUR-TUNNEL\.trycloudflare\.com\" "
        r"> openapi\.json",
        Readme.openapi,
    ),
    (
        r"SLACK_WEBHOOK_URL=https://hooks\.slack\.com/services/\.\.\. SLACK_SIGNING_SECRET=\.\.\. "
        r"\.venv/bin/ghost-node --config ghost\.toml",
        Readme.node_with_slack,
    ),
    (r"\.venv/bin/ghost status", Readme.ghost_status),
    (r"\.venv/bin/ghost audit", Readme.ghost_audit),
    (r"\.venv/bin/ghost show PATCH_ID", Readme.ghost_show),
    (r"\.venv/bin/ghost rollback PATCH_ID", Readme.ghost_rollback),
    (r"\.venv/bin/ghost replay --verify", Readme.ghost_replay_verify),
    (r"\.venv/bin/ghost replay --until 2026-\S+", Readme.ghost_replay_until),
    (r"\.venv/bin/ghost events --follow", Readme.ghost_events_follow),
    (r"\.venv/bin/ghost doctor", Readme.ghost_doctor),
    (r"\.venv/bin/ghost service install --systemd --user", Readme.service_install),
]


def _match(
    command: Command,
) -> tuple[Callable[[Readme, Command, re.Match[str]], None], re.Match[str]] | None:
    found = [(run, m) for pattern, run in KNOWN if (m := re.fullmatch(pattern, command.flat, re.S))]
    assert len(found) <= 1, f"{command}: several KNOWN entries match it"
    return found[0] if found else None


def dispatch(readme: Readme, command: Command) -> None:
    found = _match(command)
    if found is None:
        pytest.fail(f"{command}: a README command this test does not know; teach it in KNOWN")
    run, m = found
    run(readme, command, m)


# --- the tests ------------------------------------------------------------------------------------
def test_every_readme_command_is_known() -> None:
    """Fails fast (no node needed) on a README command the test cannot run."""
    commands = sh_commands(README.read_text())
    assert commands, "no ```sh block in README.md"
    unknown = [str(c) for c in commands if _match(c) is None]
    assert not unknown, "README commands this test does not know (teach them in KNOWN):\n" + (
        "\n".join(unknown)
    )
    for command in commands:
        if m := INSTALL.fullmatch(command.flat):
            rest = Command(command.block, command.line, m["rest"])
            assert _match(rest), f"{command}: after the install, {rest.flat!r} is unknown"


@pytest.fixture
def readme(tmp_path: Path) -> Iterator[Readme]:
    if not _port_free(PORT):
        pytest.skip(f"127.0.0.1:{PORT} is in use: the README's commands need the default port")
    home = tmp_path / "project"
    home.mkdir()
    (home / "app.py").write_text('print("hello")\n')  # the user's code
    slack = FakeSlack().start()
    run = Readme(home, slack, _user_env(home))
    try:
        yield run
    finally:
        for background in run.background:
            background.kill()
        slack.stop()


@pytest.mark.timeout(240)
def test_every_readme_command_runs(readme: Readme) -> None:
    commands = sh_commands(README.read_text())
    used: set[str] = set()
    for command in commands:
        found = _match(command)
        if found is None:
            pytest.fail(f"{command}: a README command this test does not know; teach it in KNOWN")
        used.add(found[0].__name__)
        if found[0] is Readme.install_then:
            rest = INSTALL.fullmatch(command.flat)
            assert rest is not None
            nested = _match(Command(command.block, command.line, rest["rest"]))
            used.add(nested[0].__name__ if nested else "?")
        dispatch(readme, command)
    if readme.node is not None:
        readme.stop_node()
    stale = {run.__name__ for _, run in KNOWN} - used
    assert not stale, f"KNOWN entries that no README command uses any more: {sorted(stale)}"


def test_readme_toml_blocks_parse_as_config(tmp_path: Path) -> None:
    blocks = toml_blocks(README.read_text())
    kinds = {"[[tunnel]]": "tunnels", "[slack]": "slack", "[[service]]": "services"}
    seen: set[str] = set()
    for line, block in blocks:
        headers = re.findall(r"^(\[\[?[a-z]+\]\]?)", block, re.M)
        assert headers, f"README.md:{line}: a toml block without a table"
        config_file = tmp_path / f"readme-{line}.toml"
        config_file.write_text(f'[[workspace]]\nname = "main"\npath = "."\n\n{block}')
        tomllib.loads(config_file.read_text())
        config = load_config(config_file)
        for header in set(headers):
            assert header in kinds, f"README.md:{line}: {header} is not checked here; add it"
            assert getattr(config, kinds[header]), f"README.md:{line}: {header} not in the config"
            seen.add(header)
        if "[[tunnel]]" in headers:
            assert [t.name for t in config.tunnels] == re.findall(r'^name = "(.*)"', block, re.M)
    assert seen == set(kinds), f"README toml blocks: {sorted(seen)}, expected {sorted(kinds)}"


# --- the slow one: the README's setup commands from scratch ------------------------------------
def _copy_checkout(dest: Path) -> None:
    """The files a clone would have (tracked, and new ones not ignored): no .venv, no .ghost."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for rel in filter(None, (p.decode() for p in listed)):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_readme_setup_from_scratch(tmp_path: Path) -> None:
    """Both setup commands exactly as written, in a copy of the checkout with no venv: the
    install really happens (pip's index and cache as configured), the node really serves, and
    the dev install's pytest runs the whole default suite."""
    if not _port_free(PORT):
        pytest.skip(f"127.0.0.1:{PORT} is in use: the README's commands need the default port")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and this checkout's .git to copy the checkout")
    checkout = tmp_path / "checkout"
    _copy_checkout(checkout)
    setup = [c for c in sh_commands(README.read_text()) if INSTALL.fullmatch(c.flat)]
    assert [INSTALL.fullmatch(c.flat)["rest"] for c in setup] == [  # type: ignore[index]
        ".venv/bin/ghost-node",
        ".venv/bin/pytest",
    ], setup
    env = {**_user_env(checkout), "HOME": os.environ.get("HOME", str(tmp_path))}  # pip's cache
    slack = FakeSlack().start()  # unused: Readme wants one
    readme = Readme(checkout, slack, env)
    try:
        # 1: install, then the node (in the foreground of its terminal: here, the background).
        readme.node = readme.start(setup[0], setup[0].text)
        readme.wait_serving(readme.node, timeout=1500)
        assert (checkout / ".venv" / "bin" / "ghost-node").exists()
        assert not (checkout / ".venv").is_symlink()
        readme.stop_node()
        # 2: the dev install and the whole default suite, as written.
        run = readme.sh(setup[1], setup[1].text, timeout=3300)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        log = ARTIFACTS / "readme-from-scratch.log"
        log.write_text(f"$ {setup[1].flat}\n{run.stdout}\n--- stderr\n{run.stderr}")
        # pytest's summary is at the end of stdout (pip's warnings go to stderr).
        tail = f"{run.stdout[-6000:]}\n(whole output: {log})"
        assert run.returncode == 0, tail
        assert re.search(r"\d+ passed", run.stdout), tail
    finally:
        for background in readme.background:
            background.kill()
        slack.stop()
