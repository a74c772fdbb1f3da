"""The web console: its built assets (``static/``, made from ``web/`` by
``scripts/build-console``) and the route that serves them at ``/console``."""
