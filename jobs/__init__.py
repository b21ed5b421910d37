"""The Celery side of sundial: the app factory and the built-in tasks (``sundial.*``)."""
