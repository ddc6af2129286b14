-- RunSummary v2 (issue 20): missing_seqs lists at most the first 1000 missing seqs, so the total is a
-- column of its own. Rows written before this (or by a v1 writer) read 0; their missing_seqs list was
-- complete, so length(missing_seqs) is their count.

ALTER TABLE run_summaries ADD COLUMN IF NOT EXISTS missing_seq_count UInt64 DEFAULT 0 AFTER seq_gaps;
