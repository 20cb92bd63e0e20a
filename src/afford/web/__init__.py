"""`afford web`: a local web page for the same engine (issue 15, item 4). The server is the standard library's
(server.py), what the page may ask of the engine and how it runs is service.py, the page is page.html (package data,
plain HTML and vanilla JS, nothing fetched from the internet). docs/web.md says why.
"""

from __future__ import annotations

from afford.web.server import make_server
from afford.web.service import Limits

__all__ = ["Limits", "make_server"]
