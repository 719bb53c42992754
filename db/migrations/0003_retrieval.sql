-- Retrieval: the FAISS index is a registered artifact of its own pipeline, and every change to the passage
-- collection is announced so retriever replicas pick it up without a restart.

ALTER TABLE training_runs DROP CONSTRAINT training_runs_pipeline_check;
ALTER TABLE training_runs ADD CONSTRAINT training_runs_pipeline_check
    CHECK (pipeline IN ('lrurec', 'ranker', 'dpr', 'index', 'qa', 'kobart', 'books'));
ALTER TABLE model_versions DROP CONSTRAINT model_versions_pipeline_check;
ALTER TABLE model_versions ADD CONSTRAINT model_versions_pipeline_check
    CHECK (pipeline IN ('lrurec', 'ranker', 'dpr', 'index', 'qa', 'kobart', 'books'));

CREATE FUNCTION notify_passages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('passages', '');
    RETURN NULL;
END $$;

-- Per statement, and PostgreSQL folds identical notifications of one transaction into one.
CREATE TRIGGER passages_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON passages
    FOR EACH STATEMENT EXECUTE FUNCTION notify_passages();
