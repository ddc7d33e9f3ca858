"""Payment links (issue 12 item 7, seeds/000 "Payment links"): templates a merchant makes once, a public URL
the payer opens, an invoice made for each payment (:mod:`switch.links.service`)."""
