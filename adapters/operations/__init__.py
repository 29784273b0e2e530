"""The operation catalogue (SPEC §4): every operation the node offers, declared once with its
name, input and output schemas, scope, hints and one handler (`catalogue.py`); the schema
checks that give every front door the same 400 (`schema.py`); and the interfaces through
which handlers reach the node's actors, given at wiring time (`ports.py`)."""
