"""The fields of a dashboard form (``application/x-www-form-urlencoded``), read without
python-multipart, which Starlette's ``request.form()`` needs and pipeline does not depend on.

The body is read once and kept on the request, so the CSRF check of an action and the view
behind it read the same fields. Its size is bounded by the HTTP server (``max_body``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

#: where the parsed fields are kept on ``request.state``
_KEPT = "pipeline_form"
#: fields one form may carry at most (the largest form has a dozen)
MAX_FIELDS = 100


async def form_fields(request: Request) -> dict[str, str]:
    """The form's fields (the first value of each name); empty for another content type."""
    kept: dict[str, str] | None = getattr(request.state, _KEPT, None)
    if kept is not None:
        return kept
    fields: dict[str, str] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        body = (await request.body()).decode("utf-8", errors="replace")
        try:
            pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except ValueError:  # too many fields: no form of ours; its CSRF check fails
            pairs = []
        for name, value in pairs:
            fields.setdefault(name, value)
    setattr(request.state, _KEPT, fields)
    return fields
