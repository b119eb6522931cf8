"""Cluster mode: replicas sharing one upstream fetch per camera through Redis."""
