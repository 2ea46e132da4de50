-- Clinical workflow: an AI draft remembers the analysis result it was drafted from, so that
-- drafting is idempotent per result even when two workers finish the same result at once.
ALTER TABLE reports ADD COLUMN analysis_result_id uuid;
CREATE UNIQUE INDEX reports_one_draft_per_result_idx
    ON reports (analysis_result_id) WHERE analysis_result_id IS NOT NULL;
