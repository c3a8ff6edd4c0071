"""The secure sum over Flower: a ServerApp and a ClientApp on the Message API.

One Flower message per protocol stage, payloads are opaque bytes (the backend's own encoding).
Only ``server_app`` and ``client_app`` import flwr; neither imports the training stack, because
Flower may start a new ClientApp process for every message.
"""
