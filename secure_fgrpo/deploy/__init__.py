"""Deployment over Flower: TLS certificates, SuperNode keys, and a process harness.

Nothing here imports flwr or the training stack: making certificates and keys must work on a
machine that only holds the package and ``cryptography``.
"""
