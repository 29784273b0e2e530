"""A stand-in tunnel program for the dashboard test: once the node has written node.json, it
prints the node's own local URL (the way cloudflared prints its public one) and stays up."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

node_json = Path(sys.argv[1])
while True:
    try:
        print(json.loads(node_json.read_text())["url"], flush=True)
        break
    except (OSError, ValueError, KeyError):
        time.sleep(0.05)
while True:
    time.sleep(3600)
