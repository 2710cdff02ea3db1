#!/bin/bash
# Run once by the mysql image's entrypoint on an empty data directory (it sources *.sh files in
# /docker-entrypoint-initdb.d after creating MYSQL_DATABASE, with docker_process_sql defined).
#
# One login per snapsync role, each with its own password from docker-compose.yml's mysql
# service environment. They hold nothing yet: the db-setup service gives each its role's grants
# (`snapsync db grants --apply --role R`) once `snapsync db migrate` made snapsync's schemas,
# because grants on tables need the tables to exist. The user names must be the ones
# docker-compose.yml's services connect as (tests/unit/test_compose.py checks).
set -euo pipefail
for role in capture debezium export sync web; do
  var="SNAPSYNC_${role^^}_DB_PASSWORD"
  password="${!var:?set $var in the mysql service's environment}"
  password="${password//\\/\\\\}"
  password="${password//\'/\\\'}"
  docker_process_sql <<-EOSQL
	CREATE USER IF NOT EXISTS 'snapsync_${role}'@'%' IDENTIFIED BY '${password}';
EOSQL
done
