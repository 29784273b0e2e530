"""The HTTP API of ghost-node (SPEC §4) on twisted.web.

Modules, one job each:
- errors.py   the JSON error shape and ApiError
- http.py     ApiRequest/ApiResponse: what a route sees and returns
- auth.py     bearer token, HMAC signatures (replay memory), dashboard cookie + CSRF
- limits.py   body size counted while it arrives, per-client token buckets, body timeout
- metrics.py  prometheus-client collectors
- sse.py      the live event feed (one store subscription, fan-out, bounded clients)
- router.py   method/path dispatch, auth, rate limits, errors, metrics, request ids
- site.py     the twisted Site (request factory, timeouts, no directory listing)
- app.py      everything a route needs, built once by the WebhookActor
- routes/     one module per group of endpoints
- openapi.py  the OpenAPI 3.1 document for GPT Actions
- control.py  the Slack NodeControl over the same services
"""
