"""coral-probe: eBPF probes on running programs, streamed into sandboxed scripts."""

__version__ = "0.1.0"
