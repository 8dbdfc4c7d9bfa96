"""Live job events: GET /v1/fusion-jobs/{id}/events as server-sent events."""
