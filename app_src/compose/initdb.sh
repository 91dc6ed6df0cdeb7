#!/bin/sh
# First start of the postgres container (compose mode): the worker and result roles with least
# privilege. The worker owns the schema it migrates; result may only read. Passwords come from
# the container's environment, never from this file.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v worker_pw="$WORKER_PG_PASSWORD" -v result_pw="$RESULT_PG_PASSWORD" <<'SQL'
CREATE ROLE votingapp_worker LOGIN PASSWORD :'worker_pw';
CREATE ROLE votingapp_result LOGIN PASSWORD :'result_pw';
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO votingapp_worker;
GRANT USAGE ON SCHEMA public TO votingapp_result;
ALTER DEFAULT PRIVILEGES FOR ROLE votingapp_worker IN SCHEMA public GRANT SELECT ON TABLES TO votingapp_result;
SQL
