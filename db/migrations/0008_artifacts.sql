-- Model artifacts every node can load. A registered version's folder is packed into one tar and kept by its
-- SHA-256 in a store that every node reaches: this database's chunk table by default (artifact_url 'postgres'),
-- or an object store (artifact_url 's3://…', 'gs://…', 'file://…'). Nodes fetch it into a local cache.
-- Versions registered before this migration keep only artifact_path, a folder on the node that trained them.
CREATE TABLE artifact_chunks (
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    seq integer NOT NULL CHECK (seq >= 0),
    data bytea NOT NULL,
    PRIMARY KEY (sha256, seq)
);
-- Model weights do not compress: out of line, without PostgreSQL's compression attempt on every chunk.
ALTER TABLE artifact_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

ALTER TABLE model_versions
    ADD COLUMN artifact_sha256 text CHECK (artifact_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN artifact_size bigint CHECK (artifact_size >= 0),
    ADD COLUMN artifact_url text,
    -- When the version last became the one served: a rollback goes back to the one active before.
    ADD COLUMN activated_at timestamptz,
    ADD CONSTRAINT artifact_complete CHECK ((artifact_sha256 IS NULL) = (artifact_url IS NULL)
                                           AND (artifact_sha256 IS NULL) = (artifact_size IS NULL));
UPDATE model_versions SET activated_at = created_at WHERE status IN ('active', 'retired');
