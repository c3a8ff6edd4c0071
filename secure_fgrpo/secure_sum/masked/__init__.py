"""Masked secure sum (SecAgg+, Bell et al. 2020), transport-agnostic, for ``[e·Δ, e]``.

Stages (client message -> server reply):

0. Before anything leaves it, each client checks the round against its own security policy
   (policy.py; degree and share threshold from params.py).
1. ``advertise``: two fresh X25519 public keys, signed with the institution's Ed25519 identity
   -> every signed advertisement; their hash seeds the Harary graph (graph.py).
2. ``share``: Shamir shares (threshold t_k) of the self-mask seed and of the mask key, sealed
   per holder (X25519 -> HKDF -> ChaCha20-Poly1305) and signed with a key-confirmation tag,
   plus a commitment to the seed -> each client gets the sealed shares addressed to it.
3. ``masked_input``: fixed-point words (fixedpoint.py) + self mask + ± pairwise masks (prg.py),
   signed, with a complaint per share that would not open (blame.py) -> the survivor set U3.
4. ``consistency``: a signature on U3 -> U3, all signatures, and what to reveal.
5. ``unmask``: self-mask shares of survivors, mask-key shares of peers that dropped before
   masking; never both for one peer. The server removes the masks and decodes the sum.

See backend.py for the options, params.py for the degree rule, fixedpoint.py for the bound.
"""

from .backend import OPTIONS, MaskedBackend, client_state_dir, server_state_dir
from .fixedpoint import max_quantum, quantisation_bound

__all__ = ["OPTIONS", "MaskedBackend", "client_state_dir", "max_quantum", "quantisation_bound", "server_state_dir"]
