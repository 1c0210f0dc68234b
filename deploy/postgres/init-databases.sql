-- Runs once, when the compose PostgreSQL volume is initialised (docker-entrypoint-initdb.d).
-- One database per component: no service reads another's data. The services would also create
-- their database themselves when their user may; creating them here lets the services run with
-- a role that cannot create databases, as in production.
CREATE DATABASE rdm_release;
CREATE DATABASE rdm_change;
CREATE DATABASE rdm_configuration;
CREATE DATABASE rdm_deployment;
CREATE DATABASE rdm_gateway;
