-- cnf_jkt: the RFC 7638 SHA-256 thumbprint (base64url) of the client key a
-- token is bound to by DPoP (RFC 9449); NULL for an unbound bearer token.
-- A bound token is accepted only with a fresh proof signed by that key.
ALTER TABLE tokens ADD COLUMN cnf_jkt TEXT;
