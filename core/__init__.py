"""unstuck: a coordination bus for the 辦不成事 window, on NATS JetStream."""

__version__ = "0.1.0"
