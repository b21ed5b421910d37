"""sundial's REST API (FastAPI); build it with :func:`api.app.create_app`."""
