"""A package, so that pytest puts the repository's root on sys.path rather than tests/, where the folder
tests/service would stand in for the `service` package."""
