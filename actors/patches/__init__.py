"""A workspace's patch path as plain calls, one module per job (tested without actors):

- `flow.py`: PatchFlow, the commands (submit, approve, reject, pause/resume, rollback) and the
  pipeline from a command to its outcome;
- `ledger.py`: the patch events of one workspace: appending them (held ones in one commit),
  the live views (a bounded cache), idempotency by client id, the answers;
- `recovery.py`: what a crash left, settled when the flow loads;
- `rollback.py`: the changes that put a patch's files back, the drift since, and the rollback
  transaction;
- `testing.py`: the tests after an apply, and on request between patches;
- `changes.py`: the file changes and diffs a patch or a rollback makes, and the texts of
  rejections that leave the machine.

PatchActor (`actors/patch_actor.py`) runs one PatchFlow per workspace in its own thread."""
