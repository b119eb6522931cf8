"""Cluster mode: replicas sharing one upstream fetch per camera through Redis.

``config`` is the ``[cluster]`` table; without it the proxy runs as one process, as before.
"""
