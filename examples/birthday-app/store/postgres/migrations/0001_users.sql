-- Users and their dates of birth. Names are ASCII letters, compared
-- case-sensitively.
CREATE TABLE users (
	username      varchar(64) NOT NULL PRIMARY KEY,
	date_of_birth date NOT NULL,
	created_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now()
);
