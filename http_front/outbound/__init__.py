"""Outbound HTTP of the system (the core defines the ports; these are their aiohttp implementations)."""
