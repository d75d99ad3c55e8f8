"""Optional glue for the libraries multi-user LLM servers are built with.

Each module imports its library only when imported itself, so installing
``neatlogs-web`` never pulls in httpx, FastAPI, Flask or the neatlogs SDK.
"""
