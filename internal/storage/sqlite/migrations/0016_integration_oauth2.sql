-- OAuth 2.0 upstreams (gateway): with inject 'oauth2' the integration's
-- secret is a client secret and this column holds the client's settings as
-- JSON (token_url, client_id, scopes, audience, auth_style); '' otherwise.
-- No secret value and no access token is stored here.
ALTER TABLE integrations ADD COLUMN oauth2 TEXT NOT NULL DEFAULT '';
