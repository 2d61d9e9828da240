-- OAuth authorization-server state that is not a domain entity: sign-in sessions,
-- authorization codes, access and refresh tokens. Only the SHA-256 of each secret is kept.
-- Consents (grants), clients and passwords are entities and change through the audited path.
CREATE TABLE oauth_secrets (
    hash TEXT PRIMARY KEY,
    -- session | code | access | refresh
    kind TEXT NOT NULL,
    -- Everything issued from one authorization code shares a family: a reused code or
    -- refresh token revokes the family. A session is a family of its own.
    family TEXT NOT NULL,
    member_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    -- JSON: a code's redirect URI and PKCE challenge, a session's CSRF token.
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- When a code or refresh token was exchanged (single use).
    used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX oauth_secrets_family ON oauth_secrets (family);
CREATE INDEX oauth_secrets_grant ON oauth_secrets (grant_id);
CREATE INDEX oauth_secrets_expiry ON oauth_secrets (expires_at);
