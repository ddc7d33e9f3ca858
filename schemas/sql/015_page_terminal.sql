-- 015: the hosted page's terminal (options.terminal of POST /orders/create; review of issue 11).
--
-- create accepted options.terminal and the page paid on the project's default terminal. The terminal is
-- chosen (and an unknown one refused) when the page is made, as a direct authorize does, and kept here:
-- the page's 0100 goes out on it, directly or after 3-D Secure (the session's extra, 011). NULL: the
-- project's default terminal. A terminal id is no card data.
ALTER TABLE payment_pages
    ADD COLUMN terminal text CHECK (terminal ~ '^[ -~]{1,8}$');
