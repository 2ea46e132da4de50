"""The HTTP way in: a Litestar application over a bootstrapped container."""

from entrypoints.http.app import create_app, create_app_from_env

__all__ = ["create_app", "create_app_from_env"]
