-- Nothing to undo: the catalogs and diffs dropped are made again on
-- demand.
SELECT 1;
