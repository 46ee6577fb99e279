"""DICOM node API: the called AE title, host and port that send images into a case."""

from flask import Blueprint, jsonify
from flask_login import current_user

from app.cases.permissions import Action, case_route
from app.core.openapi import api_doc
from app.dicomnet import service
from app.extensions import db

bp = Blueprint("dicomnet", __name__, url_prefix="/api/cases/<int:case_id>")


@bp.get("/dicom-node")
@case_route(Action.UPLOAD)
@api_doc(responses={200: "{ae_title, host, port}: C-STORE to this called AE title lands in the case"},
         tag="imaging")
def dicom_node(case):
    """Return the DICOM node (called AE title, host, port) that stores images into the case."""
    node = service.node_for(case=case, user=current_user)
    db.session.commit()
    host, port = service.listener_address()
    return jsonify({"ae_title": node.ae_title, "host": host, "port": port})
