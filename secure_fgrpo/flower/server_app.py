"""The ServerApp: waits for the SuperNodes, then runs ``rounds`` secure sums (coordinator.py)."""

from __future__ import annotations

import logging
import time

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from .config import ServerConfig
from .coordinator import Coordinator

log = logging.getLogger(__name__)

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    logging.basicConfig(level=logging.INFO)
    cfg = ServerConfig.from_run_config(context.run_config)
    deadline = time.monotonic() + cfg.connect_timeout
    while len(list(grid.get_node_ids())) < cfg.min_nodes:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(list(grid.get_node_ids()))} SuperNode(s) connected within "
                               f"{cfg.connect_timeout:.0f} s; min-nodes = {cfg.min_nodes}")
        time.sleep(cfg.poll)
    coordinator = Coordinator(grid, cfg)
    for round_ in range(1, cfg.rounds + 1):
        coordinator.run_round(round_)
