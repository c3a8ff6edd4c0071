"""The ServerApp: waits for the SuperNodes, then runs the federation's rounds (coordinator.py),
resuming after the last round its out-dir recorded as completed."""

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
    if wait_for_nodes(grid, cfg.min_nodes, cfg.connect_timeout, cfg.poll) < cfg.min_nodes:
        raise RuntimeError(f"fewer than min-nodes = {cfg.min_nodes} SuperNodes connected within "
                           f"{cfg.connect_timeout:.0f} s")
    coordinator = Coordinator(grid, cfg)
    first, last = coordinator.next_round, cfg.rounds or coordinator.fed.federation.rounds
    if first > last:
        log.warning("%s: round %d already completed; nothing to run", cfg.out_dir, last)
    for round_ in range(first, last + 1):
        if round_ > first and cfg.round_wait > 0:
            wait_for_nodes(grid, cfg.min_nodes, cfg.round_wait, cfg.poll)
        coordinator.run_round(round_)
    log.info("global adapter: %s", coordinator.export_adapter())


def wait_for_nodes(grid: Grid, n: int, timeout: float, poll: float) -> int:
    """Wait up to ``timeout`` s until ``n`` SuperNodes are online; return how many are."""
    deadline = time.monotonic() + timeout
    while (online := len(list(grid.get_node_ids()))) < n and time.monotonic() < deadline:
        time.sleep(poll)
    return online
