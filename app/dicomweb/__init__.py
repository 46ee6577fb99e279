"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) per case, and share links that open it without an account."""

from flask import Flask, request

from app.imaging.render import ByteLRU


def init_app(app: Flask) -> None:
    """Register the link API and the two DICOMweb roots, and the per-process metadata and QIDO caches."""
    from app.dicomweb import qido, routes
    from app.extensions import limiter

    mb = 1024 * 1024
    app.extensions["dicomweb_metadata_cache"] = ByteLRU(int(app.config.get("DICOMWEB_METADATA_CACHE_MB", 64)) * mb)
    app.extensions["qido_records"] = ByteLRU(qido.CACHED_CASES, weigh=lambda _records: 1)
    app.register_blueprint(routes.links_bp)
    app.register_blueprint(routes.cases_bp)
    app.register_blueprint(routes.link_bp)
    # No rate limit applies to the DICOMweb roots (a viewer fetches hundreds of frames a minute from
    # one address, and a token or link already names who asks). A request filter makes the limiter
    # skip them before it resolves any limit (an exempted blueprint is still resolved per request).
    # The limiter is one object for every app of the process: its filter is added once.
    if not _UNLIMITED:
        _UNLIMITED.update({routes.cases_bp.name, routes.link_bp.name})
        limiter.request_filter(_unlimited)


_UNLIMITED: set[str] = set()  # the blueprints the rate limiter skips


def _unlimited() -> bool:
    return request.blueprint in _UNLIMITED
