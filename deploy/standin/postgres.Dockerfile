# PostgreSQL 15 from Debian, with the official image's contract: initdb,
# postgres, pg_isready and psql on PATH, user postgres, data in
# /var/lib/postgresql/data.
ARG BASE
FROM ${BASE}
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
RUN mkdir -p /var/lib/postgresql/data /var/run/postgresql && \
    chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql && chmod 0700 /var/lib/postgresql/data
USER postgres
