"""Outbound HTTP of the switch (the core defines the ports, these are their aiohttp implementations)."""
