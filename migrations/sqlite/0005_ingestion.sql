-- Provider rate budgets shared by every process: one row per budget (a provider app's,
-- or one user's of it), holding each window's per-slot request counts, a 429's pause and
-- the priority hold polls put on backfills (see store/budgets.rs).
CREATE TABLE rate_budgets (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The backfill run a window belongs to: the one planned on connect (NULL) or a re-pull.
ALTER TABLE jobs ADD COLUMN backfill_id TEXT;

-- Due polls are claimed before any backfill: their own index keeps that claim from
-- walking every due backfill window.
CREATE INDEX jobs_due_polls ON jobs (next_run_at) WHERE status = 'pending' AND kind = 'poll';
