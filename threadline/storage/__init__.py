"""The storage layer: the database's schema, migrations, reads and write functions, over
SQLAlchemy Core. It imports only the domain layer. Anyone may read through it; only the store
service writes (it owns the single writer)."""
