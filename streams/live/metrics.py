"""Prometheus metrics of the live path, in a registry of their own (one per `StreamRegistry`).

No module-level metric objects: tests and several registries in one process stay independent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# 1 ms .. 1 s: a 20 ms audio frame's budget sits in the middle.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.2, 0.5, 1.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Every figure the live path exports at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.live_streams = Gauge("rd_live_streams", "Live sessions in this process.", registry=r)
        self.listeners = Gauge("rd_listeners", "Listener peer connections in this process.", registry=r)
        self.peer_connections = Gauge("rd_peer_connections", "Open server-side peer connections.", registry=r)
        self.frames_processed = Counter(
            "rd_frames_processed", "Broadcaster frames denoised, recorded and encoded.", registry=r
        )
        self.frames_late = Counter(
            "rd_frames_late",
            "Frames whose packet reached the listeners' queues more than one frame (20 ms) after arrival.",
            registry=r,
        )
        self.input_frames_dropped = Counter(
            "rd_input_frames_dropped",
            "Broadcaster frames dropped because processing fell more than 1 s behind.",
            registry=r,
        )
        self.listener_packets_dropped = Counter(
            "rd_listener_packets_dropped",
            "Packets dropped (oldest first) from slow listeners' queues, summed over listeners.",
            registry=r,
        )
        self.silence_packets = Counter(
            "rd_listener_silence_packets", "Silence packets sent while the broadcaster stalled.", registry=r
        )
        self.stage_seconds = Histogram(
            "rd_stage_seconds",
            "Time per frame in each hop of the pipeline (engine = denoise incl. thread-pool wait).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.server_latency = Histogram(
            "rd_server_latency_seconds",
            "From a broadcaster frame's arrival to its packet's hand-off to a listener's sender, "
            "plus the engine's constant algorithmic delay (one observation per listener packet).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.sessions_resumed = Counter(
            "rd_sessions_resumed",
            "Live sessions whose broadcaster came back (a reload, a dropped connection) within the grace.",
            registry=r,
        )
        self.sessions_ended = Counter(
            "rd_sessions_ended", "Live sessions ended, by reason.", ["reason"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def hand_off_observer(self, engine_delay_s: float) -> Callable[[float], None]:
        """What a listener track calls per packet with its arrival time: one histogram
        observation, the engine's constant delay read once (per session), not per packet."""
        observe = self.server_latency.observe
        clock = time.monotonic

        def observed(arrival: float) -> None:
            observe(clock() - arrival + engine_delay_s)

        return observed
