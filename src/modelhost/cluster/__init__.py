"""A local cluster of modelhost replicas behind the routing tier (``deploy/local/cluster``)."""
