"""``python -m modelhost.cluster``: what ``deploy/local/cluster`` runs."""

from modelhost.cluster.cli import app

app()
