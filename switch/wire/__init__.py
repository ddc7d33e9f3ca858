"""The wire layer: ISO 8583 codec, framing, dialects, match keys, TLS contexts, Luhn and masking.

Pure and dependency-light: it imports nothing else of ``switch``, so the
simulated issuer host (``acquirer_sim``) and the bench can share it without
loading the core.
"""
