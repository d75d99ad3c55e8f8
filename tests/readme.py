"""The README's frontend section, which the browser tests serve and the snippet tests check."""

from __future__ import annotations

import re

from tests.servers import ROOT


def readme_frontend_snippets() -> dict[str, str]:
    """The README's frontend section: the FastAPI and Flask APIs, the page and its module."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Frontends")
    end = readme.index("\n## ", start + 1)
    blocks = re.findall(r"```(\w+)\n(.*?)```", readme[start:end], re.DOTALL)
    python = [code for lang, code in blocks if lang == "python"]
    js = [code for lang, code in blocks if lang == "js"]
    html = [code for lang, code in blocks if lang == "html"]
    assert (len(python), len(html), len(js)) == (2, 1, 1), (
        "the section has a FastAPI, a Flask, an HTML and a JS block"
    )
    return {"fastapi": python[0], "flask": python[1], "html": html[0], "page": js[0]}
