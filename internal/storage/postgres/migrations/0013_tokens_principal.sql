-- tokens by principal: disabling a user or service revokes every token
-- issued to it (token.Service.RevokePrincipal) without scanning the table.
CREATE INDEX tokens_principal ON tokens (principal) WHERE revoked_at = 0;
