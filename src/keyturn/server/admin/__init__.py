"""The admin API (``/admin/v1``): manage tokens and clients with an admin-scoped token.

Built on FastAPI so that the pydantic models below are the one source of both
validation and the served OpenAPI document (``/admin/v1/openapi.json``).
"""
