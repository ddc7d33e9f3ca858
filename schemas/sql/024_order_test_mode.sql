-- 024: test mode on orders (issue 12 item 1). An order of a test-mode invoice (seeds/002 `test_mode`, the
-- pk_test_ public API) goes to the test destination ([routing] test, default: the default destination)
-- whatever its card, and so do its follow-ups (charge, refund, reversal): the engine routes by this column.
-- Live orders (every order made before this migration among them) route by the BIN table as before.
ALTER TABLE orders ADD COLUMN test_mode boolean NOT NULL DEFAULT false;
