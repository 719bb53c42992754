-- The first-run bootstrap of an empty database: its steps (data imports, quick trainings) in order, so that
-- readiness can say what is left and a restart resumes where it stopped.
CREATE TABLE bootstrap_steps (
    name text PRIMARY KEY,
    position int NOT NULL,
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'skipped', 'failed')),
    detail text,
    run_id bigint REFERENCES training_runs (id),
    expected_s real NOT NULL,
    started_at timestamptz,
    finished_at timestamptz
);
