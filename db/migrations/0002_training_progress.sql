-- Progress of a run while it trains (step, total, loss …), for GET /v1/train/{id}.
ALTER TABLE training_runs ADD COLUMN progress jsonb NOT NULL DEFAULT '{}'::jsonb
    CHECK (jsonb_typeof(progress) = 'object');
