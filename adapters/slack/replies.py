"""What `/ghost <sub>` does and answers: ephemeral Block Kit replies over a small, injected
`NodeControl` (the lead implements it over the actors; tests use a fake).

`answer(command, control)` never raises for bad input or a refused action: the developer always
gets a short ephemeral message that says what happened and what to type instead.

Wiring (POST /slack/commands): verify -> parse_command -> for a sub in SLOW_SUBCOMMANDS answer
`ack_reply` at once and run `answer` off the reactor thread, posting its result with
`respond_later(command.response_url, ...)`; otherwise answer `answer(...)` directly (all the
fast ones only read state). Both block: never call them on the reactor thread.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from adapters.slack import diffstat
from adapters.slack.commands import SlashCommand
from adapters.slack.message import clip, code_block, esc, section

# sub -> (argument name or None, what it does)
SUBCOMMANDS: dict[str, tuple[str | None, str]] = {
    "status": (None, "node health, actors, tunnels"),
    "patches": (None, "the latest patches"),
    "show": ("ID", "one patch with its files and diff"),
    "approve": ("ID", "apply a patch waiting for approval"),
    "reject": ("ID", "discard a patch waiting for approval"),
    "rollback": ("ID", "restore the files a patch changed"),
    "pause": (None, "queue new patches instead of applying them"),
    "resume": (None, "apply queued patches and continue"),
    "restart": ("ACTOR", "restart one actor"),
    "tunnel": (None, "tunnels and their public URLs"),
    "help": (None, "this list"),
}
# Answered with a quick "working on it" and then through response_url (SPEC §4: 3 s).
SLOW_SUBCOMMANDS = frozenset({"approve", "rollback", "restart"})
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class ControlError(Exception):
    """A refused action (`code`: not_found, conflict, invalid, unavailable) with a message fit
    to show the developer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NodeControl(Protocol):
    """The node as the slash command sees it. Every method returns plain data (the same shapes
    as the HTTP API's JSON) and raises ControlError when the node refuses."""

    def status(self) -> Mapping[str, Any]:
        """{status, paused, actors: {name: {state, restarts}}, tunnels: [...], position}"""
        ...

    def patches(self, limit: int) -> Sequence[Mapping[str, Any]]:
        """Newest first: [{patch_id, status, workspace, description}]"""
        ...

    def patch(self, patch_id: str) -> Mapping[str, Any]:
        """{patch_id, status, workspace, description, files, diff, tests}"""
        ...

    def approve(self, patch_id: str, by: str) -> Mapping[str, Any]: ...
    def reject(self, patch_id: str, by: str) -> Mapping[str, Any]: ...
    def rollback(self, patch_id: str, by: str) -> Mapping[str, Any]: ...
    def pause(self, by: str) -> Mapping[str, Any]: ...
    def resume(self, by: str) -> Mapping[str, Any]: ...
    def restart_actor(self, name: str, by: str) -> Mapping[str, Any]: ...

    def tunnels(self) -> Sequence[Mapping[str, Any]]:
        """[{name, state, url}]"""
        ...


def ephemeral(text: str, blocks: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"response_type": "ephemeral", "text": clip(text, 3000)}
    if blocks:
        out["blocks"] = [dict(b) for b in blocks]
    return out


def usage(sub: str) -> str:
    arg, _ = SUBCOMMANDS[sub]
    return f"/ghost {sub}" + (f" {arg}" if arg else "")


def help_reply(prefix: str = "") -> dict[str, Any]:
    lines = [f"`{usage(sub)}`: {what}" for sub, (_, what) in SUBCOMMANDS.items()]
    text = (prefix + "\n\n" if prefix else "") + "*ghost-runner commands*\n" + "\n".join(lines)
    return ephemeral(text, [section(text)])


def ack_reply(command: SlashCommand) -> dict[str, Any]:
    """The immediate answer to a slow subcommand; the result follows via response_url."""
    target = f" `{esc(command.args[0])}`" if command.args else ""
    return ephemeral(f":hourglass_flowing_sand: Working on `{command.sub}`{target}…")


def check(command: SlashCommand) -> dict[str, Any] | None:
    """An error reply for an unknown subcommand or wrong arguments, None when it is valid."""
    if command.sub not in SUBCOMMANDS:
        close = difflib.get_close_matches(command.sub, list(SUBCOMMANDS), n=1)
        hint = f" Did you mean `{usage(close[0])}`?" if close else ""
        return help_reply(f"Unknown command `{esc(clip(command.sub, 40))}`.{hint}")
    arg, _ = SUBCOMMANDS[command.sub]
    wanted = 1 if arg else 0
    if len(command.args) != wanted or (arg and not _ID.fullmatch(command.args[0])):
        return ephemeral(f"Usage: `{usage(command.sub)}`")
    return None


def answer(command: SlashCommand, control: NodeControl) -> dict[str, Any]:
    """Run the command against the node and build the ephemeral reply."""
    if command.sub == "ssl_check":
        return {}
    if command.sub == "help":
        return help_reply()
    error = check(command)
    if error is not None:
        return error
    arg = command.args[0] if command.args else ""
    try:
        match command.sub:
            case "status":
                return _status(control.status())
            case "patches":
                return _patches(control.patches(10))
            case "show":
                return _show(control.patch(arg))
            case "approve" | "reject" | "rollback":
                action = getattr(control, command.sub)
                return _done(command.sub, arg, action(arg, command.actor))
            case "pause":
                control.pause(command.actor)
                return ephemeral(":double_vertical_bar: Paused: new patches are queued.")
            case "resume":
                control.resume(command.actor)
                return ephemeral(":arrow_forward: Resumed: queued patches are being applied.")
            case "restart":
                result = control.restart_actor(arg, command.actor)
                state = f" ({esc(result['state'])})" if result.get("state") else ""
                return ephemeral(f":arrows_counterclockwise: Restarting `{esc(arg)}`{state}.")
            case "tunnel":
                return _tunnels(control.tunnels())
            case _:
                return help_reply()
    except ControlError as exc:
        return ephemeral(f":warning: {esc(clip(exc.message, 500))}")


def _status(status: Mapping[str, Any]) -> dict[str, Any]:
    head = f"Node *{esc(status.get('status', 'unknown'))}*"
    if status.get("paused"):
        head += " (paused)"
    if status.get("position") is not None:
        head += f", event #{esc(status['position'])}"
    lines = [head]
    actors = status.get("actors")
    for name, info in sorted(actors.items()) if isinstance(actors, Mapping) else []:
        info = info if isinstance(info, Mapping) else {}
        restarts = info.get("restarts", 0)
        lines.append(f"• `{esc(name)}` {esc(info.get('state', '?'))}, {esc(restarts)} restarts")
    text = "\n".join(lines)
    return ephemeral(text, [section(text)])


def _patches(patches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    if not patches:
        return ephemeral("No patches yet.")
    lines = []
    for p in patches:
        desc = f": {esc(clip(str(p['description']), 80))}" if p.get("description") else ""
        where = f" in `{esc(p['workspace'])}`" if p.get("workspace") else ""
        lines.append(
            f"• `{esc(p.get('patch_id', '?'))}` *{esc(p.get('status', '?'))}*{where}{desc}"
        )
    text = "*Latest patches*\n" + "\n".join(lines)
    return ephemeral(text, [section(text)])


def _show(patch: Mapping[str, Any]) -> dict[str, Any]:
    head = f"Patch `{esc(patch.get('patch_id', '?'))}` *{esc(patch.get('status', '?'))}*"
    parts = [head]
    if patch.get("description"):
        parts.append(f"> {esc(clip(str(patch['description']), 300))}")
    stats = diffstat.file_stats(patch)
    if stats:
        parts.append(f"*{diffstat.totals(stats)}*\n" + "\n".join(diffstat.summary_lines(stats)))
    tests = patch.get("tests")
    if isinstance(tests, Mapping) and tests.get("status"):
        parts.append(f"Tests: *{esc(tests['status'])}*")
    blocks = [section(p) for p in parts]
    diff = patch.get("diff")
    if isinstance(diff, str) and diff:
        blocks.append(section(code_block(diff, 2500, keep="head")))
    return ephemeral(head, blocks)


def _done(verb: str, patch_id: str, result: Mapping[str, Any]) -> dict[str, Any]:
    status = result.get("status")
    tail = f": now *{esc(status)}*" if status else ""
    return ephemeral(f":white_check_mark: {verb.capitalize()} `{esc(patch_id)}` done{tail}.")


def _tunnels(tunnels: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    if not tunnels:
        return ephemeral("No tunnels configured.")
    lines = []
    for t in tunnels:
        url = f" {esc(t['url'])}" if t.get("url") else ""
        lines.append(f"• `{esc(t.get('name', '?'))}` *{esc(t.get('state', '?'))}*{url}")
    text = "*Tunnels*\n" + "\n".join(lines)
    return ephemeral(text, [section(text)])
