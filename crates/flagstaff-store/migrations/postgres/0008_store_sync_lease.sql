-- Which node runs a configuration's sync engine. Every node starts an engine for every
-- enabled configuration, but only the holder of the lease writes the store (two writers
-- would interleave pushes of different versions); the others stand by and take over when
-- the lease lapses or is released at shutdown.
ALTER TABLE store_sync ADD COLUMN lease_owner TEXT;
ALTER TABLE store_sync ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
