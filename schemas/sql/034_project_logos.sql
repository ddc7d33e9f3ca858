-- 034: the hosted payment page's logo per project (issue 13 item 4; switch/portal/settings.py). Uploaded on the
-- portal's settings page, checked there for type (PNG, JPEG, GIF or WebP by their magic bytes, never SVG: a
-- picture that can carry script) and size (48 KiB: under the front's request limit), and served from this
-- origin (GET /pay/logo/<project>/<sha256>), so the page's CSP (img-src 'self') needs no other host. The digest
-- in the URL changes with the picture, so browsers may keep it for long.
CREATE TABLE project_logos (
    project_id   bigint      PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    content_type text        NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg', 'image/gif', 'image/webp')),
    body         bytea       NOT NULL CHECK (length(body) BETWEEN 1 AND 49152),
    sha256       text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    updated      timestamptz NOT NULL DEFAULT now()
);
