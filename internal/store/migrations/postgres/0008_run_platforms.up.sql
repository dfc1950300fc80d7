-- The per-platform image manifest digests a run pushed (JSON list of
-- {platform, digest}): a run whose platform digests equal the task's
-- previous successful run's changed nothing, and cascades to nobody.
ALTER TABLE runs ADD COLUMN platforms TEXT NOT NULL DEFAULT '[]';
