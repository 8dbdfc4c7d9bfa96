"""What every domain shares: settings, database, artifact store, uploads, errors, metrics, tenant-scoped reads."""
