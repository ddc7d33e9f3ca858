-- 012: the hosted page's oneclick (extra_fields.oneclick of POST /orders/create; switch/orders/pages.py).
--
-- oneclick_customer: the merchant's customer the page may keep the card for (NULL: the page offers no
-- "Save this card" box); oneclick_prechecked: the box is ticked when the page is shown; save_card: what the
-- cardholder chose when paying, kept until the payment ends (3-D Secure may finish it in another request).
-- Nothing of the card is here: the card is kept from the order (oneclick_cards, 010) once it is authorized.
ALTER TABLE payment_pages
    ADD COLUMN oneclick_customer   text CHECK (oneclick_customer ~ '^[A-Za-z0-9]{1,40}$'),
    ADD COLUMN oneclick_prechecked boolean NOT NULL DEFAULT false,
    ADD COLUMN save_card           boolean NOT NULL DEFAULT false;
