"""The dashboard page: /orgs/<id>/dashboard (figures, quartile strips, trends, the gap table, the
monthly PDF report's download)."""

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from app.core.time import utcnow
from app.metrics.definitions import METRICS
from app.metrics.report import last_complete_month
from app.metrics.schemas import metric_json
from app.orgs.permissions import OrgAction, require_org

bp = Blueprint("metrics_pages", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/metrics")


@bp.get("/orgs/<int:org_id>/dashboard")
@login_required
def dashboard_page(org_id: int):
    """Show an org's dashboard; the figures come from the JSON API (404 for those who may not see the org)."""
    org = require_org(current_user, org_id, OrgAction.VIEW)
    peer_groups = ["consortium", "level", "region"] if org.kind == "consortium" else ["pool", "specialty"]
    today = utcnow().date()
    return render_template("metrics/dashboard.html", org=org, peer_groups=peer_groups,
                           metrics=[metric_json(m) for m in METRICS], report_month=last_complete_month(today),
                           latest_month=f"{today:%Y-%m}")
