"""isoswitch core: links, pools and routing, the ISO listener, translation, orders, store-and-forward, the store.

It knows no HTTP, no simulator and no bench (``make lint`` checks the import
contracts). ``switch.wire`` is the wire layer (codec, framing, dialects, match
keys, TLS contexts, Luhn and masking): the only part ``acquirer_sim`` may import.
Everything is reached through its module; importing ``switch`` loads nothing else.
"""
