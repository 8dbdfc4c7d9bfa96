"""Fused models and their deployments under names and versions: registered by the worker, listed and tuned
under /v1/deployments, resolved by inference."""
