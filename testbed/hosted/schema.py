"""Run by the stack with the hosted Archivist's own venv, in its checkout: create its tables.

The app's migrations are not kept in step with its models, so the stack asks
Flask-SQLAlchemy for the tables of the models the app imports at start (create_all
leaves existing tables alone). Only the standard library and the app are imported here.
"""

from __future__ import annotations

import sys


def main() -> int:
    from core.app import app
    from core.database import db

    with app.app_context():
        db.create_all()
        tables = sorted(db.metadata.tables)
    print(f"schema: {len(tables)} tables present: {', '.join(tables)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
