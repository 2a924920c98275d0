"""The files ``aegis-schema init`` writes: a commented registry.yaml and one example table."""

REGISTRY_TEMPLATE = """\
# Schema registry: the services, and the YAML files that hold their tables.
#
# A table file holds one table (service, table, version, columns, references, indexes) or one
# service's tables under `tables:`. Column types are portable: uuid, string(n), text, integer,
# bigint, numeric(p,s), boolean, timestamp, timestamp(tz), date, json, enum(a, b, ...).
#
#   aegis-schema validate            check files, references and cycles
#   aegis-schema plan --to NEW_DIR   plan and check a migration to the versions in NEW_DIR
#   aegis-schema docs --out docs/    Markdown per service with Mermaid diagrams

# How a new version must stay compatible with the current one (BACKWARD, FORWARD, FULL, NONE).
# A change that breaks it needs a major version bump.
compatibility: BACKWARD

services:
  example:
    owner: my-team
    description: An example service; rename it and list your own files.
    files:
      - example.yaml
"""

EXAMPLE_TABLE = """\
# One table of the example service. Versions are MAJOR.MINOR.PATCH.
service: example
table: items
version: 1.0.0
owner: my-team
description: Things the example service keeps.
columns:
  - name: id
    type: uuid
    primary_key: true
  - name: name
    type: string(200)
    nullable: false
    unique: true
  - name: created_at
    type: timestamp(tz)
    nullable: false
    default: CURRENT_TIMESTAMP
# references:
#   - column: owner_id
#     references: users.users.id   # service.table.column
#     on_delete: restrict
"""
