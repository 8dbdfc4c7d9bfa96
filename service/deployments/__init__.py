"""GET /v1/deployments: which fused models are served, under which names and versions (read-only)."""
