-- Which consensus node owns this database. Each node has its own database; recording the owner
-- lets a node refuse to start on another node's data (wrong credentials, a misconfigured node
-- number, a restored backup), where it could otherwise sign with the other node's history.

CREATE TABLE enclave_node (
    -- bigint so that any u32 node number fits.
    node_number bigint NOT NULL CHECK (node_number >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The primary key can only ever be true, so the table holds at most one row.
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton)
);
