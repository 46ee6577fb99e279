"""pydicom's messages about invalid values, without the values.

When pydicom reads a value its VR does not allow, it logs and warns with the value quoted ("Invalid
value for VR UI: '1.2.03'"). In an uploaded file before de-identification that value can be an
original UID, a birth date or a name: the log keeps the message with the value withheld, and the
warning (the same text, printed to stderr) is not shown. Installed on import of ``app.imaging``, so
in the server processes and in the ingest workers (which import it first).
"""

import logging
import re
import warnings

PYDICOM_LOGGER = "pydicom"
WITHHELD = "<value withheld>"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class WithoutValues(logging.Filter):
    """Replace every quoted part of a record's message by WITHHELD (the record is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        withheld = _QUOTED.sub(WITHHELD, message)
        if withheld != message:
            record.msg, record.args = withheld, ()
        return True


def install() -> None:
    """Idempotent: one filter on pydicom's logger, one warnings filter for pydicom's user warnings."""
    logger = logging.getLogger(PYDICOM_LOGGER)
    if not any(isinstance(f, WithoutValues) for f in logger.filters):
        logger.addFilter(WithoutValues())
    # pydicom's warn_and_log() logs each such message (filtered above) and warns with it too.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
