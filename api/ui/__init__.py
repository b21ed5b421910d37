"""The web dashboard, served by the API at ``/ui``: server-rendered pages over the same
store, keys and route functions as the REST API (see :mod:`api.ui.mount`)."""
