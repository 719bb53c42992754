-- API keys: only a SHA-256 digest of each key is kept; the key itself is shown once, when it is created.
CREATE TABLE api_keys (
    id bigserial PRIMARY KEY,
    name text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    scope text NOT NULL CHECK (scope IN ('admin', 'inference')),
    prefix text NOT NULL,
    digest bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
