"""The `fusebox` command line: the engine's commands (torch, loaded only by them), the commands that talk
to a running service (httpx and pydantic only) and the operator's `admin` commands (the service's database).

It lives beside the service rather than in fusion/, so that the engine imports nothing of the service.
"""
