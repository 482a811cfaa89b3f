#!/bin/sh
# Patroni's post_bootstrap hook (patroni.yml): run once on the first primary, with the
# superuser's connection string as $1. Creates the gateway's role and database and the
# timescaledb extension (in template1 too, so that databases created later by the
# gateway's role already have it).
set -eu
CONN="$1"
USER_NAME="${CARDATA_DB_USER:-cardata}"
PASSWORD="${CARDATA_DB_PASSWORD:-cardata}"
DB="${CARDATA_DB_NAME:-cardata}"
psql "$CONN" -v ON_ERROR_STOP=1 -qAt <<SQL
CREATE ROLE $USER_NAME LOGIN CREATEDB PASSWORD '$PASSWORD';
CREATE DATABASE $DB OWNER $USER_NAME;
\\c template1
CREATE EXTENSION IF NOT EXISTS timescaledb;
\\c $DB
CREATE EXTENSION IF NOT EXISTS timescaledb;
SQL
