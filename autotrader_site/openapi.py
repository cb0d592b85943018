"""OpenAPI post-processing: document the error answers every operation can give, so the
schema matches what clients (and schemathesis) see: 400 field errors, 401/403 without
credentials or permission, 404 for unknown ids, 429 when throttled."""

from __future__ import annotations

_DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
_FIELD_ERRORS = {
    "type": "object",
    "description": "field name → list of messages (`non_field_errors` for the whole input)",
    "additionalProperties": {
        "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]
    },
}
_UNSAFE = {"post", "put", "patch", "delete"}


def _response(description: str, schema_ref: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": schema_ref}}},
    }


def error_responses_document(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOKS entry."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ErrorDetail", _DETAIL)
    components.setdefault("FieldErrors", _FIELD_ERRORS)
    detail = "#/components/schemas/ErrorDetail"
    fields = "#/components/schemas/FieldErrors"
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            params = operation.get("parameters", [])
            has_input = method in _UNSAFE or any(p.get("in") == "query" for p in params)
            if has_input:
                responses.setdefault("400", _response("Invalid input", fields))
            if operation.get("security"):
                responses.setdefault("401", _response("Not authenticated", detail))
                responses.setdefault("403", _response("Not authenticated or not permitted", detail))
            if "{" in path:
                responses.setdefault("404", _response("Not found", detail))
            if method in _UNSAFE or path.endswith("/auth/token"):
                responses.setdefault("429", _response("Throttled", detail))
    return result
