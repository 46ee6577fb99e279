"""The room over HTTP: message history and posting, annotations."""

from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.cases.permissions import Action, case_route
from app.consult import service
from app.consult.schemas import (
    ANNOTATION_SCHEMA,
    MESSAGE_SCHEMA,
    MESSAGES_PAGE_SCHEMA,
    AnnotationIn,
    AnnotationsQuery,
    MessageIn,
    MessagesQuery,
    annotation_json,
    message_json,
)
from app.core.errors import BadRequest
from app.core.openapi import api_doc, items_of
from app.core.schemas import parse_query, validate

bp = Blueprint("consult", __name__, url_prefix="/api/cases/<int:case_id>")


def _body(model, case):
    """Validate the JSON body with the case id from the path (the socket payloads carry it)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return validate(model, {**body, "case_id": case.id})


@bp.get("/messages")
@case_route(Action.CHAT, audit="none")
@api_doc(query=MessagesQuery,
         responses={200: ("messages with seq > since, in seq order: a page, ``more`` if others follow",
                          MESSAGES_PAGE_SCHEMA)},
         tag="consult")
def list_messages(case):
    """Return the room's messages after ``since`` (0 for all), as the ``message`` event sends them.

    At most a page of them: ``more`` says to ask again from the last seq returned.
    """
    messages, more = service.messages_since(case=case, since=parse_query(MessagesQuery).since)
    return jsonify({"items": [message_json(m) for m in messages], "more": more})


@bp.post("/messages")
@case_route(Action.CHAT)
@api_doc(body=MessageIn, responses={201: ("the stored message", MESSAGE_SCHEMA),
                                    200: ("the message stored before with this client_id", MESSAGE_SCHEMA)},
         tag="consult")
def post_message(case):
    """Post a chat message over HTTP; it is broadcast to the room like a socket message."""
    msg, new = service.post_message(case=case, author=current_user, data=_body(MessageIn, case))
    return jsonify(msg), 201 if new else 200


@bp.get("/annotations")
@case_route(Action.VIEW, audit="none")
@api_doc(query=AnnotationsQuery,
         responses={200: ("live annotations (of one instance with sop_instance_uid)", items_of(ANNOTATION_SCHEMA))},
         tag="consult")
def list_annotations(case):
    """Return the annotations drawn on the case's images."""
    items = service.annotations(case=case, sop_instance_uid=parse_query(AnnotationsQuery).sop_instance_uid)
    return jsonify({"items": [annotation_json(a) for a in items]})


@bp.post("/annotations")
@case_route(Action.CHAT)
@api_doc(body=AnnotationIn, responses={201: ("the stored annotation", ANNOTATION_SCHEMA)}, tag="consult")
def add_annotation(case):
    """Draw an annotation over HTTP; it is broadcast to the room."""
    return jsonify(service.add_annotation(case=case, author=current_user, data=_body(AnnotationIn, case))), 201


@bp.delete("/annotations/<int:annotation_id>")
@case_route(Action.CHAT)
@api_doc(responses={204: "deleted", 403: "not the author"}, tag="consult")
def delete_annotation(case, annotation_id: int):
    """Delete one of your annotations."""
    service.delete_annotation(case=case, user=current_user, annotation_id=annotation_id)
    return "", 204

