-- WebSocket sessions through an integration (gateway): 1 allows a GET with
-- "Upgrade: websocket" to become a session joined to the upstream's; 0 (the
-- default) refuses it.
ALTER TABLE integrations ADD COLUMN websocket INTEGER NOT NULL DEFAULT 0;
