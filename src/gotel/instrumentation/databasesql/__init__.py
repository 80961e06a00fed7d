"""database/sql: client spans for every driver."""
