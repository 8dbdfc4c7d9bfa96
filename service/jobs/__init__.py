"""Fusion jobs: a spec, validated and queued; its state, progress and report, kept in the database."""
