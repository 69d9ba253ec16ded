-- api_key_networks: the source networks (an IPv4 /24, an IPv6 /48) each API
-- key was used from, for credential monitoring's new_network anomaly
-- (internal/apikey, internal/monitor). Recorded with the keys' last uses
-- (every few seconds, the last address of each key); a network unused for
-- 30 days is forgotten, and counts as new again.
CREATE TABLE api_key_networks (
    key_id     TEXT NOT NULL,
    network    TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (key_id, network)
) STRICT;

-- alerts.detail: what else an anomaly names (new_network: the network).
ALTER TABLE alerts ADD COLUMN detail TEXT NOT NULL DEFAULT '';
