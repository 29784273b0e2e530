"""The handlers of the catalogue's operations (adapters/operations/catalogue.py), one module
per group, and the routes that are no operation: /metrics, /openapi.json, /slack/commands.
adapters/web/dispatch.py makes the route table from both."""
