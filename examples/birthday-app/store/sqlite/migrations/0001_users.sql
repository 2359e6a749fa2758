-- Users and their dates of birth. Names are ASCII letters, compared
-- case-sensitively (BINARY collation); dates are YYYY-MM-DD text.
CREATE TABLE users (
	username      TEXT NOT NULL PRIMARY KEY,
	date_of_birth TEXT NOT NULL CHECK (date_of_birth GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
	created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
	updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT, WITHOUT ROWID;
