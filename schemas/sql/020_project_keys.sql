-- 020: public keys of projects (issue 12, seeds/002): each project has a test and a live key,
-- `pk_test_...` / `pk_live_...`, that names it on the public API (/public-api/...).
--
-- Public keys are identifiers, not secrets (they are written into merchants' web pages), so they are
-- kept as they are: the primary key is the lookup a public request makes. What a key may do is
-- limited by the public API itself (create and read invoices), never HTTP Basic's rights.
CREATE TABLE project_keys (
    public_key text        PRIMARY KEY CHECK (public_key ~ '^pk_(test|live)_[A-Za-z0-9]{20,64}$'),
    project_id bigint      NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    test_mode  boolean     NOT NULL,
    created    timestamptz NOT NULL DEFAULT now(),
    -- One key of each mode per project (a later rotation would add a `revoked` column).
    UNIQUE (project_id, test_mode)
);

-- Projects made before this migration get their keys now: 64 hex digits of two random UUIDs
-- (PostgreSQL 13+'s gen_random_uuid, 244 random bits); new ones get 43 base62 characters from Python.
INSERT INTO project_keys (public_key, project_id, test_mode)
SELECT 'pk_' || m.mode || '_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), p.id, m.mode = 'test'
FROM projects p CROSS JOIN (VALUES ('test'), ('live')) AS m(mode);
