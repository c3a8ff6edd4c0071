"""Each client's private prompts and held-out split, plus the public global evaluation set."""

from __future__ import annotations

from ..config import RunConfig
from ..data.local import load_problems
from ..data.partition import ClientData, FederatedData, family_mixes, make_federated_data
from ..tasks import GENERATED_FAMILIES


def build_data(cfg: RunConfig) -> FederatedData:
    names = [c.name for c in cfg.clients]
    d = cfg.data
    if d.partition == "explicit":
        mixes = {c.name: c.families for c in cfg.clients if c.families}
        for c in cfg.clients:  # a client with only its own data still needs a mix key
            mixes.setdefault(c.name, {f: 1.0 for f in GENERATED_FAMILIES})
    else:
        mixes = family_mixes(names, d.partition, d.alpha, list(GENERATED_FAMILIES), cfg.seed, d.families_per_client)
    fed = make_federated_data(mixes, d.train_size, d.eval_size, d.global_eval_size, cfg.seed)
    for c in cfg.clients:
        if c.data:  # the institution's own records replace the generated training prompts
            own = load_problems(c.data)
            cut = max(1, len(own) // 5)
            fed.clients[c.name] = ClientData(c.name, fed.clients[c.name].mix, own[cut:], own[:cut])
    return fed
