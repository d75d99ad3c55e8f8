"""The README's frontend section, which the browser tests serve and the snippet tests check."""

from __future__ import annotations

import re

from tests.servers import ROOT


def readme_frontend_snippets() -> dict[str, str]:
    """The README's frontend section: the FastAPI and Flask APIs and the page module."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Frontends")
    end = readme.index("\n## ", start + 1)
    blocks = re.findall(r"```(\w+)\n(.*?)```", readme[start:end], re.DOTALL)
    python = [code for lang, code in blocks if lang == "python"]
    js = [code for lang, code in blocks if lang == "js"]
    assert len(python) == 2 and len(js) == 1, "the section has a FastAPI, a Flask and a JS block"
    return {"fastapi": python[0], "flask": python[1], "page": js[0]}
