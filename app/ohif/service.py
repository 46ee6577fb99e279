"""The OHIF Viewer's per-case configuration (window.config) and where to open it."""

import json
from urllib.parse import urlencode

from app.cases.models import Case
from app.imaging import service as imaging
from app.ohif.assets import PAGE_JS, PREFIX

DATA_SOURCE = "huizhen"


def app_config_js(*, dicomweb_root: str, router_basename: str, title: str) -> str:
    """Return app-config.js: OHIF's window.config with one DICOMweb source at the case's root."""
    config = {
        "routerBasename": router_basename,
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "groupEnabledModesFirst": True,
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 25},
        "showErrorDetails": "production",
        "defaultDataSourceName": DATA_SOURCE,
        "dataSources": [{
            "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
            "sourceName": DATA_SOURCE,
            "configuration": {
                "friendlyName": title,
                "name": DATA_SOURCE,
                "qidoRoot": dicomweb_root,
                "wadoRoot": dicomweb_root,
                "wadoUriRoot": dicomweb_root,
                "qidoSupportsIncludeField": True,
                "imageRendering": "wadors",
                "thumbnailRendering": "thumbnail",
                "thumbnailRequestStrategy": "fetch",
                "enableStudyLazyLoad": True,
                "supportsFuzzyMatching": False,
                "supportsWildcard": True,
                "staticWado": False,
                "singlepart": "bulkdata,video",
                "bulkDataURI": {"enabled": True},
                "omitQuotationForMultipartRequest": True,
                # Measurements stay in the viewer: a browser session or a link cannot store (STOW needs
                # a bearer token and a read_write scope).
                "dicomUploadEnabled": False,
            },
        }],
    }
    # json.dumps output is a JavaScript literal; nothing else from data reaches the script.
    return (f"window.PUBLIC_URL = {json.dumps(PREFIX)};\n{PAGE_JS}"
            f"window.config = {json.dumps(config, ensure_ascii=True, indent=1)};\n")


def viewer_path(case: Case) -> str:
    """Return the OHIF route (below a root) that opens all the case's studies, or the study list."""
    studies = [s["study_uid"] for s in imaging.case_studies(case)]
    return "viewer?" + urlencode({"StudyInstanceUIDs": ",".join(studies)}, safe=",") if studies else ""
