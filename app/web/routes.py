"""Browser pages: login, logout and the home page."""

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.accounts import service
from app.extensions import limiter

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths, so the login form cannot be used as an open redirect.
    if target and not urlsplit(target).netloc and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("web.index")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    """Show the login form (GET) or log the user in with email and password (POST)."""
    if request.method == "POST":
        user = service.authenticate(email=request.form.get("email", ""),
                                    password=request.form.get("password", ""))
        if user is not None:
            login_user(user, remember=bool(request.form.get("remember")))
            return redirect(_safe_next(request.args.get("next")))
        flash("邮箱或密码错误 / Invalid email or password", "error")
        return render_template("login.html", email=request.form.get("email", "")), 401
    if current_user.is_authenticated:
        return redirect(url_for("web.index"))
    return render_template("login.html", email="")


@bp.post("/logout")
@login_required
def logout():
    """Log the user out of the browser session."""
    logout_user()
    return redirect(url_for("web.login"))


@bp.get("/")
@login_required
def index():
    """Show the signed-in doctor's home page."""
    return render_template("index.html")
