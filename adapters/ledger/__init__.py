"""The patch ledger: what a patch command and its answer are (`records`), the statuses a patch
goes through (`status`), and the projection that builds each patch's view from its events
alone (`projection`). Pure and small: the node, the web API, Slack and the CLI all read patches
through it, so they always agree."""
