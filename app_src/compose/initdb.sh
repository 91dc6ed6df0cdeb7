#!/bin/sh
# First start of the postgres container (compose mode), run by the image's entrypoint from
# /docker-entrypoint-initdb.d/ against POSTGRES_DB as POSTGRES_USER: the same roles and grants as
# the postgres role of the collection (roles/postgres) builds on a host.
#   votingapp_owner   owns the database and the schema; only the `migrate` job logs in with it
#   votingapp_worker  SELECT, INSERT, UPDATE on the tables the owner creates
#   votingapp_result  SELECT only
# Passwords come from the container's environment, never from this file. The script runs once,
# on an empty data volume: a changed password needs `down -v` (or ALTER ROLE by hand).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --quiet \
  -v db="$POSTGRES_DB" \
  -v owner_pw="$OWNER_PG_PASSWORD" -v worker_pw="$WORKER_PG_PASSWORD" -v result_pw="$RESULT_PG_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE votingapp_owner  LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_pw';
CREATE ROLE votingapp_worker LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'worker_pw';
CREATE ROLE votingapp_result LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'result_pw';
-- PostgreSQL 15: the database owner owns (may create in) the public schema.
ALTER DATABASE :"db" OWNER TO votingapp_owner;
-- Only the application roles connect; nobody else gets temporary tables.
REVOKE CONNECT, TEMPORARY ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO votingapp_worker, votingapp_result;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO votingapp_worker, votingapp_result;
-- What the owner creates later (the migrate job) gets these grants.
ALTER DEFAULT PRIVILEGES FOR ROLE votingapp_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES TO votingapp_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE votingapp_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO votingapp_worker;
ALTER DEFAULT PRIVILEGES FOR ROLE votingapp_owner IN SCHEMA public GRANT SELECT ON TABLES TO votingapp_result;
SQL
