"""The fault suite: real processes killed, cut off and fed garbage under load (docs/reliability.md)."""
