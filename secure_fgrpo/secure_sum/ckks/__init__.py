"""Homomorphic secure sum with TenSEAL/SEAL: clients encrypt, the server adds what it cannot
read. One concern per module: params (parameter sets, security check), keys (custody), wire
(framing), sealio (SEAL bytes), codec (vectors <-> ciphertexts), poly (exp under encryption),
client, server, backend (options)."""

from .backend import CKKSBackend
from .client import CKKSClient, server_weight_input
from .keys import client_dir, init_keys, open_for_institution, seal_for_institution, server_dir
from .params import PRESETS, ParamSet, weights_params
from .server import CKKSServer

__all__ = [
    "PRESETS",
    "CKKSBackend",
    "CKKSClient",
    "CKKSServer",
    "ParamSet",
    "client_dir",
    "init_keys",
    "open_for_institution",
    "seal_for_institution",
    "server_dir",
    "server_weight_input",
    "weights_params",
]
