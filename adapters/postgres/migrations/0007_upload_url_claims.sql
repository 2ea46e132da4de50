-- Presigned upload URLs the API served (filesystem store): one row per used URL until it
-- expires, so a URL is single use across every API process. The signature is kept only as
-- its SHA-256 hex digest.
CREATE TABLE upload_url_claims (
    signature_sha256 text        PRIMARY KEY CHECK (char_length(signature_sha256) = 64),
    expires_at       timestamptz NOT NULL
);

CREATE INDEX upload_url_claims_expires_idx ON upload_url_claims (expires_at);
