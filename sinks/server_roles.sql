-- Access control on a ClickHouse server (not applicable to chdb): `tripwire migrate --roles`.
-- ${DATABASE} is the validated database identifier. Users are created by the operator and
-- granted one of these roles, e.g.:
--   CREATE USER sink_writer IDENTIFIED WITH sha256_password BY '...' DEFAULT ROLE tripwire_writer;
--   CREATE USER analyst IDENTIFIED WITH sha256_password BY '...' DEFAULT ROLE tripwire_analyst
--       SETTINGS PROFILE 'tripwire_analyst_profile';

-- The sink and the migrations: insert and (for migrations and data-subject deletion) DDL/DELETE.
CREATE ROLE IF NOT EXISTS tripwire_writer;
GRANT SELECT, INSERT, CREATE TABLE, CREATE VIEW, ALTER TABLE, ALTER VIEW, ALTER DELETE, ALTER UPDATE, OPTIMIZE,
      SHOW ON ${DATABASE}.* TO tripwire_writer;
GRANT CREATE DATABASE ON ${DATABASE}.* TO tripwire_writer;

-- Analysts and the dashboard: read only, bounded queries. readonly = 1 also forbids changing
-- the limits from a query; the constraints make that explicit.
CREATE SETTINGS PROFILE IF NOT EXISTS tripwire_analyst_profile SETTINGS
    readonly = 1 CONST,
    max_execution_time = 30 MAX 60,
    max_result_rows = 100000 MAX 1000000,
    result_overflow_mode = 'break',
    max_memory_usage = 4000000000 MAX 8000000000;
CREATE ROLE IF NOT EXISTS tripwire_analyst SETTINGS PROFILE 'tripwire_analyst_profile';
GRANT SELECT, SHOW ON ${DATABASE}.* TO tripwire_analyst;
-- The dashboard records alert acknowledgements and kill-switch actions.
CREATE ROLE IF NOT EXISTS tripwire_dashboard;
GRANT tripwire_analyst TO tripwire_dashboard;
GRANT INSERT ON ${DATABASE}.alert_acks TO tripwire_dashboard;
GRANT INSERT ON ${DATABASE}.killswitch_audit TO tripwire_dashboard;
