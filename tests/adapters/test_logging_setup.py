"""adapters/logging_setup.py: handlers, formats, rotation, and secrets never reaching output."""

from __future__ import annotations

import io
import json
import logging
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.config import LogConfig
from adapters.logging_setup import Redactor, configure_logging

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tok_9f8e7d6c5b4a"


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    # A private logger tree, so that the tests neither see nor disturb pytest's root handlers.
    log = logging.getLogger(f"ghost-test-{id(object())}")
    log.propagate = False
    yield log
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()


def isolate(log: logging.Logger) -> None:
    """pytest attaches its capture handlers to every non-propagating logger at the start of each
    test's call phase; they would see records before ours redact them. Drop them."""
    for h in list(log.handlers):
        log.removeHandler(h)


def test_text_to_stream_with_redaction(logger: logging.Logger) -> None:
    isolate(logger)
    out = io.StringIO()
    configure_logging(LogConfig(), secrets=[SECRET], stream=out, logger=logger)
    logger.info("token is %s", SECRET)
    logger.getChild("web").warning("header Bearer %s rejected", SECRET, extra={"peer": SECRET})
    logger.debug("not shown at info")
    text = out.getvalue()
    assert SECRET not in text
    assert "token is ***" in text
    assert "Bearer *** rejected" in text
    assert "peer='***'" in text
    assert "not shown" not in text
    assert " INFO " in text


def test_json_lines(logger: logging.Logger) -> None:
    isolate(logger)
    out = io.StringIO()
    configure_logging(
        LogConfig(format="json", level="debug"), secrets=[SECRET], stream=out, logger=logger
    )
    logger.debug("hello %s", "world", extra={"patch_id": "p1", "obj": {"k": SECRET}})
    try:
        raise ValueError(f"bad {SECRET}")
    except ValueError:
        logger.exception("failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["msg"] == "hello world"
    assert first["level"] == "debug"
    assert first["patch_id"] == "p1"
    assert SECRET not in json.dumps(first)  # a non-string extra, redacted in the final pass
    assert first["ts"].endswith("+00:00")
    assert second["msg"] == "failed"
    assert "ValueError: bad ***" in second["exc"]
    assert SECRET not in out.getvalue()


def test_secret_added_later_and_longest_first(logger: logging.Logger) -> None:
    isolate(logger)
    out = io.StringIO()
    redactor = configure_logging(LogConfig(), stream=out, logger=logger)
    logger.info("before: %s", SECRET)
    redactor.add(SECRET, "tok_", None, "")
    logger.info("after: %s", SECRET)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(f"before: {SECRET}")
    assert lines[1].endswith("after: ***")  # not "***9f8e..." from the shorter secret


def test_redactor_unit() -> None:
    r = Redactor(["a.b", "x*y"])
    assert r("a.b axb x*y xxy") == "*** axb *** xxy"  # regex characters are literal
    assert not Redactor([])
    assert Redactor([])("plain") == "plain"


def test_bad_format_args_do_not_crash(logger: logging.Logger) -> None:
    isolate(logger)
    out = io.StringIO()
    configure_logging(LogConfig(), secrets=[SECRET], stream=out, logger=logger)
    logger.info("two %s %s", SECRET)
    assert SECRET not in out.getvalue()
    assert "two" in out.getvalue()


def test_rotating_file_and_reconfigure(logger: logging.Logger, tmp_path: Path) -> None:
    isolate(logger)
    log_file = tmp_path / "logs" / "node.log"
    config = LogConfig(file=log_file, max_bytes=300, backups=2)
    out = io.StringIO()
    configure_logging(config, secrets=[SECRET], stream=out, logger=logger)
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    for i in range(30):
        logger.info("line %d with %s", i, SECRET)
    files = sorted(p.name for p in log_file.parent.iterdir())
    assert files == ["node.log", "node.log.1", "node.log.2"]
    for p in log_file.parent.iterdir():
        assert SECRET not in p.read_text()
    assert SECRET not in out.getvalue()
    # a second call replaces our handlers instead of doubling them
    configure_logging(LogConfig(), stream=out, logger=logger)
    assert len(logger.handlers) == 1


def test_foreign_handlers_are_kept(logger: logging.Logger) -> None:
    isolate(logger)
    other = logging.NullHandler()
    logger.addHandler(other)
    configure_logging(LogConfig(), stream=io.StringIO(), logger=logger)
    configure_logging(LogConfig(), stream=io.StringIO(), logger=logger)
    assert other in logger.handlers
    assert len(logger.handlers) == 2


def test_twisted_logs_reach_stdlib_redacted() -> None:
    # globalLogBeginner can begin once per process: run it in a fresh one.
    script = textwrap.dedent(
        f"""
        import io, sys
        sys.path.insert(0, {str(ROOT)!r})
        from adapters.config import LogConfig
        from adapters.logging_setup import configure_logging, route_twisted_logs
        configure_logging(LogConfig(), secrets=[{SECRET!r}])
        route_twisted_logs()
        from twisted.logger import Logger
        Logger(namespace="tx").info("twisted says {{s}}", s={SECRET!r})
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "twisted says ***" in result.stderr
    assert SECRET not in result.stderr
