"""Client data: local JSONL/Parquet loading and non-IID partitioning of generated problems."""

from secure_fgrpo.data.local import REQUIRED_COLUMNS, load_problems
from secure_fgrpo.data.partition import ClientData, FederatedData, family_mixes, make_federated_data

__all__ = [
    "REQUIRED_COLUMNS",
    "ClientData",
    "FederatedData",
    "family_mixes",
    "load_problems",
    "make_federated_data",
]
