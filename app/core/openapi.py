"""The OpenAPI 3.1 document of the HTTP API, built from the registered routes themselves."""

import re

from flask import Blueprint, current_app, jsonify

bp = Blueprint("openapi", __name__)

_PARAM = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>\w+)>")
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "detail": {}},
}

# The JSON API, and the DICOMweb roots (PS3.18 answers; their link root takes no header).
DOCUMENTED_PREFIXES = ("/api/", "/dicomweb/")

_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def api_doc(*, body=None, query=None, responses: dict[int, str | tuple[str, dict]] | None = None,
            tag: str | None = None):
    """Attach request/response facts to a view for the OpenAPI document.

    ``body`` and ``query`` are the pydantic models the view parses; a response is a description,
    or (description, JSON schema of the JSON answer).
    """

    def decorate(view):
        view.openapi = {"body": body, "query": query, "responses": responses or {}, "tag": tag}
        return view

    return decorate


def _schema_of(model) -> dict:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def obj(required: dict[str, dict], **optional: dict) -> dict:
    """JSON schema of an object answer: the required properties and their schemas, then optional ones."""
    return {"type": "object", "required": list(required), "properties": {**required, **optional}}


def items_of(item: dict) -> dict:
    """JSON schema of a ``{"items": [...]}`` answer."""
    return obj({"items": {"type": "array", "items": item}})


ID = {"type": "integer", "minimum": 1}
TEXT = {"type": "string"}
AT = {"type": "string", "format": "date-time"}


def _response(answer: str | tuple[str, dict]) -> dict:
    if isinstance(answer, str):
        return {"description": answer}
    text, schema = answer
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def build_spec(app) -> dict:
    """Describe every /api and /dicomweb rule of the app as an OpenAPI 3.1 document."""
    paths: dict[str, dict] = {}
    components: dict[str, dict] = {"Error": _ERROR}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(DOCUMENTED_PREFIXES):
            continue
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "openapi", {})
        path = _PARAM.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
        params = [
            {"name": m.group("name"), "in": "path", "required": True,
             "schema": {"type": "integer" if m.group("conv") == "int" else "string"}}
            for m in _PARAM.finditer(rule.rule)
        ]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            doc = (view.__doc__ or rule.endpoint).strip().splitlines()[0]
            op: dict = {"operationId": f"{rule.endpoint}.{method.lower()}", "summary": doc,
                        "tags": [meta.get("tag") or rule.endpoint.split(".")[0]]}
            op_params = list(params)
            if meta.get("query") is not None:
                for name, prop in meta["query"].model_json_schema().get("properties", {}).items():
                    op_params.append({"name": name, "in": "query", "required": False, "schema": prop})
            if op_params:
                op["parameters"] = op_params
            if meta.get("body") is not None and method in {"POST", "PUT", "PATCH"}:
                model = meta["body"]
                schema = _schema_of(model)
                components.update(schema.pop("$defs", {}))
                components[model.__name__] = schema
                op["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
            responses = {str(code): _response(answer) for code, answer in meta.get("responses", {}).items()}
            responses.setdefault("200", {"description": "OK"})
            if rule.rule.startswith("/api/"):
                # Every client error of the JSON API has the one error shape (app.core.errors).
                for code, answer in responses.items():
                    if code.startswith("4"):
                        answer.setdefault("content", _ERROR_CONTENT)
                responses["4XX"] = {"description": "the request cannot be served", "content": _ERROR_CONTENT}
            if getattr(view, "requires_auth", False):
                op["security"] = [{"bearer": []}]
                responses.setdefault("401", {"description": "missing or invalid credentials",
                                             "content": _ERROR_CONTENT})
            op["responses"] = responses
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Huizhen API", "version": "1.0",
                 "description": "Case sharing and remote consultation for doctors (会诊)."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


@bp.get("/api/openapi.json")
def openapi_json():
    """Serve the OpenAPI document of the HTTP API."""
    return jsonify(build_spec(current_app))
