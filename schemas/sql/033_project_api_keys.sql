-- 033: API keys a project's portal users generate (issue 13 item 3, seeds/000 "API keys"): more HTTP Basic
-- credentials of the project, beside the one `isoswitch project add` printed. The login is `ak_` and 20 base62
-- characters; the password is shown once and kept as scrypt (switch/store/projects.py's hashing); `masked` is what
-- the list shows of it afterwards (its first and last 3 characters). Deleting the row ends the key (a process's
-- cache of verified credentials re-reads within `refresh` seconds).
CREATE TABLE project_api_keys (
    id            bigserial   PRIMARY KEY,
    project_id    bigint      NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    login         text        NOT NULL UNIQUE CHECK (login ~ '^ak_[A-Za-z0-9]{20}$'),
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    password_hash text        NOT NULL,
    masked        text        NOT NULL,
    created       timestamptz NOT NULL DEFAULT now(),
    created_by    text                                   -- the portal user's e-mail (kept if the user goes)
);
CREATE INDEX project_api_keys_project ON project_api_keys (project_id, id);
